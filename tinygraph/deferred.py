"""Gradients kept in factored form until somebody needs the array.

Some vector-Jacobian products are cheap to *add up* but wasteful to build one by one:

- A weight used at T time steps gets T gradients W_grad(t) = G_t^T X_t. Adding them
  one by one costs T small matrix products and T - 1 additions; joining the rows of
  every G_t and X_t and multiplying once (``RowSum``) is what a careful hand-written
  BPTT does.
- Slicing x[t] out of a sequence at each of T steps gives T gradients that are zero
  except at one slice. Building each as a full array costs O(T) apiece, O(T^2) in
  all; keeping the slices (``Scatter``) and writing them into one array costs O(T).

An op's ``backward`` may return one of these instead of an array. The engine adds
gradients with ``add_grads`` and turns them into arrays with ``as_array`` just before
a node's backward (or a leaf's ``.grad``) needs them; nothing else ever sees them.
"""
import numpy as np


class Deferred:
    """A gradient not yet built: ``evaluate()`` builds it, ``absorb(other)`` adds to it."""

    __slots__ = ()

    def evaluate(self):
        raise NotImplementedError

    def absorb(self, other):
        """Add ``other`` in place and return True if it has the same form, else False."""
        raise NotImplementedError


def as_array(grad):
    """``grad`` as an ndarray."""
    return grad.evaluate() if isinstance(grad, Deferred) else grad


def add_grads(a, b):
    """a + b for gradients that may be arrays or ``Deferred`` (which the engine owns, so
    adding to one in place is fine)."""
    if isinstance(a, Deferred):
        return a if a.absorb(b) else a.evaluate() + as_array(b)
    if isinstance(b, Deferred):
        return b if b.absorb(a) else b.evaluate() + a
    return a + b


class RowSum(Deferred):
    """The gradient G^T X = sum over rows r of outer(G[r], X[r]) (or G^T 1, the column
    sums of G, when X is None): a weight's (or bias's) gradient from a batch of rows.

    Adding two joins their rows. Every ``MAX_ROWS`` rows the product is done and
    kept, which bounds the memory held to that many rows.
    """

    __slots__ = ("G", "X", "kind", "rows", "done")
    MAX_ROWS = 1024

    def __init__(self, G, X=None):
        self.G, self.X = [G], None if X is None else [X]
        self.kind = G.shape[1:], None if X is None else X.shape[1:]
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

    def absorb(self, other):
        if not (isinstance(other, RowSum) and other.kind == self.kind):
            return False
        if other.done is not None:
            self.done = other.done if self.done is None else self.done + other.done
        self.G += other.G
        if self.X is not None:
            self.X += other.X
        self.rows += other.rows
        if self.rows >= self.MAX_ROWS:
            self.done, self.G, self.rows = self.evaluate(), [], 0
            if self.X is not None:
                self.X = []
        return True


class Scatter(Deferred):
    """A gradient of ``shape`` that is zero except at x[index], where it is g: the
    VJP of indexing, kept as its (index, g) pieces.

    ``repeats`` marks an index that may select one place several times (integer
    arrays), whose pieces must add up with ``np.add.at``.
    """

    __slots__ = ("shape", "dtype", "pieces")

    def __init__(self, shape, dtype, index, g, repeats):
        self.shape = shape
        self.dtype = dtype if g.dtype == dtype else np.result_type(dtype, g.dtype)
        self.pieces = [(index, g, repeats)]

    def add(self, index, g):
        """Add the piece g at x[index], an index that selects no place twice."""
        self.pieces.append((index, g, False))

    def evaluate(self):
        if self._each_row_once():  # x[0], ..., x[n-1]: nothing to add, no zeros to write
            grad = np.empty(self.shape, dtype=self.dtype)
            for index, g, _ in self.pieces:
                grad[index] = g
            return grad
        grad = np.zeros(self.shape, dtype=self.dtype)
        for index, g, repeats in self.pieces:
            if repeats:
                np.add.at(grad, index, g)
            else:
                grad[index] += g
        return grad

    def _each_row_once(self):
        """True if the pieces are the rows x[i], for every integer i once (in any order):
        the gradient of a sequence read one time step at a time."""
        rows = len(self.pieces)
        if not self.shape or self.shape[0] != rows:
            return False
        seen = set()
        for index, _, _ in self.pieces:
            if not (type(index) is int or isinstance(index, np.integer)):  # not bool
                return False
            seen.add(int(index) % rows)
        return len(seen) == rows

    def absorb(self, other):
        if not (isinstance(other, Scatter) and other.shape == self.shape):
            return False
        if other.dtype != self.dtype:
            self.dtype = np.result_type(self.dtype, other.dtype)
        self.pieces += other.pieces
        return True
