"""The primitive ops: each one's forward and vector-Jacobian product side by side.

Notation: ``g`` is dL/d(out), the gradient arriving at the op's output; ``backward``
returns dL/d(input) for each input (None where ``needs_grad`` says nobody wants it).
The engine sums each gradient back to its input's shape, so broadcasting needs no
code here. Each VJP is written in operations that work on NumPy arrays and on
tensors alike: operators (+, *, @, ...), the methods both have (``sum``, ``reshape``,
``transpose``) and ``Op.call`` (an op on arrays gives an array, on tensors a
tensor). So the first-order backward runs on plain arrays, and the same code,
handed tensors, records the backward pass for gradients of gradients.

Each class is registered once, at the bottom: that makes the function (``tg.tanh``)
and the method (``x.tanh()``). Everything else in tinygraph (losses, convolutions, RNN
cells) is built from these, so its gradient comes for free and shows up in the graph.
"""
import builtins
import inspect
import itertools
import math

import numpy as np

from .engine import Op
from .tensor import Tensor


# ---- elementwise, two inputs --------------------------------------------------------
class Add(Op):
    """out = a + b;  dL/da = g,  dL/db = g."""

    broadcasts = True

    def forward(self, a, b):
        return a + b

    def backward(self, g, out, a, b):
        return g, g


class Sub(Op):
    """out = a - b;  dL/da = g,  dL/db = -g."""

    broadcasts = True

    def forward(self, a, b):
        return a - b

    def backward(self, g, out, a, b):
        return g, (-g if self.needs_grad[1] else None)


class Mul(Op):
    """out = a * b;  dL/da = g b,  dL/db = g a."""

    saves_inputs = broadcasts = True

    def forward(self, a, b):
        return a * b

    def backward(self, g, out, a, b):
        return (g * b if self.needs_grad[0] else None,
                g * a if self.needs_grad[1] else None)


class Div(Op):
    """out = a / b;  dL/da = g / b,  dL/db = -g a / b^2 = -(g / b) out (no b^2, which
    would underflow for a tiny b)."""

    saves_inputs = saves_output = broadcasts = True

    def forward(self, a, b):
        return a / b

    def backward(self, g, out, a, b):
        ga = g / b
        return ga if self.needs_grad[0] else None, (-ga * out if self.needs_grad[1] else None)


class Pow(Op):
    """out = a ** b;  dL/da = g b a^(b-1),  dL/db = g out log a.

    As in PyTorch, dL/da is 0 where b == 0, and dL/db is 0 where a == 0 and b >= 0
    (the limit of a^b log a); elsewhere a negative base gives NaN for dL/db.
    """

    saves_inputs = saves_output = broadcasts = True

    def forward(self, a, b):
        return a ** b

    def backward(self, g, out, a, b):
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_grad[0]:
                # the power taken of 1 where b == 0: a ** -1 at a == 0 would be inf there,
                # and its derivative (0 from the where, times inf) a nan second derivative
                base = Where.call(1.0, a, b == 0)
                ga = g * Where.call(0.0, b * base ** (b - 1), b == 0)
            if self.needs_grad[1]:
                limit = (a == 0) & (b >= 0)  # (log a stays -inf where 0^b is inf)
                gb = g * Where.call(0.0, out * Log.call(Where.call(1.0, a, limit)), limit)
        return ga, gb


class MatMul(Op):
    """out = a @ b, as ``np.matmul``: 1-D, 2-D and batched with broadcasting.

    For matrices, dL/da = g b^T and dL/db = a^T g. A 1-D operand is a row (a) or a
    column (b) matrix while the products are taken.
    """

    saves_inputs = broadcasts = True

    def forward(self, a, b):
        return np.matmul(a, b)

    def backward(self, g, out, a, b):
        a2 = a.reshape((1,) + a.shape) if a.ndim == 1 else a
        b2 = b.reshape(b.shape + (1,)) if b.ndim == 1 else b
        g2 = g.reshape(g.shape[:len(g.shape) - (a.ndim > 1) - (b.ndim > 1)] +
                       a2.shape[-2:-1] + b2.shape[-1:])  # with a2 @ b2's last two axes
        ga = g2 @ _swap_last(b2) if self.needs_grad[0] else None  # (1-D a: summed back)
        gb = _swap_last(a2) @ g2 if self.needs_grad[1] else None
        return ga, (gb.reshape(gb.shape[:-1]) if b.ndim == 1 and gb is not None else gb)


def _swap_last(x):
    """x with its last two axes swapped (the matrix transpose of every matrix in it)."""
    axes = list(range(x.ndim))
    axes[-2:] = axes[-1], axes[-2]
    return x.transpose(tuple(axes))


class Linear(Op):
    """out = x W^T + b, the affine map of a layer whose weight W is (out x in), as
    PyTorch's ``F.linear``; in the notes' column notation it is W x + b.

    x is (..., in), out is (..., out); b is (out,), or any shape that broadcasts to
    out's. With the rows of x as a matrix X and g as a matrix G: dL/dX = G W,
    dL/dW = G^T X and dL/db = g (summed to b's shape by the engine).
    """

    saves_inputs, broadcasts = 2, True  # (x and W: b's gradient needs neither)

    def forward(self, x, W, b=None):
        if W.ndim != 2:
            raise ValueError(f"the weight must be 2-D (out x in), not {W.shape}")
        if x.ndim == 0 or x.shape[-1] != W.shape[1]:
            raise ValueError(f"x has {x.shape[-1] if x.ndim else 0} features but W "
                             f"expects {W.shape[1]}")
        # One (rows x in) @ (in x out) product: np.matmul on a stack would loop over it.
        out = x @ W.T if x.ndim == 2 else _unrows(_rows(x) @ W.T, x.shape[:-1] + W.shape[:1])
        return out if b is None else out + b

    def backward(self, g, out, x, W, b=None):
        g_rows = _rows(g)
        gx = _unrows(g_rows @ W, x.shape) if self.needs_grad[0] else None
        gW = _swap_last(g_rows) @ _rows(x) if self.needs_grad[1] else None
        return gx, gW, g  # (for a linear without b, the engine drops the third)


