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
import itertools
from contextlib import ContextDecorator, contextmanager

import numpy as np

from . import anomaly
from .deferred import Deferred, add_grads, as_array

_grad_enabled = True
_scope = ()
tracing = None  # a list while ``scan`` traces a step: Op.apply appends every op it runs
traced_reads = None  # and the tensors whose values Python reads meanwhile
backward_count = 0  # backward passes run so far (optim uses it to spot a late clip)
retaining_graph = False  # during a backward: was it asked to keep the saved arrays?


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


class scope(ContextDecorator):
    """Tag every node created inside the block with ``label``.

    Scopes nest: a node's ``scope`` is the tuple of labels from the outermost block
    in. The engine gives labels no meaning; drawings use them to group nodes (the
    RNN unrolling marks each time step this way). Works as a decorator too. (A class
    rather than a generator: an unroll enters one per time step, and this is half
    the cost.)
    """

    def __init__(self, label):
        self.label = label
        self.outer = []  # the scopes to restore, innermost last (the block may nest in itself)

    def __enter__(self):
        global _scope
        self.outer.append(_scope)
        _scope = _scope + (self.label,)

    def __exit__(self, *exception):
        global _scope
        _scope = self.outer.pop()


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
                 "scope", "versions", "freed", "number", "__dict__")
    saves_inputs = False
    saves_output = False
    hints = ()  # params that change how forward computes, not what (scan lets them vary)
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
        op.number = next(_numbers)  # before forward: an assignment during it comes later
        # One plain loop: in CPython 3.11 each comprehension is a function call of its own.
        arrays, needs_grad, parents, versions = [], [], [], []
        for t in inputs:
            arrays.append(t._data)
            needs_grad.append(t._requires_grad)
            parents.append(t._node or t)
            versions.append(t._version)
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
        if tracing is not None:
            tracing.append((cls, inputs, params, out, _grad_enabled))
        if not _grad_enabled or True not in needs_grad:
            return out
        data.setflags(write=False)
        needs_grad, shape = tuple(needs_grad), data.shape
        if len(_shapes) > 10_000:  # shapes keep changing: let the old ones go
            _shapes.clear()
        op.parents = tuple(parents)
        op.needs_grad = _flags.setdefault(needs_grad, needs_grad)
        op.versions = tuple(versions) if cls.saves_inputs else None
        op.out_shape = _shapes.setdefault(shape, shape)
        op.out_dtype = data.dtype
        op.out_name = None  # the output tensor's name, once it gets one (for drawings)
        op.scope = _scope
        op.freed = False
        out._requires_grad = True
        out._node = op
        return out

    def __repr__(self):
        return f"<{self.name} node>"


# One shared copy of equal small tuples: a long unroll records thousands of nodes with
# the same shapes and needs_grad flags. (Two dicts: (True, True) == (1, 1).)
_shapes, _flags = {}, {}
_numbers = itertools.count()  # numbers the nodes in the order they are recorded
_last_assignment = -1  # the number drawn when a tensor's .data was last assigned


def data_assigned():
    """Called when a tensor's ``.data`` is replaced. Nodes recorded before this moment
    may have saved the old array, so backward checks their saved versions; nodes
    recorded after it need no check (the common case: a training step assigns the
    weights, then runs the forward and backward of the next one)."""
    global _last_assignment
    _last_assignment = next(_numbers)


def toposort(root):
    """Every vertex whose gradient ``root`` depends on, root first, parents after children.

    A vertex is an ``Op`` node or a leaf tensor that requires grad: the ops come
    first, then the leaves (a leaf has no parents, so it can wait until all of its
    consumers have run).
    """
    nodes, leaves = _reachable(root)
    return nodes + leaves


def _reachable(root):
    """(op nodes, leaves that require grad) that ``root`` depends on, in ``toposort``'s
    order.

    Iterative depth-first search (no recursion limit, so a 100,000-op chain is fine)
    that lists a node once all of its parents are listed; parents are explored in
    input order, so the order is the same on every run. Depth first also keeps
    memory low: backward then consumes each gradient soon after producing it (in an
    unrolled RNN, output step t right before recurrence step t, rather than all
    output steps first).
    """
    if not isinstance(root, Op):
        return [], [root]
    nodes, leaves, seen = [], [], {root}
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


def _freed_message(node):
    if getattr(node, "traced", False):
        return (f"backward through '{node.name}', an op of a step that tg.scan traced: a "
                f"tensor from inside the step was kept outside it (collected in a list, "
                f"say), but only the carry leaves a scan; return what you need as part "
                f"of the carry (scan stacks every step's), or run the loop under "
                f"tg.unrolled()")
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
    global backward_count, retaining_graph
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
    nodes, leaves = _reachable(start)
    for node in nodes:  # check the whole graph before any backward runs
        if node.freed:
            raise GraphFreedError(_freed_message(node))
        if node.number < _last_assignment:  # some tensor's .data was assigned since
            _check_saved_versions(node)

    backward_count += 1
    outer_retaining, retaining_graph = retaining_graph, retain_graph  # (a hook may nest one)
    pending = {start: grad}
    for node in nodes:
        grad = pending.pop(node, None)
        if grad is None:
            continue
        if isinstance(grad, Deferred):
            grad = grad.evaluate()
        if node.hooks:
            grad = _run_hooks(node.hooks, grad)
        if node.retains_grad:
            tensor = node.output()
            if tensor is not None:
                _accumulate(tensor, grad)
        parent_grads = node.backward(grad)
        if anomaly.enabled:
            anomaly.check_backward(node, parent_grads)
        if not retain_graph:
            node.saved = None
            node.freed = True
        for parent, parent_grad in zip(node.parents, parent_grads):
            if parent_grad is None:
                continue
            if _recorders and not isinstance(parent, Op):
                parent_grad = as_array(parent_grad)
                for contributions in _recorders:
                    contributions.setdefault(parent, []).append((node, parent_grad))
            previous = pending.get(parent)
            if previous is None:
                pending[parent] = parent_grad
            elif type(previous) is np.ndarray and type(parent_grad) is np.ndarray:
                pending[parent] = previous + parent_grad
            else:
                pending[parent] = add_grads(previous, parent_grad)
    retaining_graph = outer_retaining
    # Every consumer of a leaf came before it. Hooks and checks run for all leaves
    # first, so that an error there leaves every .grad as it was.
    arrived = [(leaf, _leaf_grad(leaf, as_array(pending[leaf])))
               for leaf in leaves if leaf in pending]
    for leaf, grad in arrived:
        _accumulate(leaf, grad)


def _leaf_grad(leaf, grad):
    """The gradient that reached ``leaf``, after its hooks, checked against its shape."""
    if leaf._hooks:
        grad = _run_hooks(leaf._hooks, grad)
    if grad.shape != leaf.shape:
        raise ShapeError(
            f"a gradient of shape {grad.shape} reached a leaf of shape {leaf.shape}: the "
            f"backward of an op that uses this leaf returned the wrong shape")
    return grad


def _accumulate(tensor, grad):
    """tensor.grad += grad, as in PyTorch: gradients add up across backward calls."""
    if tensor.grad is None:
        tensor.grad = np.array(grad, dtype=tensor.dtype)  # a copy the tensor owns
    else:
        tensor.grad = tensor.grad + grad


from .tensor import Tensor  # noqa: E402  (tensor.py imports this module first)
