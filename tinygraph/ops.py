"""The primitive ops: each one's forward and vector-Jacobian product side by side.

Notation: ``g`` is dL/d(out), the gradient arriving at the op's output; ``backward``
returns dL/d(input) for each input, or None where ``needs_grad`` says nobody wants it.
Inputs broadcast as in NumPy, so every VJP sums its gradient back to its input's
shape (``unbroadcast``). Everything else in tinygraph (softmax, losses, RNN cells) is
built from these, so its gradient comes for free and shows up in the graph.

The lower-case functions at the bottom are the public entry points: they accept
tensors, arrays and Python numbers, and return tensors.
"""
import threading
from contextlib import contextmanager

import numpy as np

from . import layout
from .deferred import RowSum, Scatter
from .engine import Op
from .tensor import Tensor


def unbroadcast(grad, shape):
    """Sum ``grad`` down to ``shape``: the VJP of NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


# ---- elementwise, two inputs --------------------------------------------------------
class Add(Op):
    """out = a + b;  dL/da = g,  dL/db = g."""

    def forward(self, a, b):
        self.saved = a.shape, b.shape
        return a + b

    def backward(self, g):
        sa, sb = self.saved
        return (unbroadcast(g, sa) if self.needs_grad[0] else None,
                unbroadcast(g, sb) if self.needs_grad[1] else None)


class Sub(Op):
    """out = a - b;  dL/da = g,  dL/db = -g."""

    def forward(self, a, b):
        self.saved = a.shape, b.shape
        return a - b

    def backward(self, g):
        sa, sb = self.saved
        return (unbroadcast(g, sa) if self.needs_grad[0] else None,
                unbroadcast(-g, sb) if self.needs_grad[1] else None)


class Mul(Op):
    """out = a * b;  dL/da = g * b,  dL/db = g * a."""

    saves_inputs = True

    def forward(self, a, b):
        self.saved = a, b
        return a * b

    def backward(self, g):
        a, b = self.saved
        return (unbroadcast(g * b, a.shape) if self.needs_grad[0] else None,
                unbroadcast(g * a, b.shape) if self.needs_grad[1] else None)


class Div(Op):
    """out = a / b;  dL/da = g / b,  dL/db = -g a / b^2."""

    saves_inputs = True

    def forward(self, a, b):
        self.saved = a, b
        return a / b

    def backward(self, g):
        a, b = self.saved
        return (unbroadcast(g / b, a.shape) if self.needs_grad[0] else None,
                unbroadcast(-g * a / (b * b), b.shape) if self.needs_grad[1] else None)


class Pow(Op):
    """out = a ** b;  dL/da = g b a^(b-1),  dL/db = g out log(a).

    As in PyTorch, dL/da is 0 where b == 0, and dL/db is 0 where a == 0 and b >= 0
    (the limit of a^b log a); elsewhere a negative base gives NaN for dL/db.
    """

    saves_inputs = True
    saves_output = True

    def forward(self, a, b):
        out = a ** b
        self.saved = a, b, out
        return out

    def backward(self, g):
        a, b, out = self.saved
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_grad[0]:
                ga = unbroadcast(g * np.where(b == 0, 0.0, b * a ** (b - 1)), a.shape)
            if self.needs_grad[1]:
                log_a = np.log(np.where(a == 0, 1.0, a))
                gb = unbroadcast(g * np.where((a == 0) & (b >= 0), 0.0, out * log_a),
                                 b.shape)
        return ga, gb


class MatMul(Op):
    """out = a @ b, as ``np.matmul``: 1-D, 2-D and batched with broadcasting.

    For matrices, dL/da = g b^T and dL/db = a^T g. A 1-D operand is treated as a
    row (a) or column (b) matrix, and batch dimensions are summed back by
    ``unbroadcast``.
    """

    saves_inputs = True

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("both operands need at least one dimension")
        k_a, k_b = a.shape[-1], b.shape[0 if b.ndim == 1 else -2]
        if k_a != k_b:
            raise ValueError(f"inner dimensions differ ({k_a} != {k_b})")
        self.saved = a, b
        return np.matmul(a, b)

    def backward(self, g):
        a, b = self.saved
        a2 = a[np.newaxis, :] if a.ndim == 1 else a
        b2 = b[:, np.newaxis] if b.ndim == 1 else b
        # b's axis first: for vector @ vector g is 0-d and has no axis -2 yet
        if b.ndim == 1:
            g = np.expand_dims(g, -1)
        if a.ndim == 1:
            g = np.expand_dims(g, -2)
        ga = gb = None
        if self.needs_grad[0]:
            ga = unbroadcast(np.matmul(g, np.swapaxes(b2, -1, -2)), a2.shape).reshape(a.shape)
        if self.needs_grad[1]:
            if b.ndim == 2:  # a weight: sum a^T g over every row of every batch, as one product
                gb = RowSum(a2.reshape(-1, a2.shape[-1]), g.reshape(-1, g.shape[-1]))
            else:
                gb = unbroadcast(np.matmul(np.swapaxes(a2, -1, -2), g), b2.shape).reshape(b.shape)
        return ga, gb


class Linear(Op):
    """out = x W^T + b, the affine map of a layer whose weight W is (out x in), as
    PyTorch's ``F.linear``; in the notes' column notation it is W x + b.

    x is (..., in), out is (..., out); b is (out,), or any shape that broadcasts to
    out's. dL/dx = g W; dL/dW = g^T x and dL/db = g^T 1, each summed over every row of
    the batch (and over every use of W: see ``deferred.RowSum``, which lets the engine
    do that sum as one matrix product).
    """

    saves_inputs = True
    hints = ("W_T",)  # the same product, up to rounding (see transposes_shared)

    def forward(self, x, W, b=None, W_T=None):
        if W.ndim != 2:
            raise ValueError(f"the weight must be 2-D (out x in), not {W.shape}")
        if x.ndim == 0 or x.shape[-1] != W.shape[1]:
            raise ValueError(f"x has {x.shape[-1] if x.ndim else 0} features but W "
                             f"expects {W.shape[1]}")
        # One (rows x in) @ (in x out) product: np.matmul on a stack of matrices would
        # loop over the stack.
        rows = x if x.ndim == 2 else x.reshape(-1, W.shape[1])
        # W_T (W^T in C order) is there when W is shared: see transposes_shared. The
        # backward's g W uses it (as W in F order) only where that order is faster.
        out = rows @ W.T if W_T is None else layout.matmul(rows, W_T, W.T)
        if W_T is not None and not layout.f_order_faster(len(rows), W.shape, W.dtype):
            W_T = None
        # (The shapes ride along in ``saved``: a long unroll has many linear nodes.)
        self.saved = rows, W, W_T, x.shape, None if b is None else b.shape
        if x.ndim != 2:
            out = out.reshape(*x.shape[:-1], W.shape[0])
        if b is None:
            return out
        if b.dtype == out.dtype and b.shape in (out.shape, out.shape[-1:]):
            return np.add(out, b, out=out)  # into the product's own fresh array
        return out + b

    def backward(self, g):
        rows, W, W_T, x_shape, b_shape = self.saved
        g_rows = g if g.ndim == 2 else g.reshape(-1, W.shape[0])
        gx = gb = None
        if self.needs_grad[0]:
            gx = g_rows @ W if W_T is None else layout.matmul(g_rows, W, W_T.T)
            if len(x_shape) != 2:
                gx = gx.reshape(x_shape)
        gW = RowSum(g_rows, rows) if self.needs_grad[1] else None
        if len(self.needs_grad) == 2:
            return gx, gW
        if self.needs_grad[2]:
            per_row = b_shape == (W.shape[0],)
            gb = RowSum(g_rows) if per_row else unbroadcast(g, b_shape)
        return gx, gW, gb


# A weight that many linear nodes use in one forward pass (an RNN's W_aa, once per
# time step) is multiplied as x W^T at each use and as g W in each backward, and how
# fast OpenBLAS multiplies by a matrix depends on its memory order, differently on
# different processors (see ``layout``). So while a Module call runs
# (``transposes_shared``), a weight's second use makes a contiguous copy of W^T, later
# uses share it, and each product takes the order ``layout`` chose for its shape (F
# only where that is clearly faster and gives the same bits): W^T as the copy or as
# the view W.T, W as the array or as the view of the copy. A weight here is a leaf tensor that requires grad (a Parameter, typically):
# arrays computed on the way are never kept. The copies are no longer handed out once
# the outermost Module call returns (a node whose backward multiplies by the copy
# keeps it until that backward has run: one copy per weight and graph), since between calls a weight
# may be written in place (an optimizer step, ``W.data[...] = ...``); assigning
# ``W.data = ...`` is safe at any time (the new array is not the one copied). A
# forward that wrote into its own weight's array in place between two uses would go
# on getting the copy made before the write, and a backward after such a write (which
# no version counter sees) would use the copy where the F order won and the written
# array elsewhere.
_local = threading.local()  # .transposes: {W: (W's array, its transpose)} per thread


@contextmanager
def transposes_shared():
    """Inside the block, ``linear`` shares one contiguous copy of each weight's
    transpose among the weight's uses (see the comment above; in this thread only).
    Nested blocks share the outermost one's. ``nn.Module.__call__`` runs ``forward``
    in one."""
    if getattr(_local, "transposes", None) is not None:
        yield
        return
    _local.transposes = {}
    try:
        yield
    finally:
        _local.transposes = None


def _shared_transpose(W):
    """W^T in C order, shared by weight ``W``'s uses (a copy, or a view of W's own array
    when W is stored by columns), or None (there is only ``W``): None outside
    ``transposes_shared`` and at a weight's first use."""
    transposes = getattr(_local, "transposes", None)
    if transposes is None or W._node is not None or not W._requires_grad:
        return None
    array, transpose = transposes.get(W, (None, None))
    if array is not W._data:  # first use, or .data was assigned since
        transposes[W] = W._data, None
        return None
    if transpose is None:  # (a view when W.T is already contiguous: never stale)
        transpose = np.ascontiguousarray(array.T)
        transposes[W] = array, transpose
    return transpose