def _rows(x):
    """x as a matrix of its rows (the last axis), zero rows included."""
    return x if x.ndim == 2 else x.reshape((math.prod(x.shape[:-1]), x.shape[-1]))


def _unrows(rows, shape):
    """The matrix ``rows`` back in ``shape`` (no reshape for a matrix: a view costs a
    tiny linear 3%)."""
    return rows if len(shape) == 2 else rows.reshape(shape)


class Maximum(Op):
    """out = the larger of a and b, entry by entry (``np.maximum``);  dL/da = g where a
    is larger, dL/db = g where b is, and where they tie each gets g / 2 (as PyTorch)."""

    __slots__ = ("share",)  # a's share of g: 1, 0 or 1/2 at a tie
    broadcasts = True
    pick = staticmethod(np.maximum)

    def forward(self, a, b):
        out = self.pick(a, b)
        self.share = np.where(a == b, 0.5, a == out).astype(out.dtype, copy=False)
        return out

    def backward(self, g, out, a, b):
        return (g * self.share if self.needs_grad[0] else None,
                g * (1 - self.share) if self.needs_grad[1] else None)


class Minimum(Maximum):
    """out = the smaller of a and b, entry by entry (``np.minimum``);  dL/da = g where a
    is smaller, dL/db = g where b is, and where they tie each gets g / 2 (as PyTorch)."""

    pick = staticmethod(np.minimum)


# ---- elementwise, one input -------------------------------------------------------
class Neg(Op):
    """out = -x;  dL/dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, g, out, x):
        return -g


class Exp(Op):
    """out = e^x;  dL/dx = g out."""

    saves_output = True

    def forward(self, x):
        return np.exp(x)

    def backward(self, g, out, x):
        return g * out


class Log(Op):
    """out = log x (natural);  dL/dx = g / x."""

    saves_inputs = True

    def forward(self, x):
        return np.log(x)

    def backward(self, g, out, x):
        return g / x


class Tanh(Op):
    """out = tanh x;  dL/dx = g (1 - out^2)."""

    saves_output = True

    def forward(self, x):
        return np.tanh(x)

    def backward(self, g, out, x):
        return g * (1 - out * out)


class Sigmoid(Op):
    """out = 1 / (1 + e^-x), computed without overflow for large |x|;
    dL/dx = g out (1 - out), with 1 - out computed as sigmoid(-x): where out is close
    to 1 the subtraction would cancel."""

    saves_inputs = saves_output = True

    def forward(self, x):
        e = np.exp(-np.abs(x))  # never overflows
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))

    def backward(self, g, out, x):
        return g * out * Sigmoid.call(-x)


class ReLU(Op):
    """out = max(x, 0);  dL/dx = g where x > 0, else 0 (0 at x == 0, as PyTorch)."""

    saves_output = True

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, g, out, x):
        return g * (out > 0)


class Softplus(Op):
    """out = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) so that it neither
    overflows for large x nor loses precision for very negative x;
    dL/dx = g sigmoid(x)."""

    saves_inputs = True

    def forward(self, x):
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def backward(self, g, out, x):
        return g * Sigmoid.call(x)


class Sqrt(Op):
    """out = sqrt(x);  dL/dx = g / (2 out) (inf at x == 0, as in PyTorch)."""

    saves_output = True

    def forward(self, x):
        return np.sqrt(x)

    def backward(self, g, out, x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return g / (2 * out)


class Abs(Op):
    """out = |x|;  dL/dx = g sign(x), which is 0 at x == 0 (as PyTorch)."""

    __slots__ = ("sign",)  # (what forward keeps for the VJP)

    def forward(self, x):
        self.sign = np.sign(x)
        return np.abs(x)

    def backward(self, g, out, x):
        return g * self.sign


class Clamp(Op):
    """out = x clipped to [min, max] (``np.clip``; one bound may be None);  dL/dx = g
    where min <= x <= max, 0 where x was clipped (a bound itself passes g, as PyTorch)."""

    __slots__ = ("inside",)  # (what forward keeps for the VJP)

    def forward(self, x, *, min=None, max=None):
        if min is None and max is None:
            raise ValueError("needs at least one of min and max")
        out = np.clip(x, min, max)
        self.inside = out == x
        return out

    def backward(self, g, out, x):
        return g * self.inside

    @staticmethod
    def arguments(x, min=None, max=None):
        """clamp(x, min, max), the bounds numbers, arrays or tensors taken as constants."""
        for bound in (min, max):
            if isinstance(bound, Tensor) and bound.requires_grad:
                raise TypeError("clamp: a bound that requires grad gets no gradient here; "
                                "use tg.maximum(x, low) and tg.minimum(x, high) instead")
        return [x], {"min": _plain_index(min), "max": _plain_index(max)}


class Sin(Op):
    """out = sin x;  dL/dx = g cos x."""

    saves_inputs = True

    def forward(self, x):
        return np.sin(x)

    def backward(self, g, out, x):
        return g * Cos.call(x)


class Cos(Op):
    """out = cos x;  dL/dx = -g sin x."""

    saves_inputs = True

    def forward(self, x):
        return np.cos(x)

    def backward(self, g, out, x):
        return -g * Sin.call(x)


class Erf(Op):
    """out = erf x = (2/sqrt(pi)) integral_0^x e^(-t^2) dt (``math.erf`` on each entry: NumPy
    has no erf);  dL/dx = g (2/sqrt(pi)) e^(-x^2)."""

    saves_inputs = True

    def forward(self, x):
        return np.vectorize(math.erf, otypes=[np.result_type(x, 1.0)])(x)

    def backward(self, g, out, x):
        return g * (2 / math.sqrt(math.pi)) * Exp.call(-(x * x))


# ---- reductions ------------------------------------------------------------------
def _axes(axis, ndim):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of axes. A 0-d
    array takes axis 0 or -1, as NumPy's reductions do, and has no axis to reduce."""
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axis:
        if not -builtins.max(ndim, 1) <= a < builtins.max(ndim, 1):
            raise np.exceptions.AxisError(a, ndim)
    axes = {a % builtins.max(ndim, 1) for a in axis}
    if len(axes) < len(axis):
        raise ValueError(f"duplicate value in 'axis': {axis} names an axis twice")
    return tuple(sorted(axes)) if ndim else ()


