"""The engine: how ops are recorded as graph nodes, and how backward walks them.

Read it in this order:

1. ``Op.apply`` runs an op's forward on arrays and, when a gradient will be needed,
   records the op instance as a graph node: it keeps its *parents* (each input's own
   node, or the input tensor itself for a leaf) and the arrays its backward reads.
2. ``backward``: ``reachable`` lists the nodes behind the root (iteratively: a
   100,000-op chain is fine), and ``backprop`` visits them root first. Each node gets
   the sum of what its consumers sent (``accumulate``, the fan-in that makes BPTT work),
   applies its vector-Jacobian product and sends one gradient to each parent. Leaves
   add what they get to ``.grad``. Saved arrays go as the walk passes, unless
   ``retain_graph=True``.
3. With ``create_graph=True`` the walk hands the VJPs tensors, not arrays, so the
   backward pass is itself recorded: gradients of gradients (``tg.grad``).

The one hook for code outside the core is ``observers``, told of each op applied and
of what each node's backward sends (anomaly mode, record_contributions, scan's tracer).
"""
import weakref
from contextlib import ContextDecorator, contextmanager
from types import SimpleNamespace

import numpy as np

from .tensor import Tensor


# ---- modes: process-wide settings, each changed only inside a with-block --------------
# What ops read while they run; changed only by ``using`` (every mode is one). An object,
# not a class: assigning a class attribute resets CPython's caches of the class.
Mode = SimpleNamespace(grad_enabled=True, scope=(),  # no_grad() turns the first off
                       retain_graph=False)  # during a backward: are saved arrays kept?


class using(ContextDecorator):
    """Inside the block, ``settings.name = value`` for each keyword; the old values come
    back after it. Works as a decorator too, and nests."""

    def __init__(self, settings, **values):
        self.settings, self.values, self.outer = settings, values, []

    def __enter__(self):
        self.outer.append({name: getattr(self.settings, name) for name in self.values})
        for name, value in self.values.items():
            setattr(self.settings, name, value)

    def __exit__(self, *exception):
        for name, value in self.outer.pop().items():
            setattr(self.settings, name, value)


def is_grad_enabled():
    """True when ops record a graph (the default); False inside ``no_grad()``."""
    return Mode.grad_enabled


def set_grad_enabled(enabled):
    """Turn graph recording on or off inside the block (process-wide, not per thread)."""
    return using(Mode, grad_enabled=bool(enabled))


def no_grad():
    """Build no graph inside the block: results neither require nor carry gradients."""
    return set_grad_enabled(False)


def enable_grad():
    """Record a graph inside the block, even within ``no_grad()``."""
    return set_grad_enabled(True)


class scope(ContextDecorator):
    """Tag every node created inside the block with ``label``: a node's ``scope`` is the
    tuple of labels from the outermost block in. The engine gives labels no meaning;
    drawings group nodes by them (an RNN marks each time step this way)."""

    def __init__(self, label):
        self.label, self.outer = label, []

    def __enter__(self):  # (not a ``using``: an unroll enters one scope per time step)
        self.outer.append(Mode.scope)
        Mode.scope += (self.label,)

    def __exit__(self, *exception): Mode.scope = self.outer.pop()


observers = []  # objects with forward(op, inputs, options, out) and backward(node, grads)


@contextmanager
def observing(observer):
    """Tell ``observer`` of every op applied and every backward step inside the block."""
    observers.append(observer)
    try:
        yield observer
    finally:
        observers.remove(observer)


class ShapeError(ValueError):
    """An op was given inputs whose shapes do not fit together."""


class GraphFreedError(RuntimeError):
    """Backward reached a node whose saved arrays an earlier backward released."""


class ModifiedError(RuntimeError):
    """A tensor whose array a node saved for backward was given new ``.data`` since."""


