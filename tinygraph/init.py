"""Weight initialisations, as ``torch.nn.init``: ``nn.init.xavier_uniform_(layer.weight)``.

Each function overwrites the tensor's data in place (through ``tensor.data = ...``,
so the tensor object, and any optimizer holding it, stays the same), draws from
``tinygraph.random.generator()`` (seed it with ``tg.manual_seed``), keeps the
tensor's dtype, and returns the tensor.
"""
import math

import numpy as np

from .random import generator


def _fill(tensor, array):
    tensor.data = np.asarray(array, dtype=tensor.dtype)
    return tensor


def zeros_(tensor):
    """Fill with 0."""
    return _fill(tensor, np.zeros(tensor.shape))


def ones_(tensor):
    """Fill with 1."""
    return _fill(tensor, np.ones(tensor.shape))


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with draws from U(a, b)."""
    return _fill(tensor, generator().uniform(a, b, size=tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with draws from N(mean, std^2)."""
    return _fill(tensor, generator().normal(mean, std, size=tensor.shape))


def _fans(shape):
    """(fan_in, fan_out) of a weight of shape (out, in, *receptive field), as PyTorch."""
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need a weight with at least 2 dimensions, not shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def xavier_uniform_(tensor, gain=1.0):
    """Glorot & Bengio (2010): U(-bound, bound), bound = gain * sqrt(6 / (fan_in + fan_out)),
    which keeps the variance of activations and of gradients alike across layers."""
    fan_in, fan_out = _fans(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def orthogonal_(tensor, gain=1.0):
    """A (semi-)orthogonal matrix times ``gain`` (Saxe et al. 2013), as PyTorch: the
    Q of a QR decomposition of a Gaussian matrix, signs fixed by R's diagonal so the
    result is uniformly distributed. Dimensions past the first are flattened.

    For a recurrent weight W_aa, orthogonality means repeated multiplication by W_aa
    neither shrinks nor grows a vector: the gradient through time starts out neither
    vanishing nor exploding.
    """
    if tensor.ndim < 2:
        raise ValueError(
            f"orthogonal_ needs a tensor with at least 2 dimensions, not shape {tensor.shape}")
    rows = tensor.shape[0]
    cols = tensor.size // rows
    flat = generator().normal(0.0, 1.0, size=(rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))