def _kept_shape(shape, axes):
    """``shape`` with the reduced ``axes`` kept as size 1, ready to broadcast back."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Op):
    """out = sum of x over ``axis``;  dL/dx = g broadcast back over the summed axes."""

    __slots__ = ("shape", "axes")  # (what forward keeps for the VJP)

    def forward(self, x, *, axis=None, keepdims=False):
        self.shape, self.axes = x.shape, _axes(axis, x.ndim)
        return np.sum(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g, out, x):
        return BroadcastTo.call(g.reshape(_kept_shape(self.shape, self.axes)), shape=self.shape)


class Mean(Op):
    """out = mean of x over ``axis`` (n elements each);  dL/dx = g / n, broadcast back."""

    __slots__ = ("shape", "axes", "n")  # (what forward keeps for the VJP)

    def forward(self, x, *, axis=None, keepdims=False):
        self.shape, self.axes = x.shape, _axes(axis, x.ndim)
        self.n = math.prod(x.shape[a] for a in self.axes)
        with np.errstate(invalid="ignore"):  # an empty mean is 0 / 0 = NaN, quietly
            return np.sum(x, axis=self.axes, keepdims=keepdims) / self.n

    def backward(self, g, out, x):
        g = g.reshape(_kept_shape(self.shape, self.axes)) * (1 / builtins.max(self.n, 1))
        return BroadcastTo.call(g, shape=self.shape)


class Max(Op):
    """out = max of x over ``axis``.

    dL/dx = g at the maximum. Ties share the gradient equally: if k entries reach the
    maximum, each gets g / k (as ``torch.amax``), so the gradient still sums to g.
    With an axis it returns the values only, as NumPy (``argmax`` gives the indices).
    """

    __slots__ = ("axes", "share")  # (what forward keeps for the VJP)
    reduce = staticmethod(np.max)

    def forward(self, x, *, axis=None, keepdims=False):
        self.axes = _axes(axis, x.ndim)
        empty = [a for a in self.axes if x.shape[a] == 0]
        if empty:
            raise ValueError(f"the {self.name} over axis {empty[0]}, which has size 0, is "
                             f"undefined (an empty slice has none); reduce over other axes")
        out = self.reduce(x, axis=self.axes, keepdims=True)
        self.share = (x == out) / np.sum(x == out, axis=self.axes, keepdims=True)
        return out if keepdims else np.squeeze(out, self.axes)

    def backward(self, g, out, x):
        return g.reshape(_kept_shape(self.share.shape, self.axes)) * self.share.astype(
            g.dtype, copy=False)


class Min(Max):
    """out = min of x over ``axis``;  dL/dx = g at the minimum, g / k to each of k ties
    (as ``torch.amin``). The values only, as NumPy (``argmin`` gives the indices)."""

    reduce = staticmethod(np.min)


class Var(Op):
    """out = sum((x - mean x)^2) / (n - correction) over ``axis``, n entries each:
    correction=1 (the default, as PyTorch) is the unbiased estimate, 0 NumPy's default
    (``ddof=`` is read as ``correction=``);  dL/dx = g 2 (x - mean x) / (n - correction)."""

    __slots__ = ("axes", "divisor")  # (what forward keeps for the VJP)
    saves_inputs = True

    def forward(self, x, *, axis=None, correction=1, keepdims=False):
        self.axes = _axes(axis, x.ndim)
        self.divisor = builtins.max(math.prod(x.shape[a] for a in self.axes) - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):  # no entries, or n <= correction
            centred = x - np.mean(x, axis=self.axes, keepdims=True)
            return np.sum(centred * centred, axis=self.axes, keepdims=keepdims) / self.divisor

    def backward(self, g, out, x):
        g = g.reshape(_kept_shape(x.shape, self.axes))
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * (x - x.mean(axis=self.axes, keepdims=True)) * 2 / self.divisor

    @staticmethod
    def arguments(x, axis=None, *, correction=None, keepdims=False, ddof=None,
                  unbiased=None):
        """var(x, axis, correction=1, keepdims=False); NumPy's ddof= or PyTorch's older
        unbiased= (True: 1, False: 0) may stand for correction=."""
        return [x], {"axis": axis, "correction": _correction(correction, ddof, unbiased),
                     "keepdims": keepdims}


def _correction(correction, ddof, unbiased):
    """The one correction given as correction=, ddof= or unbiased= (default 1)."""
    given = [c for c in (correction, ddof, None if unbiased is None else int(unbiased))
             if c is not None]
    if len(given) > 1:
        raise TypeError("var/std: pass one of correction= (PyTorch), ddof= (NumPy) "
                        "and unbiased=")
    return given[0] if given else 1


class Std(Var):
    """out = sqrt(var x) (see Var, for the correction);  dL/dx = Var's VJP of g / (2 out),
    and 0 where out = 0 (constant entries), as PyTorch: not 0/0."""

    saves_output = True

    def forward(self, x, *, axis=None, correction=1, keepdims=False):
        return np.sqrt(Var.forward(self, x, axis=axis, correction=correction,
                                   keepdims=keepdims))

    def backward(self, g, out, x):
        zero = np.asarray(out == 0) if isinstance(out, np.ndarray) else out.data == 0
        safe = Where.call(1.0, out, zero)  # (no 1/0 even in a second derivative)
        with np.errstate(divide="ignore", invalid="ignore"):  # (n <= correction: NaN)
            return Var.backward(self, Where.call(0.0, g / (2 * safe), zero), out, x)


# ---- shape and indexing -------------------------------------------------------------
class Reshape(Op):
    """out = x with a new shape (one entry may be -1);  dL/dx = g reshaped back."""

    __slots__ = ("shape",)  # (what forward keeps for the VJP)

    def forward(self, x, *, shape):
        self.shape = x.shape
        return np.reshape(x, shape)

    def backward(self, g, out, x):
        return g.reshape(self.shape)

    @staticmethod
    def arguments(x, *sizes, shape=None):
        """reshape(x, 2, 3), reshape(x, (2, 3)) or reshape(x, shape=(2, 3))."""
        if shape is None:
            shape = sizes[0] if len(sizes) == 1 and not isinstance(
                sizes[0], (int, np.integer)) else sizes
        return [x], {"shape": (shape,) if isinstance(shape, (int, np.integer)) else
                     tuple(shape)}



class Squeeze(Reshape):
    """out = x without its size-1 axes among ``axis`` (all axes when None); an axis of
    another size stays, as in PyTorch (NumPy raises);  dL/dx = g reshaped back."""

    arguments = None  # (Reshape's ways of writing a shape do not apply)

    def forward(self, x, *, axis=None):
        axes = [a for a in _axes(axis, x.ndim) if x.shape[a] == 1]
        return super().forward(x, shape=tuple(n for i, n in enumerate(x.shape)
                                              if i not in axes))


class Unsqueeze(Reshape):
    """out = x with a new axis of size 1 at ``axis`` (``np.expand_dims``: -1 is the
    new last axis; a tuple adds several);  dL/dx = g reshaped back."""

    arguments = None

    def forward(self, x, *, axis):
        return super().forward(x, shape=np.expand_dims(x, axis).shape)


class Flatten(Reshape):
    """out = x with the axes start_dim..end_dim (inclusive) merged into one, as PyTorch's
    flatten (the defaults: every axis; a 0-d x becomes shape (1,));  dL/dx = g reshaped back."""

    arguments = None

    def forward(self, x, *, start_dim=0, end_dim=-1):
        if x.ndim == 0:
            return super().forward(x, shape=(1,))
        start, end = _axes(start_dim, x.ndim)[0], _axes(end_dim, x.ndim)[0]
        if start > end:
            raise ValueError(f"start_dim {start_dim} comes after end_dim {end_dim}")
        merged = math.prod(x.shape[start:end + 1])
        return super().forward(x, shape=x.shape[:start] + (merged,) + x.shape[end + 1:])


class BroadcastTo(Op):
    """out = x repeated along the axes where ``shape`` is larger (``np.broadcast_to``);
    dL/dx = g, summed back to x's shape by the engine."""

    broadcasts = True

    def forward(self, x, *, shape):
        return np.broadcast_to(x, shape)

    def backward(self, g, out, x):
        return g


