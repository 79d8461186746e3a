"""Composite functions and losses, written with the primitives of ``ops.py``.

Nothing here has a backward of its own: each function is a few primitive ops, so its
gradient comes from the engine and its nodes show up in a drawing of the graph.

Losses take ``reduction``: "mean" (the default), "sum", or "none" (one loss per entry).
"""
import math

import numpy as np

from . import ops
from .engine import ShapeError
from .random import generator
from .tensor import Tensor

log_softmax = ops.log_softmax
softmax = ops.softmax  # softmax(x)_i = e^(x_i) / sum_j e^(x_j): the probabilities y^ of logits x
softplus = ops.softplus
relu = ops.relu
sigmoid = ops.sigmoid
tanh = ops.tanh


def gelu(x, approximate="none"):
    """GELU(x) = x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, with Phi the standard normal's
    distribution function; ``approximate="tanh"`` gives PyTorch's other form,
    x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2."""
    x = ops.as_tensor(x)
    if approximate == "none":
        return x * (1 + ops.erf(x * (1 / math.sqrt(2)))) * 0.5
    if approximate == "tanh":
        return x * (1 + ops.tanh((x + 0.044715 * x * x * x) * math.sqrt(2 / math.pi))) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', not {approximate!r}")


def one_hot(tensor, num_classes=-1):
    """(..., num_classes) int64 tensor with a 1 at each index of ``tensor`` (integers in
    [0, num_classes)) and 0 elsewhere; num_classes=-1 takes the largest index + 1."""
    indices = np.asarray(tensor.data if isinstance(tensor, Tensor) else tensor)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"one_hot: indices must be integers, not {indices.dtype}")
    if num_classes == -1:
        if indices.size == 0:
            raise ValueError("one_hot: cannot infer num_classes from no indices; pass it")
        num_classes = int(indices.max()) + 1
    if indices.size and (indices.min() < 0 or indices.max() >= num_classes):
        raise IndexError(f"one_hot: indices must lie in [0, {num_classes}), found values "
                         f"from {indices.min()} to {indices.max()}")
    return Tensor._wrap((indices[..., None] == np.arange(num_classes)).astype(np.int64))


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


def cross_entropy(logits, targets, reduction="mean", ignore_index=-100, weight=None):
    """L = -log softmax(logits)[target]: the negative log-probability of the true class,
    nll_loss of log_softmax(logits) along the last axis.

    logits: (N, C) or (T, B, C), any shape with the classes on the last axis.
    targets: integers in [0, C) of the logits' shape without that axis ((N,) or (T, B)).
    Entries whose target equals ``ignore_index`` (padded time steps) contribute
    nothing: their loss is 0, and "mean" divides by the number of the others, as
    PyTorch does (so a batch with every entry ignored gives nan). ``weight`` (C,)
    weighs each class, as in ``nll_loss``.
    """
    logits = ops.as_tensor(logits)
    return _nll(lambda: ops.log_softmax(logits, -1), logits, targets, weight, reduction,
                ignore_index, "cross_entropy")


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean"):
    """L = -weight[target] input[target]: the negative log-likelihood of the true class,
    for log-probabilities ``input`` (e.g. from log_softmax) with the classes on the
    last axis ((N, C), or (T, B, C)) and integer targets of the shape without it.

    ``weight`` (C,) weighs each class (default 1); "mean" divides by the sum of the
    weights of the targets, as PyTorch does. Targets equal to ``ignore_index`` count
    for nothing.
    """
    input = ops.as_tensor(input)
    return _nll(lambda: input, input, target, weight, reduction, ignore_index, "nll_loss")


