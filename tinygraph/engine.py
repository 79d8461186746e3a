"""The engine: how ops are recorded into a graph, and how backward walks it.

Read it in this order:

1. ``Op.apply`` runs an op's forward on NumPy arrays and, when a gradient will be
   needed, records the op as a graph node. The node keeps its *parents*: for each
   input, the input's own node if the input was computed, or the input tensor
   itself if it is a leaf.
2. ``backward`` sorts the nodes reachable from the root (iteratively, so a
   100,000-op chain is fine), then visits them root first. Each node receives the
   sum of the gradients its consumers sent it (the fan-in that makes BPTT work),
   applies its vector-Jacobian product, and passes one gradient to each parent.
   Leaves add what they receive to ``.grad``.

Nodes do not hold the tensors they produced, only what their backward needs
(``saved``), so intermediate arrays are released as soon as nothing needs them.
After a backward the saved arrays are dropped unless ``retain_graph=True``.
"""
from contextlib import contextmanager

import numpy as np

from . import anomaly
from .deferred import Deferred, add_grads, as_array

_grad_enabled = True
_scope = ()
backward_count = 0  # backward passes run so far (optim uses it to spot a late clip)


def is_grad_enabled():
    """True when ops record a graph (the default); False inside ``no_grad()``."""
    return _grad_enabled