class Expand(BroadcastTo):
    """out = x broadcast to ``sizes``, as PyTorch's expand: -1 keeps an axis's size;
    dL/dx = g, summed back to x's shape by the engine."""

    @staticmethod
    def arguments(x, *sizes):
        """expand(x, 2, -1) or expand(x, (2, -1))."""
        if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)):
            sizes = tuple(sizes[0])
        x, new = as_tensor(x), len(sizes) - np.ndim(x)
        if new < 0:
            raise ValueError(f"expand: {len(sizes)} sizes {sizes} for a tensor of "
                             f"{x.ndim} axes (one size per axis, at least)")
        return [x], {"shape": tuple(x.shape[i - new] if n == -1 and i >= new else n
                                    for i, n in enumerate(sizes))}


class Transpose(Op):
    """out = x with its axes permuted (reversed when ``axes`` is None);
    dL/dx = g permuted by the inverse permutation."""

    __slots__ = ("axes",)  # (what forward keeps for the VJP)

    def forward(self, x, *, axes=None):
        out = np.transpose(x, axes)  # checks that axes are a permutation
        # non-negative, so that argsort gives the inverse permutation
        self.axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(
            a % x.ndim for a in axes)
        return out

    def backward(self, g, out, x):
        return g.transpose(tuple(int(a) for a in np.argsort(self.axes)))

    @staticmethod
    def arguments(x, *order, axes=None):
        """transpose(x), transpose(x, 1, 0), transpose(x, (1, 0)) or axes=(1, 0)."""
        if axes is None and order:
            axes = order[0] if len(order) == 1 and not isinstance(
                order[0], (int, np.integer)) else order
        return [x], {"axes": None if axes is None else tuple(axes)}