# ---- elementwise, one input -------------------------------------------------------
class Neg(Op):
    """out = -x;  dL/dx = -g."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Exp(Op):
    """out = e^x;  dL/dx = g out."""

    saves_output = True

    def forward(self, x):
        out = np.exp(x)
        self.saved = out
        return out

    def backward(self, g):
        return (g * self.saved,)


class Log(Op):
    """out = log x (natural);  dL/dx = g / x."""

    saves_inputs = True

    def forward(self, x):
        self.saved = x
        return np.log(x)

    def backward(self, g):
        return (g / self.saved,)


class Tanh(Op):
    """out = tanh x;  dL/dx = g (1 - out^2)."""

    saves_output = True

    def forward(self, x):
        out = np.tanh(x)
        self.saved = out
        return out

    def backward(self, g):
        out = self.saved
        return (g * (1 - out * out),)


class Sigmoid(Op):
    """out = 1 / (1 + e^-x), computed without overflow for large |x|;
    dL/dx = g out (1 - out) = g e / (1 + e)^2 with e = e^-|x|.

    The second form is the same for x and -x and keeps full precision where out
    is close to 1 (1 - out would cancel), so backward saves e, not out."""

    def forward(self, x):
        e = np.exp(-np.abs(x))  # never overflows
        self.saved = e
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))

    def backward(self, g):
        e = self.saved
        return (g * e / ((1 + e) * (1 + e)),)


class ReLU(Op):
    """out = max(x, 0);  dL/dx = g where x > 0, else 0 (0 at x == 0, as PyTorch)."""

    saves_output = True

    def forward(self, x):
        out = np.maximum(x, 0)
        self.saved = out
        return out

    def backward(self, g):
        return (g * (self.saved > 0),)


# ---- reductions ------------------------------------------------------------------
def _axes(axis, ndim):
    """``axis`` (None, int or tuple, negatives allowed) as a sorted tuple of axes."""
    if axis is None:
        return tuple(range(ndim))
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axis:
        if not -ndim <= a < ndim:
            raise np.exceptions.AxisError(a, ndim)
    return tuple(sorted(a % ndim for a in axis))


def _expand_reduced(g, axes, keepdims):
    """Give a reduced gradient back its reduced axes (size 1), ready to broadcast."""
    return g if keepdims else np.expand_dims(g, axes)


class Sum(Op):
    """out = sum of x over ``axis``;  dL/dx = g broadcast back over the summed axes."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return np.sum(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        return (np.broadcast_to(_expand_reduced(g, self.axes, self.keepdims), self.shape),)


