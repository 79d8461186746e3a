"""Composite functions and losses, written with the primitives of ``ops.py``.

Nothing here has a backward of its own: each function is a few primitive ops, so its
gradient comes from the engine and its nodes show up in a drawing of the graph.

Losses take ``reduction``: "mean" (the default), "sum", or "none" (one loss per entry).
"""
import numpy as np

from . import ops
from .engine import ShapeError
from .random import generator
from .tensor import Tensor

log_softmax = ops.log_softmax
softplus = ops.softplus


def softmax(x, axis=-1):
    """softmax(x)_i = e^(x_i) / sum_j e^(x_j) along ``axis``: the probabilities y^ that
    logits x stand for. Computed as exp(log_softmax(x)), so logits of +-1000 are fine."""
    return ops.exp(ops.log_softmax(x, axis))


def _check_reduction(reduction, name):
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"{name}: reduction must be 'mean', 'sum' or 'none', "
                         f"not {reduction!r}")


def _reduce(loss, reduction, name):
    _check_reduction(reduction, name)
    if reduction == "mean":
        return ops.mean(loss)
    return ops.sum(loss) if reduction == "sum" else loss


def _same_shape_target(prediction, target, name):
    """``target`` as a tensor of ``prediction``'s precision, checked to have its shape."""
    prediction = ops.as_tensor(prediction)
    if not isinstance(target, Tensor):
        target = ops.as_tensor(np.asarray(target, dtype=prediction.dtype))
    if target.shape != prediction.shape:
        raise ShapeError(
            f"{name}: input shape {prediction.shape} and target shape {target.shape} "
            f"differ; they must be equal (broadcasting them would silently compare "
            f"every pair)")
    return prediction, target


def cross_entropy(logits, targets, reduction="mean", ignore_index=-100):
    """L = -log softmax(logits)[target]: the negative log-probability of the true class.

    logits: (N, C) or (T, B, C), any shape with the classes on the last axis.
    targets: integers in [0, C) of the logits' shape without that axis ((N,) or (T, B)).
    Entries whose target equals ``ignore_index`` (padded time steps) contribute
    nothing: their loss is 0, and "mean" divides by the number of the others, as
    PyTorch does (so a batch with every entry ignored gives nan).
    """
    logits = ops.as_tensor(logits)
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, "
                        f"not {targets.dtype}")
    if targets.shape != logits.shape[:-1]:
        raise ShapeError(
            f"cross_entropy: targets of shape {targets.shape} must have the logits' shape "
            f"{logits.shape} without its last (class) axis, i.e. {logits.shape[:-1]}")
    n_classes = logits.shape[-1]
    kept = targets != ignore_index
    kept_shape = kept.shape
    out_of_range = kept & ((targets < 0) | (targets >= n_classes))
    if out_of_range.any():
        raise IndexError(
            f"cross_entropy: targets must lie in [0, {n_classes}) or equal ignore_index "
            f"({ignore_index}); found {targets[out_of_range][0]}")
    _check_reduction(reduction, "cross_entropy")
    # Pick log y^[target] row by row (a gather: only the picked entries get gradient).
    log_probs = ops.log_softmax(logits, -1).reshape(-1, n_classes)
    kept, targets = kept.reshape(-1), targets.reshape(-1)
    if reduction == "none":
        rows = np.arange(len(targets))
        picked = log_probs[rows, np.where(kept, targets, 0)] * kept.astype(logits.dtype)
        return (-picked).reshape(kept_shape)
    rows = np.flatnonzero(kept)
    picked = log_probs[rows, targets[rows]]
    return -(ops.mean(picked) if reduction == "mean" else ops.sum(picked))


def _clamped_log(p):
    """log p, but no less than -100 (PyTorch's clamp in binary_cross_entropy), so that a
    probability of exactly 0 gives a finite loss; no gradient flows where it clamps."""
    above = p.data > np.exp(-100.0)
    if above.all():
        return ops.log(p)
    return ops.where(above, ops.log(ops.where(above, p, 1.0)), -100.0)


def binary_cross_entropy(probs, targets, reduction="mean"):
    """L = -y log y^ - (1 - y) log(1 - y^), for probabilities y^ in [0, 1] and targets y.

    This is the per-step loss L<t>(y^<t>, y<t>) of the course notes. One note writes
    y^ where y belongs (which would make it the entropy of the prediction, with no
    target in it): the target y weighs the logs, the prediction y^ is inside them. Each log is clamped at -100, as PyTorch does. For
    probabilities that come out of a sigmoid, binary_cross_entropy_with_logits is
    more accurate.
    """
    probs, targets = _same_shape_target(probs, targets, "binary_cross_entropy")
    if ((probs.data < 0) | (probs.data > 1)).any():
        raise ValueError("binary_cross_entropy: probabilities must lie in [0, 1]; for "
                         "logits use binary_cross_entropy_with_logits")
    losses = -(targets * _clamped_log(probs) + (1 - targets) * _clamped_log(1 - probs))
    return _reduce(losses, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(logits, targets, reduction="mean"):
    """binary_cross_entropy(sigmoid(x), y) for logits x, computed without forming
    sigmoid(x): since -log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x),

        L = y softplus(-x) + (1 - y) softplus(x),   dL/dx = sigmoid(x) - y,

    which stays exact for any |x| (a sigmoid would round to 0 or 1 past |x| ~ 37).
    """
    logits, targets = _same_shape_target(logits, targets, "binary_cross_entropy_with_logits")
    losses = targets * ops.softplus(-logits) + (1 - targets) * ops.softplus(logits)
    return _reduce(losses, reduction, "binary_cross_entropy_with_logits")


def mse_loss(input, target, reduction="mean"):
    """L = (input - target)^2 per entry; "mean" averages over every entry."""
    input, target = _same_shape_target(input, target, "mse_loss")
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def dropout(x, p=0.5, training=True):
    """Zero each entry with probability p while training, and scale the survivors by
    1/(1-p) (inverted dropout), so the expected value is unchanged and evaluation
    needs no rescaling. Identity when not training. The mask is drawn from
    ``tinygraph.random`` (seed with ``tg.manual_seed``).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must lie in [0, 1], not {p}")
    x = ops.as_tensor(x)
    if not training or p == 0:
        return x
    dtype = x.dtype if x.dtype.kind == "f" else np.float64
    if p == 1:
        return x * np.zeros(x.shape, dtype=dtype)
    kept = generator().random(x.shape) >= p
    return x * (kept / (1 - p)).astype(dtype)