class GetItem(Op):
    """out = x[index], for any NumPy index: ints, slices, None, ..., boolean masks,
    integer arrays.

    dL/dx is zero except at the selected places, which receive g. An integer array
    may select one place several times; its gradients then add up.
    """

    __slots__ = ("shape", "index")  # (what forward keeps for the VJP)

    def forward(self, x, *, index):
        self.shape, self.index = x.shape, index
        return x[index]

    def backward(self, g, out, x):
        if isinstance(g, Tensor):
            return IndexAdd.call(g, shape=self.shape, index=self.index)
        return Scatter(self.shape, g.dtype, self.index, g)

    @staticmethod
    def arguments(x, index):
        """x[index]: tensors and lists inside the index become arrays."""
        return [x], {"index": index if type(index) is int else _plain_index(index)}


def _plain_index(index):
    """Replace tensors and lists inside an index by arrays, as NumPy expects."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, list):
        return np.asarray(index)
    return index


class IndexAdd(Op):
    """out = zeros of ``shape`` with g added at [index] (repeated places add up): the
    VJP of indexing, as an op;  dL/dg = g_out[index]."""

    __slots__ = ("index",)  # (what forward keeps for the VJP)

    def forward(self, g, *, shape, index):
        self.index = index
        out = np.zeros(shape, dtype=g.dtype)
        np.add.at(out, index, g)
        return out

    def backward(self, g_out, out, g):
        return GetItem.call(g_out, index=self.index)


class Scatter:
    """A gradient of ``shape`` that is zero except where indexing took values: the VJP
    of x[index] kept as its (index, g) pieces until the gradient is needed, so that T
    slices x[t] of one sequence cost O(T) rather than T full arrays, O(T^2).

    The engine adds gradients with ``+``; a sum of Scatters joins their pieces (in
    place: the engine owns them), and ``evaluate()`` makes the array.
    """

    __slots__ = ("shape", "dtype", "pieces")
    __array_ufunc__ = None  # so that ndarray + Scatter comes to __radd__

    def __init__(self, shape, dtype, index, g):
        self.shape, self.dtype, self.pieces = shape, dtype, [(index, g)]

    def __add__(self, other):
        if isinstance(other, Scatter) and other.shape == self.shape:
            if other.dtype != self.dtype:
                self.dtype = np.result_type(self.dtype, other.dtype)
            self.pieces += other.pieces
            return self
        return self.evaluate() + other

    def __radd__(self, other):
        return other + self.evaluate()

    def evaluate(self):
        grad, rows = np.zeros(self.shape, dtype=self.dtype), set()  # rows: x[t]s written
        for index, g in self.pieces:
            if type(index) is int and rows is not None and index % len(grad) not in rows:
                grad[index] = g  # a row's first piece: written, not added (a third the time)
                rows.add(index % len(grad))
                continue
            rows = None  # (from the first other piece on, every piece adds)
            if type(index) is not int and _may_repeat(index):  # (x[t]: one place each)
                np.add.at(grad, index, g)
            else:
                grad[index] += g
        return grad


def _may_repeat(index):
    """True if ``index`` may select one place more than once (it holds an integer array)."""
    for part in index if isinstance(index, tuple) else (index,):
        if isinstance(part, np.ndarray) and part.dtype.kind in "iu":
            return True
    return False


class Concat(Op):
    """out = the inputs joined along ``axis``;  each dL/dx_i is its slice of g."""

    __slots__ = ("axis", "ends")  # (what forward keeps for the VJP)

    def forward(self, *arrays, axis=0):
        out = np.concatenate(arrays, axis=axis)
        self.axis = axis % out.ndim
        self.ends = np.cumsum([a.shape[self.axis] for a in arrays]).tolist()
        return out

    def backward(self, g, out, *inputs):
        before, starts = (slice(None),) * self.axis, [0] + self.ends[:-1]
        return tuple(g[before + (slice(start, end),)] if needed else None
                     for start, end, needed in zip(starts, self.ends, self.needs_grad))


class Stack(Op):
    """out = the inputs stacked along a new ``axis``;  dL/dx_i = g[..., i, ...]."""

    __slots__ = ("axis",)  # (what forward keeps for the VJP)

    def forward(self, *arrays, axis=0):
        out = np.stack(arrays, axis=axis)
        self.axis = axis % out.ndim
        return out

    def backward(self, g, out, *inputs):
        before = (slice(None),) * self.axis
        return tuple(g[before + (i,)] if needed else None
                     for i, needed in enumerate(self.needs_grad))


class Flip(Op):
    """out = x with its entries in reverse order along ``axis`` (every axis when None);
    dL/dx = g flipped back along the same axes."""

    __slots__ = ("axes",)  # (what forward keeps for the VJP)

    def forward(self, x, *, axis=None):
        self.axes = _axes(axis, x.ndim)
        return np.flip(x, self.axes)

    def backward(self, g, out, x):
        return Flip.call(g, axis=self.axes)


class Pad(Op):
    """out = x with ``value`` (0 by default) around it: ``pad_width`` is (before, after)
    for each axis, as ``np.pad`` reads it (one pair for every axis, or one int);
    dL/dx = g without the padding: the slice of g where x sits."""

    __slots__ = ("inside",)  # (what forward keeps for the VJP)

    def forward(self, x, *, pad_width, value=0.0):
        widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
        if (widths < 0).any():
            raise ValueError(f"pad widths must be >= 0, not {np.asarray(pad_width).tolist()}")
        self.inside = tuple(slice(before, before + n)
                            for (before, _), n in zip(widths.tolist(), x.shape))
        return np.pad(x, widths, constant_values=value) if x.ndim else x.copy()

    def backward(self, g, out, x):
        return g[self.inside]


class Cumsum(Op):
    """out_i = x_1 + ... + x_i along ``axis`` (of x flattened when None, as NumPy);
    dL/dx_i = g_i + ... + g_n: g summed cumulatively from the end."""

    __slots__ = ("shape", "axis")  # (what forward keeps for the VJP)

    def forward(self, x, *, axis=None):
        self.shape, self.axis = x.shape, axis
        out = np.cumsum(x, axis=axis if x.ndim else None)
        return out.reshape(()) if x.ndim == 0 and axis is not None else out

    def backward(self, g, out, x):
        axis = 0 if self.axis is None else self.axis
        reverse = Flip.call(g, axis=axis)
        return Flip.call(Cumsum.call(reverse, axis=axis), axis=axis).reshape(self.shape)


class Where(Op):
    """out = a where condition else b;  dL/da = g where condition, dL/db = g elsewhere.

    The condition is a third input (read as booleans, never differentiated), so that a
    loop can feed it a new one at every step.
    """

    __slots__ = ("condition",)  # (what forward keeps for the VJP)

    broadcasts = True

    def forward(self, a, b, condition):
        self.condition = condition.astype(bool, copy=False)
        return np.where(self.condition, a, b)

    def backward(self, g, out, a, b, condition):
        return (Where.call(g, 0.0, self.condition) if self.needs_grad[0] else None,
                Where.call(0.0, g, self.condition) if self.needs_grad[1] else None, None)

    @staticmethod
    def arguments(condition, a, b):
        """where(condition, a, b), as NumPy orders them."""
        return [a, b, condition if isinstance(condition, Tensor) else
                np.asarray(condition, dtype=bool)], {}


class LogSoftmax(Op):
    """out = x - log(sum(exp(x))) along ``axis``, computed after subtracting the max so
    that logits of any size stay finite;  dL/dx = g - softmax(x) sum(g)."""

    __slots__ = ("axis",)  # (what forward keeps for the VJP)

    saves_output = True

    def forward(self, x, *, axis=-1):
        self.axis = axis
        if x.size == 0:  # no max to subtract; x - 0.0 is a new (float) empty array
            return x - 0.0
        shifted = x - np.max(x, axis=axis, keepdims=True)
        return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))

    def backward(self, g, out, x):
        return g - Exp.call(out) * g.sum(axis=self.axis, keepdims=True)


class Softmax(Op):
    """out = e^x / sum(e^x) along ``axis``, computed after subtracting the max so that
    logits of any size stay finite;  dL/dx = out (g - sum(g out))."""

    __slots__ = ("axis",)  # (what forward keeps for the VJP)

    saves_output = True

    def forward(self, x, *, axis=-1):
        self.axis = axis
        if x.size == 0:  # no max to subtract; x - 0.0 is a new (float) empty array
            return x - 0.0
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)

    def backward(self, g, out, x):
        return out * (g - (g * out).sum(axis=self.axis, keepdims=True))


# ---- windows: what a convolution or a pooling sees (im2col and back) ------------------
class Unfold(Op):
    """out = every window of x that a kernel of ``kernel_size`` visits (im2col). x is
    (..., *spatial), one spatial axis per kernel side; out is (..., *positions,
    *kernel_size) with out[..., p, k] = x[..., p stride + k dilation] on each spatial axis
    (a strided view of x, no copy);  dL/dx = Fold(g): each window's g added back."""

    __slots__ = ("shape", "stride", "dilation")  # (what forward keeps for the VJP)

    def forward(self, x, *, kernel_size, stride, dilation):
        self.shape, self.stride, self.dilation = x.shape, tuple(stride), tuple(dilation)
        spans = tuple(d * (k - 1) + 1 for k, d in zip(kernel_size, dilation))
        axes = tuple(range(x.ndim - len(spans), x.ndim))
        windows = np.lib.stride_tricks.sliding_window_view(x, spans, axis=axes)
        return windows[(Ellipsis,) + tuple(slice(None, None, s) for s in stride) +
                       tuple(slice(None, None, d) for d in dilation)]

    def backward(self, g, out, x):
        return Fold.call(g, shape=self.shape, stride=self.stride, dilation=self.dilation)