def _nll(log_probs_of, scores, targets, weight, reduction, ignore_index, name):
    """-weight[target] log_probs[target] per entry, reduced; ``scores`` are the logits or
    log-probabilities (checked first), ``log_probs_of()`` makes the log-probabilities."""
    targets = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be integer class indices, "
                        f"not {targets.dtype}")
    if scores.ndim == 0 or targets.shape != scores.shape[:-1]:
        raise ShapeError(
            f"{name}: targets of shape {targets.shape} must have the input's shape "
            f"{scores.shape} without its last (class) axis, i.e. {scores.shape[:-1]}")
    n_classes = scores.shape[-1]
    kept = targets != ignore_index
    kept_shape = kept.shape
    out_of_range = kept & ((targets < 0) | (targets >= n_classes))
    if out_of_range.any():
        raise IndexError(
            f"{name}: targets must lie in [0, {n_classes}) or equal ignore_index "
            f"({ignore_index}); found {targets[out_of_range][0]}")
    if weight is not None:
        weight = np.asarray(weight.data if isinstance(weight, Tensor) else weight,
                            dtype=scores.dtype)
        if weight.shape != (n_classes,):
            raise ShapeError(f"{name}: weight must have one entry per class, shape "
                             f"({n_classes},), not {weight.shape}")
    _check_reduction(reduction, name)
    # Pick log y^[target] row by row (a gather: only the picked entries get gradient).
    log_probs = log_probs_of().reshape(-1, n_classes)
    kept, targets = kept.reshape(-1), targets.reshape(-1)
    if reduction == "none":
        rows, safe = np.arange(len(targets)), np.where(kept, targets, 0)
        scale = kept.astype(scores.dtype) * (1 if weight is None else weight[safe])
        return (-(log_probs[rows, safe] * scale)).reshape(kept_shape)
    rows = np.flatnonzero(kept)
    picked = log_probs[rows, targets[rows]]
    if weight is None:
        return -(ops.mean(picked) if reduction == "mean" else ops.sum(picked))
    total = -ops.sum(picked * weight[targets[rows]])
    return total / weight[targets[rows]].sum() if reduction == "mean" else total


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
    if not ((probs.data >= 0) & (probs.data <= 1)).all():  # (NaN too)
        raise ValueError("binary_cross_entropy: probabilities must lie in [0, 1] (and not "
                         "be NaN); for logits use binary_cross_entropy_with_logits")
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


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = (x - mean x) / sqrt(var x + eps) * weight + bias, the mean and the (biased,
    correction 0) variance taken over the last axes, those of ``normalized_shape``;
    ``weight`` and ``bias`` have that shape (or are None)."""
    input = ops.as_tensor(input)
    shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else \
        tuple(normalized_shape)
    if not shape or input.shape[input.ndim - len(shape):] != shape or input.ndim < len(shape):
        raise ShapeError(f"layer_norm: normalized_shape {shape} must be the last axes of "
                         f"the input, whose shape is {input.shape}")
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    centred = input - ops.mean(input, axis=axes, keepdims=True)
    y = centred / ops.sqrt(ops.var(input, axis=axes, correction=0, keepdims=True) + eps)
    y = y if weight is None else y * weight
    return y if bias is None else y + bias


def pad(input, pad, mode="constant", value=0.0):
    """``input`` with ``value`` around it, as PyTorch's F.pad: ``pad`` lists (before,
    after) pairs from the last axis backwards, (left, right, top, bottom, ...).
    ``tg.pad`` (NumPy's order: one pair per axis from the first) is the same op."""
    input = ops.as_tensor(input)
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, not {mode!r}")
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {tuple(pad)} must hold (before, after) pairs for at most "
                         f"the {input.ndim} axes of the input")
    pairs = [tuple(pad[i:i + 2]) for i in range(0, len(pad), 2)][::-1]
    return ops.pad(input, [(0, 0)] * (input.ndim - len(pairs)) + pairs, value=value)


# ---- convolution and pooling -----------------------------------------------------------
def _sides(value, n, name):
    """``value`` (an int, or one int per spatial axis) as a tuple of ``n`` ints."""
    sides = (int(value),) * n if isinstance(value, (int, np.integer)) else tuple(value)
    if len(sides) != n or any(not isinstance(v, (int, np.integer)) for v in sides):
        raise ValueError(f"{name} must be an int or {n} ints, not {value!r}")
    return sides