# ---- the node ---------------------------------------------------------------------------
class Op:
    """A primitive operation, and, once applied, the graph node that records it.

    A subclass defines ``forward(*arrays, **options) -> ndarray`` and beside it its VJP,
    ``backward(g, out, *inputs)``: a gradient per input (bare for one input; None where
    ``self.needs_grad`` says none is wanted). ``out``/``inputs`` are there where the class
    ``saves_output``/``saves_inputs`` (else None): arrays, or tensors when the backward
    is recorded. Where it ``broadcasts``, the engine sums gradients back to the inputs'
    shapes. What else forward keeps on ``self`` (shapes, masks) is a VJP constant."""

    __slots__ = ("parents", "needs_grad", "saved", "versions", "assignments", "scope",
                 "out_shape", "out_dtype", "out_name", "holds", "__dict__")
    saves_inputs = saves_output = broadcasts = False  # saves_inputs: True, or the first k
    hooks = None     # functions called with the gradient arriving at the output
    out_ref = None   # a weak reference to the output tensor, once retain_grad() asks
    out_version = 0  # the output tensor's version (its .data reassigned since?)
    site = None      # 'file:line' of the user code that created the node (anomaly mode)
    freed = None     # why its arrays were released, if not by a backward (see scan)

    @property
    def name(self):
        """The op's name as graphs and errors show it: ``matmul``, ``tanh``, ..."""
        return type(self).__name__.lower()

    def output(self):
        """The output tensor, if ``retain_grad()`` registered it and it is alive."""
        return None if self.out_ref is None else self.out_ref()

    @classmethod
    def apply(cls, *inputs, **options):
        """Run forward on the inputs' arrays; record the op if a gradient is needed."""
        op = cls()
        # One plain loop: in CPython 3.11 each comprehension is a function call of its own.
        arrays, needs_grad, parents, versions = [], [], [], []
        for t in inputs:
            arrays.append(t._data)
            needs_grad.append(t._requires_grad)
            parents.append(t._node or t)
            versions.append(t._version)
        try:
            data = op.forward(*arrays, **options)
        except (ValueError, IndexError) as err:  # named: the op, and the shapes it got
            raise (IndexError if isinstance(err, IndexError) else ShapeError)(
                f"{op.name}: {err} (input shapes {' and '.join(str(a.shape) for a in arrays)})"
            ) from None
        if type(data) is not np.ndarray:  # NumPy returns scalars from full reductions
            data = np.asarray(data)
        recorded = Mode.grad_enabled and True in needs_grad
        out = Tensor._wrap(data, op if recorded else None)
        for observer in observers:
            observer.forward(op, inputs, options, out)
        if not recorded:
            return out
        data.setflags(False)  # (write=False) a write into a saved array would corrupt backward
        needs_grad, shape = tuple(needs_grad), data.shape  # equal ones shared between nodes:
        if len(_shapes) > 10_000:  # fewer new objects for the garbage collector to visit (in
            _shapes.clear()        # a 100,000-op chain it took up to half of a tiny op's time)
        op.parents, n = tuple(parents), cls.saves_inputs
        op.needs_grad = _flags.setdefault(needs_grad, needs_grad)
        kept_out = data if cls.saves_output else None  # saved: (out, *inputs), None where
        op.saved = ((kept_out, *arrays) if n is True else (kept_out,) + (None,) * len(arrays)
                    if n is False else (kept_out, *arrays[:n]) + (None,) * (len(arrays) - n))
        op.versions, op.holds = (tuple(versions) if n else None), ()
        for t in () if n is False else inputs if n is True else inputs[:n]:  # (those kept)
            if t._node is None:  # a leaf's array: read-only while kept
                op.holds += hold(t._data)
        op.assignments, op.scope = Tensor.assignments, Mode.scope
        op.out_shape = _shapes.setdefault(shape, shape)
        op.out_dtype, op.out_name = data.dtype, None
        return out

    def __repr__(self): return f"<{self.name} node>"


_shapes, _flags = {}, {}  # one tuple per distinct node shape and needs_grad (see apply)
_holds = {}  # id(array) -> a weak reference to its _Hold, which keeps the array alive


class _Hold:
    """Keeps a leaf's array read-only while nodes keep it for their backward, so that a
    NumPy write into it (``W.data[0] = 1``) fails at once instead of making backward's
    gradients silently wrong. Shared by those nodes: when the last lets go, it is undone."""

    def __init__(self, array):
        self.array = array
        array.setflags(False)  # (write=False; by position: a third of the time)
        _holds[id(array)] = weakref.ref(self)

    def __del__(self, holds=_holds):  # (bound here: at exit the module's names are gone)
        holds.pop(id(self.array), None)
        self.array.setflags(True)


def hold(array):
    """(the _Hold of what owns ``array``'s memory,) for a node; () if it is read-only."""
    ref = _holds.get(id(array))  # (most often a weight's own array, held already)
    while ref is None and isinstance(array.base, np.ndarray):  # a view (x[t]): its base
        array = array.base
        ref = _holds.get(id(array))
    held = None if ref is None else ref()
    if held is None and array.flags.writeable:
        held = _Hold(array)
    return () if held is None else (held,)


