"""Derivatives beyond ``loss.backward()``, built on the engine's backward walk.

    grads = tg.grad(outputs, inputs)           # as torch.autograd.grad
    value, vjp = tg.vjp(f, inputs, v)          # v^T J: one reverse pass
    value, jvp = tg.jvp(f, inputs, tangents)   # J t: forward mode, from two reverse passes
    value, hvp = tg.hvp(f, inputs, v)          # H v of a scalar f, without forming H

Forward mode comes from reverse mode by the double-VJP trick: for a dummy cotangent
u, g(u) = J^T u is linear in u, so the VJP of g with respect to u, taken at t, is
(J^T)^T t = J t. It needs the first backward recorded (``create_graph=True``), which
is why every op's VJP is written in differentiable operations.
"""
import numpy as np

from .engine import backprop
from .tensor import Tensor


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """The gradients of ``outputs`` with respect to ``inputs``, as ``torch.autograd.grad``.

    ``outputs`` and ``inputs`` are tensors or sequences of them (inputs may be computed
    tensors too); ``grad_outputs`` gives d(loss)/d(output) for each output (None: ones,
    for one-element outputs). Returns a tuple of tensors, one per input; no ``.grad``
    changes. With ``create_graph`` the gradients are recorded as a graph, so they can
    be differentiated again; the graph is then kept unless ``retain_graph=False``.
    """
    outputs, inputs = _as_list(outputs), _as_list(inputs)
    grad_outputs = ([None] * len(outputs) if grad_outputs is None else [grad_outputs]
                    if isinstance(grad_outputs, (Tensor, np.ndarray)) else list(grad_outputs))
    if len(grad_outputs) != len(outputs):  # zip would drop the outputs left over
        raise RuntimeError(f"grad: got {len(outputs)} outputs but {len(grad_outputs)} "
                           f"grad_outputs; pass one gradient (or None, for a one-element "
                           f"output) per output")
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError(f"grad: an input (shape {t.shape}) does not require grad")
    vertices = [t.op or t for t in inputs]
    found = backprop(outputs, list(grad_outputs), retain_graph, create_graph, "grad()",
                     vertices)
    results = []
    for t, vertex in zip(inputs, vertices):
        g = found.get(vertex)
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: an input (shape {t.shape}) was not used to compute "
                               f"the outputs; pass allow_unused=True to get None for it")
        results.append(g if g is None or isinstance(g, Tensor) else Tensor._wrap(g))
    return tuple(results)


def _as_list(values):
    """A list or tuple as a list; one tensor or array (or number) as a list of one."""
    return list(values) if isinstance(values, (list, tuple)) else [values]


def _prepared(inputs):
    """Leaves of the inputs' values that require grad, cut from any graph they are in."""
    return [Tensor(x.data if isinstance(x, Tensor) else np.asarray(x, dtype=float),
                   requires_grad=True) for x in _as_list(inputs)]


def _tensors(values, like, caller):
    """One tensor per input, shaped like it (as torch.autograd.functional checks)."""
    values = _as_list(values)
    if len(values) != len(like):
        raise ValueError(f"{caller}: {len(values)} directions for {len(like)} inputs; give "
                         f"one per input, shaped like it")
    tensors = [v if isinstance(v, Tensor) else Tensor(np.asarray(v, dtype=x.dtype))
               for v, x in zip(values, like)]
    for i, (v, x) in enumerate(zip(tensors, like)):
        if v.shape != x.shape:
            raise ValueError(f"{caller}: direction {i} has shape {v.shape}, but its input "
                             f"has shape {x.shape}")
    return tensors


def vjp(f, inputs, v=None):
    """(f(*inputs), v^T J): the vector-Jacobian product, with ``v`` shaped like f's output
    (None: ones, for a one-element output). One tensor per input."""
    xs = _prepared(inputs)
    out = f(*xs)
    return out, grad(out, xs, grad_outputs=v, allow_unused=True)


def jvp(f, inputs, tangents):
    """(f(*inputs), J t): how f's output moves along the direction ``tangents`` (one per
    input, shaped like it), from two reverse passes; a tensor shaped like the output."""
    xs = _prepared(inputs)
    tangents = _tensors(tangents, xs, "jvp")
    out = f(*xs)
    if not out.requires_grad:  # f does not depend on its inputs: the derivative is 0
        return out.detach(), Tensor(np.zeros(out.shape, dtype=out.dtype))
    u = Tensor(np.zeros(out.shape, dtype=out.dtype), requires_grad=True)
    g = grad(out, xs, grad_outputs=u, create_graph=True, allow_unused=True)
    used = [(gi, t) for gi, t in zip(g, tangents)
            if gi is not None and gi.requires_grad]
    if not used:  # f does not depend on its inputs (or only linearly on none of them)
        return out.detach(), Tensor(np.zeros(out.shape, dtype=out.dtype))
    (jt,) = grad([gi for gi, _ in used], [u], grad_outputs=[t for _, t in used],
                 allow_unused=True)
    return out.detach(), jt if jt is not None else Tensor(np.zeros(out.shape, out.dtype))


def hvp(f, inputs, v):
    """(f(*inputs), H v) for a scalar function f: the Hessian (of f with respect to all
    inputs together) times ``v`` (one per input), from two reverse passes; a tuple
    with one tensor per input."""
    xs = _prepared(inputs)
    v = _tensors(v, xs, "hvp")
    out = f(*xs)
    zeros = tuple(Tensor(np.zeros(x.shape, x.dtype)) for x in xs)
    if not out.requires_grad:  # f does not depend on its inputs
        return out.detach(), zeros
    g = grad(out, xs, create_graph=True, allow_unused=True)
    used = [(gi, x, t) for gi, x, t in zip(g, xs, v)
            if gi is not None and gi.requires_grad]
    if not used:
        return out.detach(), zeros
    hv = grad([gi for gi, _, _ in used], xs, grad_outputs=[t for _, _, t in used],
              allow_unused=True)
    return out.detach(), tuple(z if h is None else h for h, z in zip(hv, zeros))
