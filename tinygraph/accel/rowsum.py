"""Weight gradients kept as row sums, so that T uses of a weight cost one product.

A weight used at T time steps gets T gradients G_t^T X_t. Computing each (a product
of a few rows) and adding them costs T small matrix products and T - 1 additions;
joining the rows of every G_t and X_t and multiplying once is what a careful
hand-written BPTT does, and at a batch of one it makes a training step 1.4-1.6x
faster (benchmarks/README.md). ``RowSum`` is that gradient, not yet multiplied out.

This module registers two subclasses of the core's ops under the core's names
(``tg.linear``, ``tg.matmul`` and ``@``): the same forward, and a first-order backward
that returns a ``RowSum`` for the weight (the right operand of a matmul, when it is a
matrix). Their values are those of the core's VJPs (tests compare them), and a
recorded backward (``create_graph``) runs the core's VJPs as they are.
"""
import numpy as np

from .. import ops
from ..ops import register
from ..tensor import Tensor


class RowSum:
    """The gradient G^T X = sum over rows r of outer(G[r], X[r]) (or G^T 1, the column
    sums of G, when X is None), kept as its row blocks until it is needed.

    The engine adds gradients with ``+``: two RowSums of one shape join their rows (in
    place: the engine owns them), and every ``MAX_ROWS`` rows the product is done and
    kept, which bounds the memory held. ``evaluate()`` makes the array.
    """

    __slots__ = ("G", "X", "shape", "dtype", "rows", "done")
    __array_ufunc__ = None  # so that ndarray + RowSum comes to __radd__
    MAX_ROWS = 1024

    def __init__(self, G, X=None):
        self.G, self.X = [G], None if X is None else [X]
        self.shape = G.shape[1:] if X is None else (G.shape[1], X.shape[1])
        self.dtype = G.dtype if X is None or X.dtype == G.dtype else np.result_type(
            G.dtype, X.dtype)
        self.rows, self.done = len(G), None

    def evaluate(self):
        if not self.G:
            return self.done
        G = self.G[0] if len(self.G) == 1 else np.concatenate(self.G)
        if self.X is None:
            result = G.sum(axis=0)
        else:
            result = G.T @ (self.X[0] if len(self.X) == 1 else np.concatenate(self.X))
        return result if self.done is None else self.done + result

    def __add__(self, other):
        if not (isinstance(other, RowSum) and other.shape == self.shape
                and (other.X is None) == (self.X is None)):
            return self.evaluate() + other
        if other.done is not None:
            self.done = other.done if self.done is None else self.done + other.done
        self.G += other.G
        if self.X is not None:
            self.X += other.X
        self.rows += other.rows
        if self.rows >= self.MAX_ROWS:
            self.done, self.G, self.rows = self.evaluate(), [], 0
            self.X = None if self.X is None else []
        return self

    def __radd__(self, other):
        return other + self.evaluate()


class Linear(ops.Linear):
    """``ops.Linear`` whose first-order backward returns the weight's (and a bias's of
    shape (out,)) gradient as a ``RowSum``."""

    __slots__ = ("bias_per_row",)

    def forward(self, x, W, b=None):
        self.bias_per_row = b is not None and b.shape == W.shape[:1]
        return ops.Linear.forward(self, x, W, b)  # (super() costs a tiny op 1%)

    def backward(self, g, out, x, W, b=None):
        if isinstance(g, Tensor):  # a recorded backward: the core's VJP
            return super().backward(g, out, x, W)
        matrix = g.ndim == 2  # (rows already: no reshapes and two calls fewer, 1% of a layer)
        g_rows, x_rows = (g, x) if matrix else (ops._rows(g), ops._rows(x))
        gx = None
        if self.needs_grad[0]:
            gx = g_rows @ W if matrix else (g_rows @ W).reshape(x.shape)
        gW = RowSum(g_rows, x_rows) if self.needs_grad[1] else None
        return gx, gW, RowSum(g_rows) if self.bias_per_row else g


class MatMul(ops.MatMul):
    """``ops.MatMul`` whose first-order backward returns the gradient of a matrix on
    the right (a weight: x @ W) as a ``RowSum`` over every row of every batch."""

    def backward(self, g, out, a, b):
        if isinstance(g, Tensor) or b.ndim != 2 or a.ndim == 1:
            return super().backward(g, out, a, b)
        ga = g @ b.T if self.needs_grad[0] else None
        gb = RowSum(ops._rows(a), ops._rows(g)) if self.needs_grad[1] else None
        return ga, gb


# The core's names now make these (every module reads them as ops.linear, tg.linear, @).
ops.linear = register(Linear)
ops.matmul = register(MatMul, "__matmul__", "matmul", reflected=["__rmatmul__"])