# ---- the backward walk ------------------------------------------------------------------
def reachable(roots):
    """(op nodes, leaves that require grad) that ``roots`` (nodes or leaf tensors) depend
    on, each node after all of its consumers: an iterative depth-first search, parents in
    input order. Depth first keeps memory low: backward uses each gradient soon after."""
    nodes, leaves, seen = [], [], set()
    for root in roots:
        if root in seen:  # (a root that an earlier one depends on is listed already)
            continue
        seen.add(root)
        if not isinstance(root, Op):
            leaves.append(root)
            continue
        stack = [(root, iter(root.parents))]
        while stack:
            node, parents = stack[-1]
            for parent in parents:
                if parent in seen:
                    continue
                seen.add(parent)
                if isinstance(parent, Op):
                    stack.append((parent, iter(parent.parents)))
                    break
                if parent._requires_grad:
                    leaves.append(parent)
            else:
                stack.pop()
                nodes.append(node)
    nodes.reverse()
    return nodes, leaves


def toposort(root):
    """The vertices ``root`` depends on in backward's order: op nodes, then leaves."""
    return sum(reachable([root]), [])


def accumulate(total, grad):
    """total + grad: how gradients from several consumers add up (None: nothing yet)."""
    return grad if total is None else total + grad


def backward(root, grad=None, retain_graph=None, create_graph=False):
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

    ``grad`` is d(loss)/d(root), needed unless ``root`` has one element. Unless
    ``retain_graph`` (default: ``create_graph``), saved arrays go as the walk passes. A
    leaf ``root`` does not depend on keeps ``.grad`` None, not zeros. With
    ``create_graph`` the ``.grad``s are tensors, recorded as a graph of their own."""
    grads = backprop([root], [grad], retain_graph, create_graph, "backward()")
    arrived = [(leaf, _leaf_grad(leaf, g)) for leaf, g in grads.items()]
    for leaf, g in arrived:  # hooks and checks first: an error there changes no .grad
        leaf.grad = accumulate(leaf.grad, g if create_graph else np.array(g, leaf.dtype))


Tensor.backward = backward


def backprop(roots, root_grads, retain_graph, create_graph, caller, wanted=()):
    """The walk from ``roots`` given d(loss)/d(root) for each (None: ones); returns
    ``{vertex: gradient}`` for the leaves reached and the ``wanted`` nodes."""
    retain_graph = create_graph if retain_graph is None else retain_graph
    pending = {}
    for root, g in zip(roots, root_grads):
        start = root._node or root
        pending[start] = accumulate(pending.get(start), _root_grad(root, g, create_graph,
                                                                   caller))
    nodes, leaves = reachable(list(pending))
    _check(nodes)
    found, wanted = {}, set(wanted)
    with using(Mode, grad_enabled=create_graph, retain_graph=retain_graph):
        for node in nodes:
            g = pending.pop(node, None)
            if g is None:
                continue
            g = g if type(g) is np.ndarray else _value(g)  # (a lazy sum, a NumPy scalar)
            if node.hooks or node.out_ref is not None:
                g = _arrived(node, g, create_graph)
            if wanted and node in wanted:
                found[node] = g
            saved = _as_tensors(node) if create_graph else node.saved
            parent_grads = (node.backward(g, saved[0], saved[1]) if len(saved) == 2 else  # (a
                            node.backward(g, saved[0], saved[1], saved[2]) if len(saved) == 3
                            else node.backward(g, *saved))  # call with * costs a tiny op 2%)
            parent_grads = parent_grads if type(parent_grads) is tuple else (parent_grads,)
            for observer in observers:
                observer.backward(node, parent_grads)
            if not retain_graph:
                node.saved, node.holds = None, ()
            for parent, parent_grad in zip(node.parents, parent_grads):
                if parent_grad is not None:
                    if node.broadcasts:  # (the shapes differ only where inputs broadcast)
                        shape = parent.out_shape if isinstance(parent, Op) else parent._data.shape
                        if parent_grad.shape != shape:
                            parent_grad = unbroadcast(parent_grad, shape, node)
                    total = pending.get(parent)  # the fan-in (a first arrival needs no call)
                    pending[parent] = parent_grad if total is None else accumulate(
                        total, parent_grad)
    found.update((leaf, _value(pending[leaf])) for leaf in leaves if leaf in pending)
    return found


def _check(nodes):
    """Raise before any backward runs if a node was freed or its inputs reassigned."""
    for node in nodes:
        if node.saved is None:
            raise GraphFreedError(node.freed or _freed_message(node))
        if node.assignments != Tensor.assignments:  # some .data was assigned since
            _check_versions(node)


def _arrived(node, grad, create_graph):
    """The gradient at ``node``'s output after its hooks (kept if retain_grad() asked)."""
    grad = _run_hooks(node.hooks, grad) if node.hooks else grad
    kept = node.output()
    if kept is not None:
        kept.grad = accumulate(kept.grad, grad if create_graph else np.array(grad))
    return grad