class Mean(Op):
    """out = mean of x over ``axis`` (n elements each);  dL/dx = g / n, broadcast back."""

    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _axes(axis, x.ndim), keepdims
        return np.mean(x, axis=self.axes, keepdims=keepdims)

    def backward(self, g):
        n = int(np.prod([self.shape[a] for a in self.axes]))
        g = _expand_reduced(g, self.axes, self.keepdims) / n
        return (np.broadcast_to(g, self.shape),)


class Max(Op):
    """out = max of x over ``axis``.

    dL/dx = g at the maximum. Ties share the gradient equally: if k entries reach the
    maximum, each gets g / k (as ``torch.amax``), so the gradient still sums to g.
    """

    def forward(self, x, axis=None, keepdims=False):
        self.axes, self.keepdims = _axes(axis, x.ndim), keepdims
        out = np.max(x, axis=self.axes, keepdims=True)
        self.saved = x == out
        return out if keepdims else np.squeeze(out, self.axes)

    def backward(self, g):
        is_max = self.saved
        count = is_max.sum(axis=self.axes, keepdims=True, dtype=g.dtype)  # float32 stays
        return (is_max * (_expand_reduced(g, self.axes, self.keepdims) / count),)


# ---- shape and indexing -------------------------------------------------------------
class Reshape(Op):
    """out = x viewed with a new shape;  dL/dx = g reshaped back."""

    def forward(self, x, shape):
        self.shape = x.shape
        return np.reshape(x, shape)

    def backward(self, g):
        return (np.reshape(g, self.shape),)


