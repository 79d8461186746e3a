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
from contextlib import contextmanager

import numpy as np

enabled = False

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(FloatingPointError):
    """A non-finite value appeared while anomaly mode was on."""


@contextmanager
def detect_anomaly():
    """Check every op's output and every gradient for NaN/inf inside the block."""
    global enabled
    previous, enabled = enabled, True
    try:
        yield
    finally:
        enabled = previous


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
        if grad is not None and np.asarray(grad).dtype.kind == "f" and not np.isfinite(grad).all():
            site = op.site or "<created outside detect_anomaly()>"
            raise AnomalyError(
                f"the backward of '{op.name}' (created at {site}) produced a non-finite "
                f"gradient for its input {i} ({_describe(grad)})")