class Fold(Op):
    """out = zeros of ``shape`` with each window of ``cols`` (as Unfold made them) added
    back where it was taken from; overlapping windows add up (col2im). Unfold's VJP, as
    an op;  dL/dcols = Unfold(g_out)."""

    __slots__ = ("kernel_size", "stride", "dilation")  # (what forward keeps for the VJP)

    def forward(self, cols, *, shape, stride, dilation):
        n = len(stride)
        self.kernel_size, self.stride, self.dilation = cols.shape[-n:], stride, dilation
        positions, out = cols.shape[-2 * n:-n], np.zeros(shape, dtype=cols.dtype)
        for k in itertools.product(*map(range, self.kernel_size)):  # one add per offset
            out[(Ellipsis,) + tuple(slice(i * d, i * d + s * (p - 1) + 1, s) for i, d, s, p
                                    in zip(k, dilation, stride, positions))] += cols[
                (Ellipsis,) + (slice(None),) * n + k]
        return out

    def backward(self, g_out, out, cols):
        return Unfold.call(g_out, kernel_size=self.kernel_size, stride=self.stride,
                           dilation=self.dilation)


# ---- registration: one function and one method per op ----------------------------------
def as_tensor(x, like=None):
    """``x`` as a Tensor (arrays are wrapped, not copied). A Python number takes the float
    precision of ``like`` (an array or tensor) and is read-only, as ops' results are."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float, bool)):
        kind = getattr(like, "dtype", None)
        array = np.asarray(x, dtype=kind if kind is not None and kind.kind == "f" else None)
        array.setflags(False)  # (write=False)
        return Tensor._wrap(array)
    return Tensor._wrap(np.asarray(x))


def _tensors(values):
    """The inputs of an op as tensors; numbers take the first float input's precision."""
    for v in values:
        if not isinstance(v, Tensor):
            break
    else:
        return values  # (tensors only: nothing to convert)
    like = next((v for v in values if isinstance(v, (Tensor, np.ndarray))
                 and v.dtype.kind == "f"), None)
    return [as_tensor(v, like) for v in values]


