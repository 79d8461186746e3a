"""Tensors made from a shape or from another tensor, as PyTorch's constructors.

Each takes ``requires_grad=``, ``dtype=`` and ``name=`` as ``tg.tensor`` does; the
default dtype is float64 (``arange`` and ``full`` follow their values instead, as in
PyTorch and NumPy). A shape is given as separate ints or as one tuple:
``tg.zeros(2, 3)`` or ``tg.zeros((2, 3))``. Random values come from the generator of
``tinygraph.random``, so ``tg.manual_seed(seed)`` makes them reproducible.
"""
import numpy as np

from .random import generator
from .tensor import Tensor


def _shape(size):
    """``size`` as a tuple of ints: (2, 3), ((2, 3),) or ([2, 3],) from *size."""
    if len(size) == 1 and not isinstance(size[0], (int, np.integer)):
        size = tuple(size[0])
    if any(not isinstance(n, (int, np.integer)) or n < 0 for n in size):
        raise ValueError(f"a shape is made of ints >= 0, not {size}")
    return tuple(int(n) for n in size)


def _made(array, requires_grad, name):
    return Tensor(array, requires_grad=requires_grad, name=name)


def zeros(*size, dtype=np.float64, requires_grad=False, name=None):
    """A tensor of zeros of shape ``size``."""
    return _made(np.zeros(_shape(size), dtype), requires_grad, name)


def ones(*size, dtype=np.float64, requires_grad=False, name=None):
    """A tensor of ones of shape ``size``."""
    return _made(np.ones(_shape(size), dtype), requires_grad, name)


def full(size, fill_value, dtype=None, requires_grad=False, name=None):
    """A tensor of shape ``size`` filled with ``fill_value``; without a dtype, float64 for
    a float value, int64 for an int and bool for a bool (as PyTorch)."""
    size = _shape((size,) if isinstance(size, (int, np.integer)) else (size,))
    return _made(np.full(size, fill_value, dtype), requires_grad, name)


def empty(*size, dtype=np.float64, requires_grad=False, name=None):
    """A tensor of shape ``size`` whose values are whatever the memory held."""
    return _made(np.empty(_shape(size), dtype), requires_grad, name)


def arange(start, end=None, step=1, dtype=None, requires_grad=False, name=None):
    """start, start + step, ... up to, not including, ``end`` (``arange(n)``: 0..n-1);
    int64 when every argument is an int, else float64 (as PyTorch)."""
    if step == 0:
        raise ValueError("arange: step must not be 0")
    start, end = (0, start) if end is None else (start, end)
    return _made(np.arange(start, end, step, dtype), requires_grad, name)


def linspace(start, end, steps, dtype=np.float64, requires_grad=False, name=None):
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    return _made(np.linspace(start, end, steps, dtype=dtype), requires_grad, name)


def eye(n, m=None, dtype=np.float64, requires_grad=False, name=None):
    """The (n, m) matrix with ones on the diagonal (m defaults to n)."""
    return _made(np.eye(n, m, dtype=dtype), requires_grad, name)


def randn(*size, dtype=np.float64, requires_grad=False, name=None):
    """Values drawn from N(0, 1), of shape ``size`` (seed with ``tg.manual_seed``)."""
    return _made(generator().standard_normal(_shape(size)).astype(dtype, copy=False),
                 requires_grad, name)


def rand(*size, dtype=np.float64, requires_grad=False, name=None):
    """Values drawn from U[0, 1), of shape ``size`` (seed with ``tg.manual_seed``)."""
    return _made(generator().random(_shape(size)).astype(dtype, copy=False),
                 requires_grad, name)


def randint(low, high=None, size=(), dtype=np.int64, requires_grad=False, name=None):
    """Integers drawn uniformly from [low, high) (``randint(high, size=...)``: from 0)."""
    low, high = (0, low) if high is None else (low, high)
    return _made(generator().integers(low, high, _shape((size,) if isinstance(
        size, (int, np.integer)) else (size,))).astype(dtype), requires_grad, name)


def _like(maker):
    """``maker_like(t, ...)``: ``maker`` with the shape (and, unless given, the dtype) of t."""
    def like(input, dtype=None, requires_grad=False, name=None, **options):
        array = np.asarray(input.data if isinstance(input, Tensor) else input)
        return maker(array.shape, **options, dtype=array.dtype if dtype is None else dtype,
                     requires_grad=requires_grad, name=name)

    like.__name__ = like.__qualname__ = f"{maker.__name__}_like"
    like.__doc__ = f"``{maker.__name__}`` of the shape and dtype of ``input`` (a tensor or array)."
    return like


zeros_like, ones_like, empty_like = _like(zeros), _like(ones), _like(empty)
randn_like, rand_like = _like(randn), _like(rand)


def full_like(input, fill_value, dtype=None, requires_grad=False, name=None):
    """``full`` of the shape and dtype of ``input`` (a tensor or array)."""
    array = np.asarray(input.data if isinstance(input, Tensor) else input)
    return full(array.shape, fill_value, array.dtype if dtype is None else dtype,
                requires_grad, name)


def from_numpy(array, requires_grad=False, name=None):
    """A tensor sharing ``array``'s memory, as ``torch.from_numpy``: a write to either is
    seen by both (while a graph saved it for backward the array is read-only; see the
    README, "In-place writes"). The dtype is the array's, so no dtype= is taken."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects an np.ndarray, not {type(array).__name__}; "
                        f"tg.tensor(data) takes any array-like")
    return _made(array, requires_grad, name)