class Transpose(Op):
    """out = x with its axes permuted (reversed when ``axes`` is None);
    dL/dx = g permuted by the inverse permutation."""

    def forward(self, x, axes=None):
        out = np.transpose(x, axes)  # checks that axes are a permutation
        # non-negative, so that argsort gives the inverse permutation
        self.axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(
            a % x.ndim for a in axes)
        return out

    def backward(self, g):
        return (np.transpose(g, np.argsort(self.axes)),)


class GetItem(Op):
    """out = x[index], for any NumPy index: ints, slices, None, ..., boolean masks,
    integer arrays.

    dL/dx is zero except at the selected places, which receive g. An integer array
    may select one place several times; its gradients then add up (``np.add.at``).
    """

    def forward(self, x, index):
        self.saved = x.shape, x.dtype, index
        return x[index]

    def backward(self, g):
        shape, dtype, index = self.saved
        # Kept sparse until summed: T slices x[t] of one sequence then cost O(T), not O(T^2).
        return (Scatter(shape, dtype, index, g, _may_repeat(index)),)


def _may_repeat(index):
    """True if ``index`` may select one place more than once (it holds an integer array)."""
    for part in index if isinstance(index, tuple) else (index,):  # a loop: no generator
        if isinstance(part, np.ndarray) and part.dtype.kind in "iu":
            return True
    return False


