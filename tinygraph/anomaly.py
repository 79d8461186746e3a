"""Anomaly mode: find the first NaN or infinity, and the line of user code behind it.

    with tg.detect_anomaly():
        loss = model(x)          # raises at the first op whose output is not finite
        loss.backward()          # raises at the first backward that makes a non-finite gradient

Inside the block every recorded node remembers the file and line of user code that
created it. A non-finite value is reported in *forward* order, the op that produced
it first (not, as a backward-order check would, some later op it flowed into), with
its inputs' ranges. Off by default, and then it costs one flag test per op.
"""
import os
import sys

import numpy as np

from . import engine


class AnomalyError(FloatingPointError):
    """A non-finite value appeared while anomaly mode was on."""


class _Anomaly:
    """Anomaly mode as an engine observer: it checks every op's output and every
    gradient, and notes where in the user's code each node was created."""

    def forward(self, op, inputs, options, out):
        op.site = creation_site()
        check_forward(op, [t._data for t in inputs], out._data, op.site)

    def backward(self, node, grads):
        check_backward(node, grads)


def detect_anomaly():
    """Check every op's output and every gradient for NaN/inf inside the block."""
    return engine.observing(_Anomaly())


def is_anomaly_enabled():
    """True inside ``detect_anomaly()``."""
    return any(isinstance(o, _Anomaly) for o in engine.observers)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
def creation_site():
    """'file:line' of the innermost caller outside tinygraph (the user's line)."""
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
            _PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _describe(array):
    array = np.asarray(array)
    if array.dtype.kind not in "fc" or array.size == 0:
        return f"{array.dtype} {array.shape}"
    finite = array[np.isfinite(array)]
    span = f"range [{finite.min():.4g}, {finite.max():.4g}]" if finite.size else "no finite values"
    bad = []
    if np.isnan(array).any():
        bad.append(f"{int(np.isnan(array).sum())} NaN")
    if np.isinf(array).any():
        bad.append(f"{int(np.isinf(array).sum())} inf")
    return f"shape {array.shape}, {span}" + (f", {', '.join(bad)}" if bad else "")


def check_forward(op, arrays, out, site):
    """Raise if ``out`` holds a non-finite value."""
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        inputs = "\n".join(f"  input {i}: {_describe(a)}" for i, a in enumerate(arrays))
        raise AnomalyError(
            f"'{op.name}' produced a non-finite value ({_describe(out)}), the first "
            f"op to do so in forward order; it was called at {site}.\n{inputs}")


def check_backward(op, grads):
    """Raise if the backward of ``op`` produced a non-finite gradient."""
    for i, grad in enumerate(grads):
        grad = getattr(grad, "_data", grad)  # a tensor, when the backward is recorded
        if grad is not None and not isinstance(grad, np.ndarray):
            grad = grad.evaluate()  # a lazy sum (ops.Scatter)
        if grad is not None and grad.dtype.kind == "f" and not np.isfinite(grad).all():
            site = op.site or "<created outside detect_anomaly()>"
            raise AnomalyError(
                f"the backward of '{op.name}' (created at {site}) produced a non-finite "
                f"gradient for its input {i} ({_describe(grad)})")
