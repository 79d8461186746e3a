"""BPTT's numbers, step by step: ``trace`` runs a model forward as the literal
unrolled graph, keeps dL/da<t> for every state and records, during backward, each
step's contribution to every parameter's gradient (``Gradients``).
"""
from dataclasses import dataclass

import numpy as np

import tinygraph as tg
from tinygraph import functional as F
from tinygraph.engine import Op
from tinygraph.viz import grad_norm, is_parameter, tensor_of

from .graph import Unrolled, step_key


@dataclass
class Gradients:
    """BPTT's gradients, step by step, as arrays (index t-1 holds step t).

    ``state_norms[series]``: (T,) ‖dL/da<t>‖ (Frobenius norm over the batch) for each
    state sequence, keyed "a<t>" (and "c<t>" for an LSTM; "a→<t>[1]" etc. for layers,
    see ``rnn.names``); 0 where the loss does not depend on the state, nan where the
    step has no such state or its gradient was not kept.
    ``contributions[name]``: (T, *shape), step t's contribution to dL/d(name);
    ``contribution_norms[name]``: (T,) their norms; ``outside[name]``: the part that
    came from ops outside the steps (a layer's batched x W_ax^T, say), zeros if none.
    ``contributions[name].sum(0) + outside[name]`` is ``grads[name]``, the parameter's
    ``.grad`` after the backward pass.
    """

    state_norms: dict
    contributions: dict
    contribution_norms: dict
    outside: dict
    grads: dict


def _is_parameter(vertex):
    return not isinstance(vertex, Op) and is_parameter(vertex)


def _by_step(leaf, node, out, graph, calls, T):
    """Step t's share of what an op on every step at once (``graph.parallel``) sent to
    ``leaf``: the op's VJP applied to row t of its inputs and of the gradient at its
    output, the inputs made of parameters only rebuilt from them (so that dL/dW_ax of
    a layer's projection x W_ax^T + b of all steps is the sum of g<t>^T x<t>)."""
    per_step = np.zeros((T,) + leaf.shape)
    if out.grad is None:
        return per_step

    def rebuilt(vertex, tensor):
        if not isinstance(vertex, Op):
            return tensor
        inputs, options = calls[vertex]
        return type(vertex).apply(*[rebuilt(p, x) for p, x in zip(vertex.parents, inputs)],
                                  **options)

    inputs, options = calls[node]
    for t in range(T):
        rows = [rebuilt(p, x) if graph._fixed(p) else tg.tensor(x.data[t])
                for x, p in zip(inputs, node.parents)]
        (grad,) = tg.grad(type(node).apply(*rows, **options), [leaf],
                          grad_outputs=out.grad[t], allow_unused=True)
        if grad is not None:
            per_step[t] = grad.data
    return per_step


def _split_by(node, graph, split):
    """The ops on every step at once that ``node`` (the consumer of a parameter) leads
    to: itself, or, for an op on parameters only, the split ops it feeds; None when
    some of its uses cannot be split by step."""
    if node in split:
        return [node]
    if node in graph.step or not graph._fixed(node):
        return None
    found = []
    for consumer in graph.consumers[node]:
        more = _split_by(consumer, graph, split)
        if more is None:
            return None
        found += [c for c in more if c not in found]
    return found


def _gradients(graph, recorded, names, split, calls):
    T = max(graph.times, default=0)
    state_norms, lanes = {}, {}
    for (lane, t), states in graph.states.items():
        for state in states:
            series = graph.series(state, lane)
            norms = state_norms.setdefault(series, np.full(T, np.nan))
            lanes[series] = lane
            norm = grad_norm(state)
            if norm is not None:
                norms[t - 1] = norm
    if any(tensor_of(s) is not None for states in graph.states.values() for s in states):
        for series, norms in state_norms.items():  # kept states, so a missing one is a
            for t in graph.times:                  # state the loss does not depend on
                if (lanes[series], t) in graph.members and np.isnan(norms[t - 1]):
                    norms[t - 1] = 0.0
    contributions, outside, grads = {}, {}, {}
    for leaf, pairs in recorded.items():
        if not is_parameter(leaf):
            continue
        name = names[id(leaf)]
        per_step, rest, reached = np.zeros((T,) + leaf.shape), np.zeros(leaf.shape), []
        for node, grad in pairs:
            key, via = step_key(node.scope), _split_by(node, graph, split)
            if via:
                reached += [c for c in via if c not in reached]
            elif key is None:
                rest += grad
            else:
                per_step[key[1] - 1] += grad
        for node in reached:  # each once, though the leaf may reach it by several paths
            per_step += _by_step(leaf, node, split[node], graph, calls, T)
        contributions[name], outside[name] = per_step, rest
        grads[name] = None if leaf.grad is None else np.array(leaf.grad)
    norms = {name: np.sqrt((c.reshape(T, -1) ** 2).sum(axis=1))
             for name, c in contributions.items()}
    return Gradients(state_norms, contributions, norms, outside, grads)