class Concat(Op):
    """out = the inputs joined along ``axis``;  each dL/dx_i is its slice of g."""

    def forward(self, *arrays, axis=0):
        self.axis = axis
        self.sizes = [a.shape[axis] for a in arrays]
        return np.concatenate(arrays, axis=axis)

    def backward(self, g):
        parts = np.split(g, np.cumsum(self.sizes)[:-1], axis=self.axis)
        return tuple(p if needed else None for p, needed in zip(parts, self.needs_grad))


class Stack(Op):
    """out = the inputs stacked along a new ``axis``;  dL/dx_i = g[..., i, ...]."""

    def forward(self, *arrays, axis=0):
        out = np.stack(arrays, axis=axis)
        self.axis = axis if axis >= 0 else axis + out.ndim
        return out

    def backward(self, g):
        parts = np.moveaxis(g, self.axis, 0)
        return tuple(p if needed else None for p, needed in zip(parts, self.needs_grad))


class Where(Op):
    """out = a where condition else b;  dL/da = g where condition, dL/db = g elsewhere.

    The condition is a third input (a tensor, so that ``scan`` can feed it a new one
    at every step), read as booleans and not differentiated.
    """

    def forward(self, a, b, condition):
        condition = condition.astype(bool, copy=False)
        self.saved = condition, a.shape, b.shape
        return np.where(condition, a, b)

    def backward(self, g):
        condition, sa, sb = self.saved
        return (unbroadcast(np.where(condition, g, 0.0), sa) if self.needs_grad[0] else None,
                unbroadcast(np.where(condition, 0.0, g), sb) if self.needs_grad[1] else None)


class LogSoftmax(Op):
    """out = x - log(sum(exp(x))) along ``axis``, computed after subtracting the max so
    that logits of any size stay finite;  dL/dx = g - softmax(x) * sum(g)."""

    saves_output = True

    def forward(self, x, axis=-1):
        self.axis = axis
        out = x - np.max(x, axis=axis, keepdims=True)
        out -= np.log(np.sum(np.exp(out), axis=axis, keepdims=True))  # in place: less memory
        self.saved = out
        return out

    def backward(self, g):
        grad = np.exp(self.saved)  # softmax(x), then turned into the gradient in place
        grad *= np.sum(g, axis=self.axis, keepdims=True)
        return (np.subtract(g, grad, out=grad),)


# ---- public functions -----------------------------------------------------------
def as_tensor(x, like=None):
    """``x`` as a Tensor. Python numbers take the float precision of ``like``."""
    if isinstance(x, Tensor):
        return x
    if like is not None and like.dtype.kind == "f" and isinstance(x, (int, float)):
        return Tensor._wrap(np.asarray(x, dtype=like.dtype))
    return Tensor._wrap(np.asarray(x))


def _pair(a, b):
    """Both operands as tensors; a Python number takes the other one's float precision."""
    if not isinstance(a, Tensor):
        a = as_tensor(a, like=b if isinstance(b, Tensor) else None)
    if not isinstance(b, Tensor):
        b = as_tensor(b, like=a)
    return a, b


def add(a, b):
    """a + b, broadcasting."""
    return Add.apply(*_pair(a, b))


def sub(a, b):
    """a - b, broadcasting."""
    return Sub.apply(*_pair(a, b))


def mul(a, b):
    """a * b elementwise, broadcasting."""
    return Mul.apply(*_pair(a, b))


def div(a, b):
    """a / b elementwise, broadcasting."""
    return Div.apply(*_pair(a, b))


def pow(a, b):
    """a ** b elementwise; the exponent may be a tensor that requires grad."""
    return Pow.apply(*_pair(a, b))


def matmul(a, b):
    """a @ b with ``np.matmul``'s rules (1-D, 2-D, batched with broadcasting)."""
    return MatMul.apply(*_pair(a, b))