def _padding(padding, kernel, dilation, stride, name):
    """(before, after) per spatial axis for ``padding``: ints, "valid" or "same"."""
    if padding == "valid":
        return [(0, 0)] * len(kernel)
    if padding == "same":  # the output keeps the input's size; an odd total pads after
        if any(s != 1 for s in stride):
            raise ValueError(f"{name}: padding='same' needs stride 1, not {stride}")
        spans = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return [(span // 2, span - span // 2) for span in spans]
    if isinstance(padding, str):
        raise ValueError(f"{name}: padding must be ints, 'valid' or 'same', not {padding!r}")
    return [(p, p) for p in _sides(padding, len(kernel), f"{name}: padding")]


def _windows(input, kernel, stride, padding, dilation, value, name):
    """(the windows of ``input`` (N, C, *spatial), as ``ops.unfold`` makes them,
    (N, C, *positions, *kernel)), after padding each spatial side with ``value``."""
    n = len(kernel)
    stride = _sides(stride, n, f"{name}: stride")
    dilation = _sides(dilation, n, f"{name}: dilation")
    if any(s < 1 for s in stride) or any(d < 1 for d in dilation):
        raise ValueError(f"{name}: stride {stride} and dilation {dilation} must be >= 1")
    widths = _padding(padding, kernel, dilation, stride, name)
    if any(w < 0 for pair in widths for w in pair):
        raise ValueError(f"{name}: padding must be >= 0, not {padding!r}")
    if any(w > 0 for pair in widths for w in pair):
        input = ops.pad(input, [(0, 0), (0, 0)] + widths, value=value)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    if any(span > side for span, side in zip(spans, input.shape[2:])):
        raise ShapeError(
            f"{name}: the kernel {tuple(kernel)} with dilation {dilation} spans "
            f"{tuple(spans)}, more than the padded input's size {input.shape[2:]}")
    return ops.unfold(input, kernel_size=tuple(kernel), stride=stride, dilation=dilation)


def _batched(input, n, name):
    """(input as (N, C, *spatial), whether a batch axis was added): PyTorch also takes
    one unbatched example, (C, *spatial)."""
    input = ops.as_tensor(input)
    if input.ndim not in (n + 1, n + 2):
        raise ShapeError(f"{name}: the input must be (N, C{', L' if n == 1 else ', H, W'}) "
                         f"or unbatched without N, not of shape {input.shape}")
    return (input, False) if input.ndim == n + 2 else (ops.unsqueeze(input, 0), True)


def _conv(input, weight, bias, stride, padding, dilation, groups, n, name):
    """The cross-correlation of ``n`` spatial axes that conv1d and conv2d compute."""
    x, unbatched = _batched(input, n, name)
    weight = ops.as_tensor(weight)
    if not isinstance(groups, (int, np.integer)) or groups < 1 or x.shape[1] % groups or \
            weight.shape[0] % groups:
        raise ValueError(f"{name}: groups ({groups!r}) must be a positive int that divides "
                         f"in_channels ({x.shape[1]}) and out_channels ({weight.shape[0]})")
    if weight.ndim != n + 2 or weight.shape[1] * groups != x.shape[1]:
        raise ShapeError(f"{name}: the weight must be (out_channels, in_channels / groups = "
                         f"{x.shape[1] // groups}, *kernel_size) with {n} kernel sides, "
                         f"not {weight.shape}")
    out_channels, kernel = weight.shape[0], weight.shape[2:]
    cols = _windows(x, kernel, stride, padding, dilation, 0.0, name)  # (N, C, *P, *K)
    positions = cols.shape[2:2 + n]
    # Each position's window as one row (C * prod K), against the weight's rows: one matmul
    window = x.shape[1] // groups * math.prod(kernel)  # the entries one filter sees
    rows = ops.permute(cols, (0, *range(2, 2 + n), 1, *range(2 + n, 2 + 2 * n)))
    rows = rows.reshape(x.shape[0] * math.prod(positions), groups, window)
    if groups == 1:  # (N * prod P, out)
        out = ops.linear(rows.reshape(len(rows), window),
                         weight.reshape(out_channels, window), bias)
    else:  # group g's rows (its C / groups channels) against its out / groups filters
        filters = weight.reshape(groups, out_channels // groups, window)
        out = ops.swapaxes(ops.swapaxes(rows, 0, 1) @ ops.swapaxes(filters, 1, 2), 0, 1)
        out = out.reshape(len(rows), out_channels)
        out = out if bias is None else out + bias
    out = ops.permute(out.reshape((x.shape[0],) + positions + (out_channels,)),
                      (0, n + 1, *range(1, n + 1)))
    return ops.squeeze(out, 0) if unbatched else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """out[n, o, l] = b[o] + sum_{c, k} W[o, c, k] x[n, c, l stride + k dilation], as
    PyTorch's conv1d (a cross-correlation): input (N, C_in, L) or (C_in, L), weight
    (C_out, C_in / groups, K), bias (C_out,) or None; ``padding`` adds zeros on both
    sides (an int, or "valid" / "same"); with ``groups`` > 1 each group of C_in / groups
    channels has its own C_out / groups filters. Built from pad, unfold and matmul: its
    gradients, of any order, come from theirs."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """out[n, o, i, j] = b[o] + sum_{c, k, l} W[o, c, k, l] x[n, c, i s_h + k d_h,
    j s_w + l d_w], as PyTorch's conv2d: input (N, C_in, H, W) or (C_in, H, W), weight
    (C_out, C_in / groups, K_h, K_w), bias (C_out,) or None; stride, padding (zeros)
    and dilation are ints or (height, width) pairs, padding also "valid" / "same"."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def _pool_windows(input, kernel_size, stride, padding, dilation, ceil_mode, value, n, name):
    """(the windows a pooling reduces, (N, C, *positions, *kernel), whether the input was
    unbatched); the stride defaults to the kernel size, as in PyTorch."""
    x, unbatched = _batched(input, n, name)
    kernel = _sides(kernel_size, n, f"{name}: kernel_size")
    stride = kernel if stride is None or stride == [] else stride
    if ceil_mode:
        raise ValueError(f"{name}: ceil_mode=True is not supported")
    if any(2 * p > k for p, k in zip(_sides(padding, n, f"{name}: padding"), kernel)):
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel {kernel}")
    return _windows(x, kernel, stride, padding, dilation, value, name), unbatched


def _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, n, name):
    cols, unbatched = _pool_windows(input, kernel_size, stride, padding, dilation,
                                    ceil_mode, -np.inf, n, name)
    cols = cols.reshape(cols.shape[:2 + n] + (-1,))
    # The first maximum of each window takes the gradient, as in PyTorch (not shared)
    first = np.argmax(cols.data, axis=-1)[..., None] == np.arange(cols.shape[-1])
    out = ops.sum(ops.where(first, cols, 0.0), axis=-1)
    return ops.squeeze(out, 0) if unbatched else out


def _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, n, name):
    cols, unbatched = _pool_windows(input, kernel_size, stride, padding, 1, ceil_mode, 0.0,
                                    n, name)
    kernel_axes = tuple(range(2 + n, 2 + 2 * n))
    if count_include_pad:
        out = ops.mean(cols, axis=kernel_axes)
    else:  # divide by the number of the input's own entries in each window
        input = ops.as_tensor(input)
        ones = Tensor._wrap(np.ones((1, 1) + input.shape[-n:], dtype=input.dtype))
        counts, _ = _pool_windows(ones, kernel_size, stride, padding, 1, False, 0.0, n, name)
        out = ops.sum(cols, axis=kernel_axes) / counts.data.sum(axis=kernel_axes)
    return ops.squeeze(out, 0) if unbatched else out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """out[n, c, l] = max_k x[n, c, l stride + k dilation], as PyTorch's max_pool1d; the
    padding is -inf (never the maximum), the stride defaults to the kernel size."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, 1,
                     "max_pool1d")


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """out[n, c, i, j] = the largest x[n, c, i s_h + k d_h, j s_w + l d_w] over the
    kernel's (k, l), as PyTorch's max_pool2d: input (N, C, H, W) or (C, H, W), the
    stride defaults to the kernel size, the padding is -inf. dL/dx goes to the first
    maximum of each window (as in PyTorch; ``tg.max`` shares it among ties instead)."""
    return _max_pool(input, kernel_size, stride, padding, dilation, ceil_mode, 2,
                     "max_pool2d")


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """out[n, c, l] = the mean of x[n, c, l stride + k] over the kernel, as PyTorch's
    avg_pool1d: the zero padding counts in the mean unless count_include_pad=False."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, 1,
                     "avg_pool1d")


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    """out[n, c, i, j] = the mean of each window of (N, C, H, W), as PyTorch's avg_pool2d;
    the stride defaults to the kernel size, the zero padding counts unless
    count_include_pad=False."""
    return _avg_pool(input, kernel_size, stride, padding, ceil_mode, count_include_pad, 2,
                     "avg_pool2d")


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