@contextmanager
def set_grad_enabled(enabled):
    """Turn graph recording on or off inside the block (process-wide, not per thread)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, bool(enabled)
    try:
        yield
    finally:
        _grad_enabled = previous


def no_grad():
    """Build no graph inside the block: results neither require nor carry gradients."""
    return set_grad_enabled(False)


def enable_grad():
    """Record a graph inside the block, even within ``no_grad()``."""
    return set_grad_enabled(True)


@contextmanager
def scope(label):
    """Tag every node created inside the block with ``label``.

    Scopes nest: a node's ``scope`` is the tuple of labels from the outermost block
    in. The engine gives labels no meaning; drawings use them to group nodes (the
    RNN unrolling marks each time step this way).
    """
    global _scope
    previous, _scope = _scope, _scope + (label,)
    try:
        yield
    finally:
        _scope = previous


_recorders = []


@contextmanager
def record_contributions():
    """Record, during the backward passes run inside the block, every gradient
    contribution that reaches a leaf, one per use.

    Yields a dict ``{leaf tensor: [(node, grad), ...]}`` in the order backward
    produced them; ``node`` is the consumer that sent ``grad`` (its ``scope`` tells
    where in the model it was), and the grads of one leaf sum to what backward added
    to ``leaf.grad``. This is how a drawing shows dL/dW = sum over t of dL/dW^(t).
    """
    contributions = {}
    _recorders.append(contributions)
    try:
        yield contributions
    finally:
        _recorders.remove(contributions)


class ShapeError(ValueError):
    """An op was given inputs whose shapes do not fit together."""


class GraphFreedError(RuntimeError):
    """Backward reached a node whose saved arrays an earlier backward released."""


class ModifiedError(RuntimeError):
    """An array saved for backward was changed after the forward pass saved it."""


class Op:
    """A primitive operation, and, once applied, the graph node that records it.

    A subclass defines ``forward(*arrays, **params) -> ndarray`` and
    ``backward(grad_out) -> one gradient (or None) per input``, side by side.
    ``forward`` keeps what ``backward`` will need in ``self.saved``;
    ``self.needs_grad[i]`` tells ``backward`` which input gradients are wanted.

    A subclass whose ``saved`` holds its input arrays sets ``saves_inputs``, one that
    holds its output sets ``saves_output``: backward then checks that those tensors
    were not changed in between (their version counters), instead of returning
    wrong gradients. The arrays an op outputs are made read-only, so a direct NumPy
    write into a saved intermediate fails at once.
    """

    __slots__ = ("parents", "needs_grad", "saved", "out_shape", "out_dtype", "out_name",
                 "scope", "versions", "freed", "__dict__")
    saves_inputs = False
    saves_output = False
    # Rarely set, so kept as class defaults rather than written on every node.
    hooks = None          # functions called with the gradient arriving at the output
    retains_grad = False  # keep that gradient in the output tensor's .grad
    site = None           # 'file:line' of the user code that created the node (anomaly mode)
    out_version = 0       # the output tensor's version (its data reassigned since?)
    out_ref = None        # a weak reference to the output tensor, once retain_grad() asks

    def output(self):
        """The tensor this node computed, if ``retain_grad()`` registered it and it is
        still alive; else None. (Nodes do not hold their outputs, so that intermediate
        arrays can be freed as soon as nothing needs them.)"""
        return None if self.out_ref is None else self.out_ref()

    def forward(self, *arrays, **params):
        raise NotImplementedError

    def backward(self, grad_out):
        raise NotImplementedError

    @property
    def name(self):
        """The op's name as graphs and errors show it: ``matmul``, ``tanh``, ..."""
        return type(self).__name__.lower()

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays; record the op if a gradient is needed."""
        op = cls()
        arrays = [t._data for t in inputs]
        try:
            data = op.forward(*arrays, **params)
        except (ValueError, IndexError) as err:
            shapes = " and ".join(str(t.shape) for t in inputs)
            message = f"{op.name}: {err} (input shapes {shapes})"
            if isinstance(err, IndexError):
                raise IndexError(message) from None
            raise ShapeError(message) from None
        if type(data) is not np.ndarray:  # NumPy returns scalars from full reductions
            data = np.asarray(data)
        if anomaly.enabled:
            op.site = anomaly.creation_site()
            anomaly.check_forward(op, arrays, data, op.site)
        out = Tensor._wrap(data)
        if not _grad_enabled:
            return out
        needs_grad = tuple([t._requires_grad for t in inputs])
        if True not in needs_grad:
            return out
        data.setflags(write=False)
        op.parents = tuple([t._node or t for t in inputs])
        op.needs_grad = _share(needs_grad)
        op.versions = tuple([t._version for t in inputs]) if cls.saves_inputs else None
        op.out_shape = _share(data.shape)
        op.out_dtype = data.dtype
        op.out_name = None  # the output tensor's name, once it gets one (for drawings)
        op.scope = _scope
        op.freed = False
        out._requires_grad = True
        out._node = op
        return out

    def __repr__(self):
        return f"<{self.name} node>"


_shared = {}


def _share(small_tuple):
    """One shared copy of equal tuples (shapes, flags): a long unroll records thousands
    of nodes with the same ones. The cache is bounded, in case shapes keep changing."""
    if len(_shared) > 10_000:
        _shared.clear()
    return _shared.setdefault(small_tuple, small_tuple)


def toposort(root):
    """Every vertex whose gradient ``root`` depends on, root first, parents after children.

    A vertex is an ``Op`` node or a leaf tensor that requires grad. Iterative
    depth-first search (no recursion limit) that lists a vertex once all of its
    parents are listed; parents are explored in input order, so the order is the
    same on every run.
    """
    if not isinstance(root, Op):
        return [root]
    order, visited = [], {root}
    stack = [(root, iter(root.parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent in visited:
                continue
            if isinstance(parent, Op):
                visited.add(parent)
                stack.append((parent, iter(parent.parents)))
                break
            if parent._requires_grad:
                visited.add(parent)
                order.append(parent)
        else:
            stack.pop()
            order.append(node)
    order.reverse()
    return order


def _freed_message(node):
    where = f" (scope {'/'.join(map(str, node.scope))})" if node.scope else ""
    return (
        f"backward through a graph that was already freed: the arrays saved by "
        f"'{node.name}'{where} were released by an earlier backward(). To run "
        f"backward twice through the same graph, call backward(retain_graph=True) "
        f"the first time. If this is a training loop that carries a hidden state "
        f"over from the previous batch, detach that state instead (a = a.detach()): "
        f"that is truncated BPTT, and retain_graph=True would only hide the problem "
        f"while the graph, and memory, grow with every batch.")


def _check_saved_versions(node):
    """Raise ``ModifiedError`` if a tensor whose array ``node`` saved has changed since."""
    if node.versions is not None:
        for i, (parent, saved_version) in enumerate(zip(node.parents, node.versions)):
            version = parent.out_version if isinstance(parent, Op) else parent._version
            if version != saved_version:
                raise ModifiedError(_modified_message(node, f"input {i}", parent, version,
                                                      saved_version))
    if node.saves_output and node.out_version != 0:
        raise ModifiedError(_modified_message(node, "output", node, node.out_version, 0))


def _modified_message(node, which, vertex, version, saved_version):
    """``vertex``: the leaf tensor, or the node whose output it was."""
    name, shape = ((vertex.out_name, vertex.out_shape) if isinstance(vertex, Op)
                   else (vertex.name, vertex.shape))
    name = f"'{name}', " if name else ""
    where = f" (scope {'/'.join(map(str, node.scope))})" if node.scope else ""
    return (
        f"an array saved for backward has been modified: the {which} ({name}shape "
        f"{shape}) of '{node.name}'{where} is at version {version}; "
        f"expected version {saved_version}. Its data was changed between the forward "
        f"pass and backward, e.g. by optimizer.step() or an assignment to .data before "
        f"loss.backward(). Call backward() first, or run the forward pass again.")


def _run_hooks(hooks, grad):
    for hook in hooks:
        replaced = hook(grad)
        if replaced is not None:
            grad = np.asarray(replaced)
    return grad


def backward(root, grad=None, retain_graph=False):
    """Accumulate d(root)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

    ``grad`` is d(loss)/d(root); it may be omitted only when ``root`` has one element.
    Unless ``retain_graph`` is true, each node's saved arrays are released as soon as
    its backward has run. A leaf that ``root`` does not depend on is not touched: its
    ``.grad`` stays None (not zeros), which tells a parameter the loss never used.
    """
    global backward_count
    if not root._requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the "
            "computation that made it has requires_grad=True (was it computed inside "
            "no_grad(), or from detached tensors?)")
    if grad is None:
        if root.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a tensor with one element, but "
                f"this one has shape {root.shape}; reduce it first (e.g. .sum()) or "
                f"pass backward(grad) with an array of shape {root.shape}")
        grad = np.ones_like(root._data)
    else:
        grad = np.asarray(grad.numpy() if hasattr(grad, "numpy") else grad,
                          dtype=root.dtype)
        if grad.shape != root.shape:
            raise ShapeError(
                f"backward(grad): grad has shape {grad.shape} but the tensor has "
                f"shape {root.shape}; they must be equal")

    start = root if root._node is None else root._node
    order = toposort(start)
    for vertex in order:
        if isinstance(vertex, Op):
            if vertex.freed:
                raise GraphFreedError(_freed_message(vertex))
            if vertex.versions is not None or vertex.saves_output:
                _check_saved_versions(vertex)

    backward_count += 1
    pending = {start: grad}
    for vertex in order:
        grad = pending.pop(vertex, None)
        if grad is None:
            continue
        if isinstance(grad, Deferred):
            grad = grad.evaluate()
        if not isinstance(vertex, Op):
            _accumulate_into_leaf(vertex, grad)
            continue
        if vertex.hooks:
            grad = _run_hooks(vertex.hooks, grad)
        if vertex.retains_grad:
            tensor = vertex.output()
            if tensor is not None:
                _accumulate(tensor, grad)
        parent_grads = vertex.backward(grad)
        if anomaly.enabled:
            anomaly.check_backward(vertex, parent_grads)
        if not retain_graph:
            vertex.saved = None
            vertex.freed = True
        for parent, parent_grad in zip(vertex.parents, parent_grads):
            if parent_grad is None:
                continue
            if _recorders and not isinstance(parent, Op):
                parent_grad = as_array(parent_grad)
                for contributions in _recorders:
                    contributions.setdefault(parent, []).append((vertex, parent_grad))
            previous = pending.get(parent)
            if previous is None:
                pending[parent] = parent_grad
            elif type(previous) is np.ndarray and type(parent_grad) is np.ndarray:
                pending[parent] = previous + parent_grad
            else:
                pending[parent] = add_grads(previous, parent_grad)


def _accumulate_into_leaf(leaf, grad):
    if leaf._hooks:
        grad = _run_hooks(leaf._hooks, grad)
    if grad.shape != leaf.shape:
        raise ShapeError(
            f"a gradient of shape {grad.shape} reached a leaf of shape {leaf.shape}: the "
            f"backward of an op that uses this leaf returned the wrong shape")
    _accumulate(leaf, grad)


def _accumulate(tensor, grad):
    """tensor.grad += grad, as in PyTorch: gradients add up across backward calls."""
    if tensor.grad is None:
        tensor.grad = np.array(grad, dtype=tensor.dtype)  # a copy the tensor owns
    else:
        tensor.grad = tensor.grad + grad


from .tensor import Tensor  # noqa: E402  (tensor.py imports this module first)
