"""Numerical gradient checking: backward against central differences."""
import warnings

import numpy as np

from .derivatives import grad
from .engine import enable_grad, no_grad
from .ops import concat
from .tensor import Tensor


class GradcheckError(AssertionError):
    """backward and central differences disagree beyond the tolerance."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, seed=0):
    """Check the gradients of ``fn(*inputs)`` for every input that requires grad.

    The output is reduced to a scalar L = sum(out * r) with a fixed random ``r``, so a
    wrong entry anywhere in the Jacobian shows up with probability 1. For each
    element x_i, the numerical gradient is the central difference
    (L(x_i + eps) - L(x_i - eps)) / (2 eps), and it must satisfy
    |analytic - numerical| <= atol + rtol |numerical|.

    Runs on copies of the inputs, so their ``.grad`` is left alone. Use float64: in
    float32 the differences are swamped by rounding (a warning says so). Returns
    True, or raises ``GradcheckError`` naming the input, the index and both values
    of the worst entry.
    """
    inputs = list(inputs)
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            warnings.warn(
                f"gradcheck: input {_label(x, i)} is {x.dtype}; central differences "
                f"need float64 to be meaningful (convert with dtype=np.float64)",
                stacklevel=2)
    copies = [Tensor(x.data.copy(), requires_grad=x.requires_grad, name=x.name)
              if isinstance(x, Tensor) else x for x in inputs]
    out = fn(*copies)
    r = np.random.default_rng(seed).standard_normal(out.shape)
    loss = (out * r).sum()
    if loss.requires_grad:  # (else fn is constant in its inputs: all gradients are 0)
        loss.backward()

    def numerical_loss(args):
        with no_grad():
            return float(np.sum(fn(*args).data * r))

    for i, x in enumerate(copies):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        analytic = np.zeros_like(x.data) if x.grad is None else x.grad
        numerical = np.zeros_like(x.data)
        for index in np.ndindex(x.shape):
            values = []
            for step in (eps, -eps):
                moved = x.data.copy()
                moved[index] += step
                args = copies[:i] + [Tensor(moved)] + copies[i + 1:]
                values.append(numerical_loss(args))
            numerical[index] = (values[0] - values[1]) / (2 * eps)
        excess = np.abs(analytic - numerical) - (atol + rtol * np.abs(numerical))
        if excess.size and excess.max() > 0:
            worst = np.unravel_index(np.argmax(excess), excess.shape)
            raise GradcheckError(
                f"gradcheck: gradient of input {_label(inputs[i], i)} is wrong at index "
                f"{tuple(int(k) for k in worst)}: backward gives {analytic[worst]!r}, "
                f"central differences give {numerical[worst]!r} "
                f"(atol={atol}, rtol={rtol}, eps={eps})")
    return True


def _label(x, i):
    return f"{i} ({x.name!r})" if x.name else str(i)


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0):
    """Check second derivatives: ``gradcheck`` of the first gradient, as
    ``torch.autograd.gradgradcheck``.

    The first gradient is v^T J (``tg.grad`` of ``fn(*inputs)`` with a fixed random v,
    recorded with ``create_graph=True``), a function of the inputs; its own gradient,
    from a second backward through that recorded graph, is compared with central
    differences of it. Returns True or raises ``GradcheckError``.
    """
    inputs = list(inputs)
    wanted = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    with no_grad():
        shape = fn(*inputs).shape
    v = np.random.default_rng(seed + 1).standard_normal(shape)

    def first_gradient(*args):
        # (gradcheck's central differences call this in no_grad on constant tensors)
        args = [Tensor(a.data, requires_grad=True) if i in wanted and not a.requires_grad
                else a for i, a in enumerate(args)]
        with enable_grad():
            out = fn(*args)
            grads = grad(out, [args[i] for i in wanted], grad_outputs=v, create_graph=True,
                         allow_unused=True)
        parts = [(g if g is not None else Tensor(np.zeros(args[i].shape))).reshape(-1)
                 for g, i in zip(grads, wanted)]
        return concat(parts)

    return gradcheck(first_gradient, inputs, eps=eps, atol=atol, rtol=rtol, seed=seed)