def linear(x, W, b=None):
    """x W^T + b for a weight W of shape (out, in), as PyTorch's ``F.linear``."""
    x = as_tensor(x)
    W = as_tensor(W, like=x)
    W_T = _shared_transpose(W)
    if b is None:
        return Linear.apply(x, W, W_T=W_T)
    return Linear.apply(x, W, as_tensor(b, like=x), W_T=W_T)


def neg(x):
    """-x."""
    return Neg.apply(as_tensor(x))


def exp(x):
    """e^x elementwise."""
    return Exp.apply(as_tensor(x))


def log(x):
    """Natural log elementwise."""
    return Log.apply(as_tensor(x))


def tanh(x):
    """tanh elementwise."""
    return Tanh.apply(as_tensor(x))


def sigmoid(x):
    """1 / (1 + e^-x) elementwise, stable for large |x|."""
    return Sigmoid.apply(as_tensor(x))


def relu(x):
    """max(x, 0) elementwise."""
    return ReLU.apply(as_tensor(x))


def sum(x, axis=None, keepdims=False):
    """Sum over ``axis`` (all axes when None)."""
    return Sum.apply(as_tensor(x), axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (all axes when None)."""
    return Mean.apply(as_tensor(x), axis=axis, keepdims=keepdims)


def max(x, axis=None, keepdims=False):
    """Maximum over ``axis``; tied maxima share the gradient equally."""
    return Max.apply(as_tensor(x), axis=axis, keepdims=keepdims)


def reshape(x, shape):
    """``x`` with a new shape (one entry may be -1)."""
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    return Reshape.apply(as_tensor(x), shape=shape)


def transpose(x, axes=None):
    """Permute the axes of ``x`` (reverse them when ``axes`` is None)."""
    return Transpose.apply(as_tensor(x), axes=axes)


def permute(x, axes):
    """Permute the axes of ``x`` into the order ``axes``."""
    return Transpose.apply(as_tensor(x), axes=tuple(axes))


def _plain_index(index):
    """Replace tensors and lists inside an index by arrays, as NumPy expects."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(x, index):
    """``x[index]`` for any NumPy index; repeated integer indices accumulate gradient."""
    if type(index) is not int:  # (x[t], one per time step, is the common case)
        index = _plain_index(index)
    return GetItem.apply(as_tensor(x), index=index)


def concat(tensors, axis=0):
    """Join tensors along an existing axis (``np.concatenate``)."""
    tensors = [as_tensor(t) for t in tensors]
    return Concat.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    """Stack tensors along a new axis (``np.stack``)."""
    tensors = [as_tensor(t) for t in tensors]
    return Stack.apply(*tensors, axis=axis)


def where(condition, a, b):
    """Elementwise choice: ``a`` where ``condition`` holds, else ``b``."""
    if not isinstance(condition, Tensor):
        condition = Tensor._wrap(np.asarray(condition, dtype=bool))
    a, b = _pair(a, b)
    return Where.apply(a, b, condition)


def log_softmax(x, axis=-1):
    """log(softmax(x)) along ``axis``, stable for logits of any size."""
    return LogSoftmax.apply(as_tensor(x), axis=axis)


class Softplus(Op):
    """out = log(1 + e^x), computed as max(x, 0) + log1p(e^-|x|) so that it neither
    overflows for large x nor loses precision for very negative x;
    dL/dx = g sigmoid(x)."""

    saves_inputs = True

    def forward(self, x):
        self.saved = x
        return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))

    def backward(self, g):
        x = self.saved
        e = np.exp(-np.abs(x))  # sigmoid(x) without overflow, as in Sigmoid
        return (g * np.where(x >= 0, 1 / (1 + e), e / (1 + e)),)


def softplus(x):
    """log(1 + e^x) elementwise, stable for any x (the loss of a logit: -log sigmoid(-x))."""
    return Softplus.apply(as_tensor(x))
