"""Tensor: a NumPy array, plus the graph node that made it.

It needs nothing else of tinygraph: the methods that compute (``x + y``, ``x.tanh()``)
are attached by ``ops.py``, where each op is registered once, and ``x.backward()`` by
``engine.py``."""
import weakref
from types import SimpleNamespace

import numpy as np


class Tensor:
    """An ``np.ndarray`` that can take part in reverse-mode differentiation.

    ``grad`` is None until a backward reaches the tensor; leaves keep it (non-leaves
    after ``retain_grad()``), adding up across backward calls as in PyTorch: an ndarray,
    or a Tensor after ``backward(create_graph=True)``. Only floating-point tensors can
    require grad; integer tensors serve as indices and class targets."""

    __slots__ = ("_data", "grad", "_requires_grad", "_name", "_node", "_hooks",
                 "_version", "__weakref__")
    # Makes NumPy defer to our reflected operators: ndarray + Tensor -> Tensor.
    __array_ufunc__ = None
    # How many times any tensor's .data was assigned; a node notes it when recorded, so
    # that backward checks the versions of what it saved only if there was one since.
    assignments = 0

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        if isinstance(data, Tensor):
            data = data._data
        array = np.asarray(data, dtype=dtype)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"Tensor data must be numeric, not {array.dtype}")
        self._data, self.grad, self._requires_grad, self._name = array, None, False, name
        self._node, self._hooks, self._version = None, None, 0
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array, node=None):
        """A tensor around ``array`` without checks (for ops' results); ``node``, if
        given, is the graph node that computed it."""
        t = cls.__new__(cls)
        t._data, t._node, t._requires_grad, t._version = array, node, node is not None, 0
        t.grad = t._name = t._hooks = None
        return t

    # ---- the array -------------------------------------------------------------
    @property
    def data(self):
        """The underlying ``np.ndarray`` (not a copy). While a graph that saved it for
        backward is alive, it is read-only: see README, "In-place writes"."""
        return self._data

    @data.setter
    def data(self, value):
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if self._requires_grad and array.dtype.kind != "f":
            raise TypeError(
                f"cannot assign {array.dtype} data to a tensor that requires grad")
        self._data = array
        self._version += 1
        Tensor.assignments += 1
        if self._node is not None:
            self._node.out_version = self._version  # backward checks it, see engine

    @property
    def name(self):
        """A label for drawings and error messages (e.g. "W_aa", "a<3>"), or None."""
        return self._name

    @name.setter
    def name(self, value):
        self._name = value
        if self._node is not None:
            self._node.out_name = value  # so a drawing can name it after it is released

    shape = property(lambda self: self._data.shape)
    ndim = property(lambda self: self._data.ndim)
    dtype = property(lambda self: self._data.dtype)
    size = property(lambda self: self._data.size)

    def __len__(self): return len(self._data)

    def item(self):
        """The single element as a Python number."""
        if self._data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, not shape {self.shape}")
        return self.data.item()

    def numpy(self):
        """The underlying array (shared, not copied), as ``tensor.detach().numpy()``."""
        return self.data

    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())
    def __bool__(self): return bool(self.data)
    def __iter__(self): return (self[i] for i in range(len(self)))

    # ---- gradient bookkeeping -----------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        value = bool(value)
        if self._node is not None:
            raise RuntimeError(f"requires_grad can only be changed on leaf tensors; this one "
                               f"was computed by '{self._node.name}' (.detach() gives a leaf)")
        if value and self._data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require grad, but this one is "
                f"{self._data.dtype}: integer tensors serve as indices and targets; "
                f"pass float data (or dtype=np.float64) to differentiate")
        self._requires_grad = value

    is_leaf = property(lambda self: self._node is None,
                       doc="True unless the tensor was computed by an op that recorded a graph.")
    op = property(lambda self: self._node, doc="The graph node that computed it, or None.")

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        out = Tensor._wrap(self._data)
        out._name = self._name
        return out

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._node is not None:
            self._node.out_ref = weakref.ref(self)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with the gradient arriving at this tensor in each backward.

        ``grad`` is the total over all of the tensor's consumers. If the hook returns
        an array, that array replaces the gradient. Returns a handle with ``remove()``.
        """
        if not self._requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad")
        owner = self if self._node is None else self._node
        attribute = "_hooks" if self._node is None else "hooks"
        hooks = getattr(owner, attribute) or []
        hooks.append(hook)
        setattr(owner, attribute, hooks)
        return SimpleNamespace(remove=lambda: hook in hooks and hooks.remove(hook))

    # ---- display ---------------------------------------------------------------
    def __repr__(self):
        values = np.array2string(self._data, threshold=20, precision=4, separator=", ",
                                 prefix="Tensor(")
        fields = [f"name={self.name!r}"] * (self.name is not None) + [
            f"shape={self.shape}", f"dtype={self.dtype}"] + (
            [f"op={self._node.name}"] if self._node is not None else
            ["requires_grad=True"] * self._requires_grad)
        return f"Tensor({values}, {', '.join(fields)})"

    # Comparisons are not differentiable: plain boolean arrays. (Reading values goes
    # through .data, which a subclass may watch: scan's tracer does.)
    def __lt__(self, other): return self.data < _array(other)
    def __le__(self, other): return self.data <= _array(other)
    def __gt__(self, other): return self.data > _array(other)
    def __ge__(self, other): return self.data >= _array(other)
    def __eq__(self, other): return self.data == _array(other)
    def __ne__(self, other): return self.data != _array(other)
    __hash__ = object.__hash__  # identity, so tensors can key dicts and sets


def _array(x):
    return x.data if isinstance(x, Tensor) else x


def tensor(data, requires_grad=False, name=None, dtype=None):
    """Make a leaf tensor. Float data stays at its precision (float64 for Python floats)."""
    return Tensor(data, requires_grad=requires_grad, name=name, dtype=dtype)