TORCH_NAMES = {"dim": "axis", "keepdim": "keepdims"}


def numpy_names(options, name):
    """Read PyTorch's ``dim=`` and ``keepdim=`` in ``options`` (a dict, changed in place)
    as NumPy's ``axis=`` and ``keepdims=``, so that either spelling works everywhere."""
    for torch_name, numpy_name in TORCH_NAMES.items():
        if torch_name in options:
            if numpy_name in options:
                raise TypeError(f"{name}() got both {torch_name}= and {numpy_name}= "
                                f"(the same option in PyTorch's and NumPy's words); pass one")
            options[numpy_name] = options.pop(torch_name)
    return options


def _plain(apply, n_inputs):
    """The function of an op with 1, 2 or 3 inputs and no options: f(x), f(a, b) or
    f(x, W, b=None). A plain signature, because CPython 3.11 calls such a function
    inline and a ``*args`` one not: on a tiny op that is 2% (benchmarks/README.md)."""
    def one(x):
        return apply(x) if isinstance(x, Tensor) else apply(*_tensors([x]))

    def two(a, b):
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            return apply(a, b)
        return apply(*_tensors([a, b]))

    def three(x, W, b=None):  # (a trailing input left None is dropped: linear's bias)
        if b is None:
            return two(x, W)
        if isinstance(x, Tensor) and isinstance(W, Tensor) and isinstance(b, Tensor):
            return apply(x, W, b)
        return apply(*_tensors([x, W, b]))
    return (one, two, three)[n_inputs - 1]


def register(cls, *methods, reflected=()):
    """Make op class ``cls`` callable: returns its function, ``f(*inputs, *options)``,
    installs it as each Tensor method in ``methods`` (``reflected`` ones swap the two
    operands: ``__radd__``), and gives the class ``cls.call``, the same function for
    VJPs: on arrays only, it runs forward and returns an array.

    The inputs are forward's positional parameters (a trailing one left None is
    dropped: linear's bias), the options its keyword-only ones, which may also be
    given by position; ``dim=``/``keepdim=`` are read as ``axis=``/``keepdims=``. A
    class with unusual arguments says how to read them in
    ``arguments(*args, **kwargs) -> (inputs, options)``.
    """
    parameters = list(inspect.signature(cls.forward).parameters.values())[1:]
    n_inputs = builtins.sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in parameters)
    variadic = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    option_names = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    name = cls.__name__.lower()

    def arguments(args, options):
        inputs, rest = (list(args[0]), args[1:]) if variadic else (list(args[:n_inputs]),
                                                                   args[n_inputs:])
        if len(rest) > len(option_names):
            raise TypeError(f"{name}() takes {n_inputs} inputs and the options "
                            f"{option_names}, but got {len(args)} positional arguments")
        options.update(zip(option_names, rest))
        while inputs and inputs[-1] is None and not variadic:
            inputs.pop()
        return inputs, options

    adapter, apply = getattr(cls, "arguments", None), cls.apply

    def function(*args, **options):
        if options:
            numpy_names(options, name)
        inputs, options = arguments(args, options) if adapter is None else adapter(
            *args, **options)
        return apply(*_tensors(inputs), **options)

    if not variadic and adapter is None and not option_names:  # +, *, @, tanh, linear
        function = _plain(apply, n_inputs)

    def call(*args, **options):
        inputs, options = arguments(args, options)
        if any(isinstance(x, Tensor) for x in inputs):
            return apply(*_tensors(inputs), **options)
        return cls().forward(*inputs, **options)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = cls.__doc__
    cls.call = staticmethod(call)
    for method in methods:
        setattr(Tensor, method, function)
    for method in reflected:
        setattr(Tensor, method, lambda self, other: function(other, self))
    return function