class Trace:
    """A recorded run of a model: its graph (``graph``, an ``Unrolled``), its ``loss``
    and ``outputs``, and, after backward, every gradient contribution that reached a
    parameter (``contributions``, from ``tg.record_contributions``)."""

    def __init__(self, roots, model=None, loss=None, outputs=None, contributions=None):
        self.graph = Unrolled(roots)
        self.split = {}  # an op on every step at once -> its output tensor
        self.calls = {}  # node -> (input tensors, options) of the forward pass
        self.model, self.loss, self.outputs = model, loss, outputs
        self.contributions = contributions
        self.inputs = None  # what trace() ran the model on

    def names(self):
        """{id(parameter): name}: its dotted name in the model, else its own name, else
        "parameter k" (k counting the unnamed ones in the graph's order)."""
        names = {}
        if self.model is not None and hasattr(self.model, "named_parameters"):
            names = {id(p): name for name, p in self.model.named_parameters()}
        unnamed = 0
        for vertex in self.graph.order:
            if not isinstance(vertex, Op) and is_parameter(vertex) and id(vertex) not in names:
                names[id(vertex)] = vertex.name or f"parameter {unnamed}"
                unnamed += vertex.name is None
        return names

    def gradients(self):
        """The step-by-step gradients as arrays (``Gradients``); needs a backward pass."""
        if self.contributions is None:
            raise RuntimeError("gradients() needs a backward pass: use rnn.viz.trace("
                               "model, xs, targets) rather than drawing the forward graph")
        return _gradients(self.graph, self.contributions, self.names(), self.split,
                          self.calls)

    def to_dot(self, **options):
        """``rnn.viz.to_dot(self, **options)``."""
        from .figure import to_dot
        return to_dot(self, **options)

    def draw(self, **options):
        """``rnn.viz.draw(self, **options)``: a figure Jupyter displays."""
        from .figure import draw
        return draw(self, **options)

    def _repr_mimebundle_(self, include=None, exclude=None, **_):
        return self.draw()._repr_mimebundle_(include, exclude)


def _loss(output, targets, loss_fn):
    """The notes' L = sum over t of L<t>: summed cross-entropy for integer targets,
    summed squared error for float ones, ``loss_fn(output)``, or output.sum()."""
    if loss_fn is not None:
        if targets is not None:
            raise ValueError("trace: give targets or loss_fn, not both")
        return loss_fn(output)
    if targets is None:
        return output.sum()
    targets = np.asarray(targets.data if isinstance(targets, tg.Tensor) else targets)
    if targets.dtype.kind in "iu":
        return F.cross_entropy(output, targets, reduction="sum")
    return F.mse_loss(output, tg.tensor(targets.astype(output.dtype)), reduction="sum")


def _as_input(xs):
    if isinstance(xs, tg.Tensor):
        return xs
    xs = np.asarray(xs)
    return tg.tensor(xs if xs.dtype.kind == "f" else xs.astype(np.float64))


def _tensors(output):
    if isinstance(output, tg.Tensor):
        return [output]
    return [t for part in output for t in _tensors(part)]


def trace(model, xs, targets=None, loss_fn=None, a0=None, backward=None):
    """Run ``model(xs, a0)`` forward, keep dL/da<t> for every state, and run backward
    recording each step's gradient contribution to every parameter.

    model: an ``ElmanRNN``, an ``RNN``/``LSTM``/``GRU`` layer, or any module whose
        forward unrolls under "t=<k>" scopes and returns (output, ...).
    xs: the input (T, B, m) (array or tensor). a0: the initial state, passed on.
    targets: integer classes (T, B) for the summed cross-entropy of the output,
        or floats of the output's shape for the summed squared error; or
    loss_fn: ``loss_fn(output) -> scalar tensor``. Neither: L = output.sum().
    backward: a function run on the loss in place of ``loss.backward()`` (the
        explorer passes its own, which writes down the pass as it runs it).
    The parameters' old gradients are cleared first, so that afterwards each
    ``.grad`` is exactly the sum of the recorded contributions. The run keeps what
    it was given in ``run.inputs`` (xs, targets, loss_fn, a0), so that it can be run
    again (``rnn.viz.explore`` does).
    """
    xs = _as_input(xs)
    with tg.unrolled(), tg.engine.observing(_Outputs()) as outputs:
        output = model(xs) if a0 is None else model(xs, a0)  # per-step nodes
    first = output if isinstance(output, tg.Tensor) else output[0]
    loss = _loss(first, targets, loss_fn)
    if loss.size != 1:
        raise tg.ShapeError(f"trace: the loss must be a scalar, got shape {loss.shape}")
    run = Trace([loss], model, loss, output)
    run.inputs = {"xs": xs, "targets": targets, "loss_fn": loss_fn, "a0": a0}
    run.states = []  # the state tensors, kept alive with their gradients
    for states in run.graph.states.values():
        for state in states:
            tensor = outputs.tensors.get(state, tensor_of(state))
            if tensor is not None:
                tensor.retain_grad()
                run.states.append(tensor)
    for node in run.graph.parallel:  # ops on every step at once that use a parameter
        if node in outputs.calls and any(run.graph._fixed(p) for p in node.parents):
            outputs.tensors[node].retain_grad()
            run.split[node] = outputs.tensors[node]
    run.calls = outputs.calls
    outputs.tensors.clear()
    for vertex in run.graph.order:  # every leaf the loss reaches, model or not
        if not isinstance(vertex, Op):
            vertex.grad = None
    with tg.record_contributions() as recorded:
        loss.backward() if backward is None else backward(loss)
    run.contributions = recorded
    return run


class _Outputs:
    """An engine observer that keeps every op's output tensor (and what it was applied
    to) of a forward pass, so that ``trace`` can keep the gradient of each state,
    whatever module made it, and split an op on every step at once into its steps."""

    def __init__(self):
        self.tensors, self.calls = {}, {}

    def forward(self, op, inputs, options, out):
        if out.op is not None:
            self.tensors[out.op], self.calls[out.op] = out, (inputs, options)

    def backward(self, node, grads):
        pass


def gradient_norms(model, xs, targets=None, loss_fn=None, a0=None):
    """``trace(model, xs, targets, loss_fn, a0).gradients()``: per-step ‖dL/da<t>‖ and
    each parameter's per-step contributions and their norms, as arrays."""
    return trace(model, xs, targets, loss_fn, a0).gradients()
