"""Tensor: a NumPy array, plus the graph node that made it.

Arithmetic on tensors runs the primitive ops of ``ops.py``; when any input requires
grad the result remembers its op, and ``backward()`` follows those records back.
"""
import weakref

import numpy as np

from . import engine


class Tensor:
    """An ``np.ndarray`` that can take part in reverse-mode differentiation.

    ``grad`` is None until a backward reaches the tensor; it is kept on leaves (and on
    non-leaves only after ``retain_grad()``) and accumulates across backward calls
    until reset, as in PyTorch. Only floating-point tensors can require grad; integer
    tensors serve as indices and class targets.
    """

    __slots__ = ("_data", "grad", "_requires_grad", "_name", "_node", "_hooks",
                 "_version", "__weakref__")
    # Makes NumPy defer to our reflected operators: ndarray + Tensor -> Tensor.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        if isinstance(data, Tensor):
            data = data._data
        array = np.asarray(data, dtype=dtype)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"Tensor data must be numeric, not {array.dtype}")
        self._data = array
        self.grad = None
        self._requires_grad = False
        self._name = name
        self._node = None
        self._hooks = None
        self._version = 0
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array):
        """A constant tensor around ``array`` (no checks: for ops' results)."""
        t = cls.__new__(cls)
        t._data = array
        t.grad = None
        t._requires_grad = False
        t._name = None
        t._node = None
        t._hooks = None
        t._version = 0
        return t

    # ---- the array -------------------------------------------------------------
    @property
    def data(self):
        """The underlying ``np.ndarray`` (not a copy)."""
        return _read(self)

    @data.setter
    def data(self, value):
        _refuse_while_tracing("assigning .data")
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if self._requires_grad and array.dtype.kind != "f":
            raise TypeError(
                f"cannot assign {array.dtype} data to a tensor that requires grad")
        self._data = array
        self._version += 1
        engine.data_assigned()
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

    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def size(self):
        return self._data.size

    def __len__(self):
        return len(self._data)

    def item(self):
        """The single element as a Python number."""
        _read(self)
        if self._data.size != 1:
            raise ValueError(
                f"item() needs a tensor with one element, not shape {self.shape}")
        return self._data.item()

    def numpy(self):
        """The underlying array (shared, not copied), as ``tensor.detach().numpy()``."""
        return _read(self)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        _read(self)
        return bool(self._data)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # ---- gradient bookkeeping -----------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        value = bool(value)
        if self._node is not None:
            raise RuntimeError(
                "requires_grad can only be changed on leaf tensors; this one was "
                f"computed by '{self._node.name}' (use .detach() to get a leaf)")
        if value and self._data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require grad, but this one is "
                f"{self._data.dtype}: integer tensors serve as indices and targets; "
                f"pass float data (or dtype=np.float64) to differentiate")
        self._requires_grad = value

    @property
    def is_leaf(self):
        """True unless the tensor was computed by an op that recorded a graph."""
        return self._node is None

    @property
    def op(self):
        """The graph node that computed this tensor, or None for a leaf."""
        return self._node

    def backward(self, grad=None, retain_graph=False):
        """Backpropagate from this tensor: see ``tinygraph.engine.backward``."""
        engine.backward(self, grad, retain_graph)

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        _refuse_while_tracing("detach()", "compute the value in a tg.no_grad() block "
                                          "of the step (that replays), or ")
        out = Tensor._wrap(self._data)
        out._name = self._name
        return out

    def retain_grad(self):
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        _refuse_while_tracing("retain_grad()")
        if not self._requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self._node is not None:
            self._node.retains_grad = True
            self._node.out_ref = weakref.ref(self)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with the gradient arriving at this tensor in each backward.

        ``grad`` is the total over all of the tensor's consumers. If the hook returns
        an array, that array replaces the gradient. Returns a handle with ``remove()``.
        """
        _refuse_while_tracing("register_hook()")
        if not self._requires_grad:
            raise RuntimeError("register_hook() on a tensor that does not require grad")
        owner = self if self._node is None else self._node
        attribute = "_hooks" if self._node is None else "hooks"
        hooks = getattr(owner, attribute) or []
        hooks.append(hook)
        setattr(owner, attribute, hooks)
        return _HookHandle(hooks, hook)

    # ---- display ---------------------------------------------------------------
    def __repr__(self):
        fields = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.name is not None:
            fields.insert(0, f"name={self.name!r}")
        if self._node is not None:
            fields.append(f"op={self._node.name}")
        elif self._requires_grad:
            fields.append("requires_grad=True")
        values = np.array2string(self._data, threshold=20, precision=4,
                                 separator=", ", prefix="Tensor(")
        return f"Tensor({values}, {', '.join(fields)})"

    # ---- operators -------------------------------------------------------------
    def __add__(self, other): return ops.add(self, other)
    def __radd__(self, other): return ops.add(other, self)
    def __sub__(self, other): return ops.sub(self, other)
    def __rsub__(self, other): return ops.sub(other, self)
    def __mul__(self, other): return ops.mul(self, other)
    def __rmul__(self, other): return ops.mul(other, self)
    def __truediv__(self, other): return ops.div(self, other)
    def __rtruediv__(self, other): return ops.div(other, self)
    def __pow__(self, other): return ops.pow(self, other)
    def __rpow__(self, other): return ops.pow(other, self)
    def __matmul__(self, other): return ops.matmul(self, other)
    def __rmatmul__(self, other): return ops.matmul(other, self)
    def __neg__(self): return ops.neg(self)
    def __getitem__(self, index): return ops.getitem(self, index)

    # Comparisons are not differentiable: they return plain boolean arrays.
    def __lt__(self, other): return _read(self) < _array(other)
    def __le__(self, other): return _read(self) <= _array(other)
    def __gt__(self, other): return _read(self) > _array(other)
    def __ge__(self, other): return _read(self) >= _array(other)
    def __eq__(self, other): return _read(self) == _array(other)
    def __ne__(self, other): return _read(self) != _array(other)
    __hash__ = object.__hash__  # identity, so tensors can key dicts and sets

    # ---- methods that mirror the ops -------------------------------------------
    def exp(self): return ops.exp(self)
    def log(self): return ops.log(self)
    def tanh(self): return ops.tanh(self)
    def sigmoid(self): return ops.sigmoid(self)
    def relu(self): return ops.relu(self)
    def sum(self, axis=None, keepdims=False): return ops.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return ops.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return ops.max(self, axis, keepdims)
    def log_softmax(self, axis=-1): return ops.log_softmax(self, axis)
    def matmul(self, other): return ops.matmul(self, other)

    def reshape(self, *shape):
        return ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def permute(self, *axes):
        return ops.permute(self, axes[0] if len(axes) == 1 else axes)

    @property
    def T(self):
        """The tensor with its axes reversed (the matrix transpose for 2-D)."""
        return ops.transpose(self)


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _array(x):
    return _read(x) if isinstance(x, Tensor) else x


def tensor(data, requires_grad=False, name=None, dtype=None):
    """Make a leaf tensor. Float data stays at its precision (float64 for Python floats)."""
    return Tensor(data, requires_grad=requires_grad, name=name, dtype=dtype)


def _read(tensor):
    """``tensor``'s array, noted if ``tg.scan`` is tracing a step: values read in Python
    there are fixed at the traced steps, which the trace then refuses for per-step
    values."""
    if engine.tracing is not None:
        engine.traced_reads.append(tensor)
    return tensor._data


def _refuse_while_tracing(what, instead=""):
    """Raise inside a step that ``tg.scan`` traces: ``what`` is not an op, so the replay
    of the other steps could not repeat it."""
    if engine.tracing is not None:
        raise RuntimeError(f"{what} inside a step that tg.scan traces: it is not an op, so "
                           f"the replay of the other steps cannot repeat it; {instead}run "
                           f"the loop under tg.unrolled() instead")


from . import ops  # noqa: E402  (ops needs Tensor, the operators above need ops)