add = register(Add, "__add__", reflected=["__radd__"])
sub = register(Sub, "__sub__", reflected=["__rsub__"])
mul = register(Mul, "__mul__", reflected=["__rmul__"])
div = register(Div, "__truediv__", reflected=["__rtruediv__"])
pow = register(Pow, "__pow__", reflected=["__rpow__"])
matmul = register(MatMul, "__matmul__", "matmul", reflected=["__rmatmul__"])
linear = register(Linear)
maximum = register(Maximum)
minimum = register(Minimum)
neg = register(Neg, "__neg__")
exp = register(Exp, "exp")
log = register(Log, "log")
tanh = register(Tanh, "tanh")
sigmoid = register(Sigmoid, "sigmoid")
relu = register(ReLU, "relu")
softplus = register(Softplus, "softplus")
sqrt = register(Sqrt, "sqrt")
abs = register(Abs, "abs", "__abs__")
clamp = clip = register(Clamp, "clamp", "clip")
sin = register(Sin, "sin")
cos = register(Cos, "cos")
erf = register(Erf, "erf")
sum = register(Sum, "sum")
mean = register(Mean, "mean")
max = amax = register(Max, "max", "amax")
min = amin = register(Min, "min", "amin")
var = register(Var, "var")
std = register(Std, "std")
cumsum = register(Cumsum, "cumsum")
reshape = view = register(Reshape, "reshape", "view")
squeeze = register(Squeeze, "squeeze")
unsqueeze = register(Unsqueeze, "unsqueeze")
flatten = register(Flatten, "flatten")
broadcast_to = register(BroadcastTo, "broadcast_to")
expand = register(Expand, "expand")
transpose = permute = register(Transpose, "transpose", "permute")
getitem = register(GetItem, "__getitem__")
register(IndexAdd)
concat = cat = register(Concat)
stack = register(Stack)
where = register(Where)
flip = register(Flip, "flip")
pad = register(Pad, "pad")
log_softmax = register(LogSoftmax, "log_softmax")
softmax = register(Softmax, "softmax")
unfold = register(Unfold)
fold = register(Fold)
Tensor.T = property(transpose, doc="The tensor with its axes reversed (2-D: the transpose).")



# ---- functions that read values or return several tensors, built on the ops above ----
def plain(function, *methods):
    """``function`` taking PyTorch's dim=/keepdim= too, installed as each Tensor method in
    ``methods``: for what is not one op (several outputs, or no gradient at all)."""
    def wrapper(*args, **options):
        return function(*args, **numpy_names(options, function.__name__))

    wrapper.__name__ = wrapper.__qualname__ = function.__name__
    wrapper.__doc__ = function.__doc__
    for method in methods:
        setattr(Tensor, method, wrapper)
    return wrapper


def _argmax(x, axis=None, keepdims=False):
    """The index of the largest entry along ``axis`` (of x flattened when None, as in NumPy
    and PyTorch; the first one at a tie), as an int64 tensor that never requires grad."""
    values = x.data if isinstance(x, Tensor) else np.asarray(x)
    return Tensor._wrap(np.asarray(np.argmax(values, axis=axis, keepdims=keepdims)))


def _argmin(x, axis=None, keepdims=False):
    """The index of the smallest entry along ``axis``: see argmax."""
    values = x.data if isinstance(x, Tensor) else np.asarray(x)
    return Tensor._wrap(np.asarray(np.argmin(values, axis=axis, keepdims=keepdims)))


def _split(x, split_size_or_sections, axis=0):
    """x cut along ``axis`` into pieces, as PyTorch's split (not NumPy's): an int is the
    size of each piece (the last may be smaller), a list gives every piece's size. A
    tuple of tensors, each a slice of x, so each piece's gradient reaches its own part."""
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError("split: a 0-d tensor has no axis to split")
    n, size = x.shape[axis], split_size_or_sections
    if isinstance(size, (int, np.integer)):
        if size <= 0:
            raise ValueError(f"split: the size of each piece must be positive, not {size}")
        sizes = [size] * (n // size) + [n % size] * (n % size > 0 or n == 0)
    elif builtins.sum(size) != n or builtins.min(size, default=0) < 0:
        raise ValueError(f"split: the sizes {list(size)} must be >= 0 and add up to the "
                         f"size of axis {axis}, {n}")
    else:
        sizes = list(size)
    before, ends = (slice(None),) * (axis % x.ndim), np.cumsum(sizes).tolist()
    return tuple(x[before + (slice(end - k, end),)] for k, end in zip(sizes, ends))


def _chunk(x, chunks, axis=0):
    """x cut along ``axis`` into ``chunks`` pieces of equal size (the last may be smaller,
    and there may be fewer; an empty axis gives ``chunks`` empty pieces), as PyTorch's
    chunk; see split."""
    if not isinstance(chunks, (int, np.integer)) or chunks <= 0:
        raise ValueError(f"chunk: the number of chunks must be a positive int, not {chunks!r}")
    x = as_tensor(x)
    n = x.shape[axis] if x.ndim else 0
    return _split(x, [0] * chunks if n == 0 else -(-n // chunks), axis)


def _swapaxes(x, axis0, axis1):
    """x with two axes exchanged (NumPy's swapaxes, and what PyTorch's transpose(d0, d1)
    does; ``tg.transpose`` takes a whole permutation, as NumPy's): a permute."""
    x, order = as_tensor(x), list(range(np.ndim(x)))
    if order:  # (a 0-d tensor takes axes 0 and -1 and stays as it is)
        axis0, axis1 = _axes(axis0, x.ndim)[0], _axes(axis1, x.ndim)[0]
        order[axis0], order[axis1] = order[axis1], order[axis0]
    return Transpose.apply(x, axes=tuple(order))


def _tolist(x):
    """The values as (nested) Python lists of numbers, as ``ndarray.tolist``."""
    return x.data.tolist()


argmax = plain(_argmax, "argmax")
argmin = plain(_argmin, "argmin")
split = plain(_split, "split")
chunk = plain(_chunk, "chunk")
tolist = plain(_tolist, "tolist")
swapaxes = plain(_swapaxes, "swapaxes")
