"""tinygraph: a reverse-mode autodiff engine on NumPy, small enough to read in one sitting.

    import numpy as np, tinygraph as tg
    x = tg.tensor(np.random.randn(3, 4), requires_grad=True, name="x")
    loss = (x @ x.T).tanh().sum()
    loss.backward()          # x.grad is an ndarray of shape (3, 4)

The core is three files: tensor.py, engine.py, ops.py (see the README's engine section).
"""
from .engine import (GraphFreedError, ModifiedError, ShapeError, enable_grad,
                     is_grad_enabled, no_grad, scope, set_grad_enabled)
from .tensor import Tensor, tensor
from .ops import (add, broadcast_to, concat, div, exp, getitem, log, log_softmax, max, mean,
                  mul, neg, permute, pow, relu, reshape, sigmoid, softplus, stack, sub, sum,
                  tanh, transpose, where)
from .ops import (abs, amax, amin, argmax, argmin, cat, chunk, clamp, clip, cos, cumsum, erf,
                  expand, flatten, flip, maximum, min, minimum, pad, sin, softmax, split, sqrt,
                  squeeze, std, swapaxes, tolist, unsqueeze, var, view)
from .creation import (arange, empty, empty_like, eye, from_numpy, full, full_like, linspace,
                       ones, ones_like, rand, rand_like, randint, randn, randn_like, zeros,
                       zeros_like)
from .anomaly import AnomalyError, detect_anomaly
from . import accel
from .accel import scan, unrolled
from .ops import linear, log_softmax, matmul  # as accel/ registered them (rowsum.py, inplace.py)
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
from .derivatives import grad, hvp, jvp, vjp
from .checkpointing import checkpoint
from .stats import GraphStats, graph_stats, record_contributions
from .random import manual_seed
from . import data, functional, init, nn, optim
from .serialization import load, save
from . import viz