def _value(grad):
    """The gradient as an array or tensor: a NumPy scalar (from 0-d arithmetic) as an
    array, a lazy sum (``ops.Scatter``, the accelerator's ``RowSum``) evaluated."""
    if type(grad) is np.ndarray or isinstance(grad, Tensor):
        return grad
    return np.asarray(grad) if isinstance(grad, np.generic) else grad.evaluate()


def _root_grad(root, g, create_graph, caller):
    if not root._requires_grad:
        raise RuntimeError(
            f"{caller} on a tensor that does not require grad: no input of the computation "
            f"that made it has requires_grad=True (was it computed inside no_grad(), or "
            f"from detached tensors?)")
    if g is None and root.size != 1:
        raise RuntimeError(
            f"{caller} without a gradient needs a tensor with one element, but this one "
            f"has shape {root.shape}; reduce it first (e.g. .sum()) or pass a gradient of "
            f"shape {root.shape}")
    if g is None or not (create_graph and isinstance(g, Tensor)):
        g = np.ones_like(root._data) if g is None else np.asarray(
            g._data if isinstance(g, Tensor) else g, dtype=root.dtype)
    if g.shape != root.shape:
        raise ShapeError(f"{caller}: the gradient has shape {g.shape} but the tensor has "
                         f"shape {root.shape}; they must be equal")
    return Tensor._wrap(g) if create_graph and not isinstance(g, Tensor) else g


def _as_tensors(node):
    """The node's saved arrays as tensors in the graph (for a recorded backward): its
    output as made by the node itself, each input as made by its parent."""
    out, *inputs = node.saved
    return (None if out is None else Tensor._wrap(out, node),
            *[a if a is None else parent if isinstance(parent, Tensor) else
              Tensor._wrap(a, parent) for a, parent in zip(inputs, node.parents)])


def unbroadcast(grad, shape, op):
    """Sum ``grad`` (sent by ``op``) down to ``shape``: the VJP of broadcasting."""
    if grad.shape == shape:
        return grad
    extra = len(grad.shape) - len(shape)
    if extra < 0 or any(n != 1 and n != m for n, m in zip(shape, grad.shape[extra:])):
        raise ShapeError(f"the backward of '{op.name}' returned the wrong shape: a "
                         f"gradient of shape {grad.shape} for an input of shape {shape}")
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _run_hooks(hooks, grad):
    for hook in hooks:  # a hook may return a replacement
        replaced = hook(grad)
        grad = grad if replaced is None else replaced if isinstance(replaced, Tensor) \
            else np.asarray(replaced)
    return grad


def _leaf_grad(leaf, grad):
    """The gradient that reached ``leaf``, after its hooks, checked against its shape."""
    grad = _run_hooks(leaf._hooks, grad) if leaf._hooks else grad
    if grad.shape != leaf.shape:
        raise ShapeError(f"a gradient of shape {grad.shape} reached a leaf of shape "
                         f"{leaf.shape}: the backward of an op that uses it (or a hook on "
                         f"it) returned the wrong shape")
    return grad


def _where(node):
    return f" (scope {'/'.join(map(str, node.scope))})" if node.scope else ""


def _freed_message(node):
    return (f"backward through a graph that was already freed: the arrays saved by "
            f"'{node.name}'{_where(node)} were released by an earlier backward(). To run "
            f"backward twice through the same graph, call backward(retain_graph=True) "
            f"the first time. If this is a training loop that carries a hidden state "
            f"over from the previous batch, detach that state instead (a = a.detach()): "
            f"that is truncated BPTT, and retain_graph=True would only hide the problem "
            f"while the graph, and memory, grow with every batch.")


def _check_versions(node):
    """Raise ``ModifiedError`` if a tensor whose array ``node`` saved was reassigned."""
    checks = [(f"input {i}", parent, saved)
              for i, (parent, saved) in enumerate(zip(node.parents, node.versions or ()))]
    if node.saves_output:
        checks.append(("output", node, 0))
    for which, vertex, saved in checks:
        version = vertex.out_version if isinstance(vertex, Op) else vertex._version
        if saved is not None and version != saved:
            name, shape = ((vertex.out_name, vertex.out_shape) if isinstance(vertex, Op)
                           else (vertex.name, vertex.shape))
            raise ModifiedError(
                f"an array saved for backward has been modified: the {which} "
                f"({f'{name!r}, ' if name else ''}shape {shape}) of '{node.name}'"
                f"{_where(node)} is at version {version}; expected version {saved}. Its "
                f"data was changed between the forward pass and backward, e.g. by "
                f"optimizer.step() or an assignment to .data before loss.backward(). Call "
                f"backward() first, or run the forward pass again.")
