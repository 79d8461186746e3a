"""Draw an unrolled recurrent network, and show where BPTT's gradients come from.

    import numpy as np, rnn
    model = rnn.ElmanRNN(input_size=3, hidden_size=4, output_size=2)
    xs = np.random.randn(6, 1, 3)                        # (T, B, m)
    targets = np.random.randint(0, 2, size=(6, 1))       # (T, B) class indices
    run = rnn.viz.trace(model, xs, targets)   # forward, retain_grad on every a<t>, backward
    run.draw()                                # in Jupyter: the figure (SVG)
    rnn.viz.render(run.to_dot(detail="ops"), "elman.svg")
    g = run.gradients()                       # the same numbers as arrays
    g.state_norms["a<t>"]                     # (T,)  ‖dL/da<t>‖, t = 1..T
    g.contributions["W_aa"]                   # (T, n, n), summing to W_aa.grad
    rnn.viz.draw(model, xs)                   # just the forward graph, no gradients

What the figure shows (everything is read off the graph the engine recorded, using
only the ``tg.scope("t=k")`` labels that ``rnn.unroll`` puts on each step):

* **Time runs left to right**, one cluster per step t = 1..T (inside it one box per
  layer and direction, for stacked and bidirectional layers). The hidden-state
  chain a<0> -> a<1> -> ... -> a<T> is heavy and straight; a reverse direction's
  chain runs right to left.
* ``detail="cell"`` draws one node per cell application (and one for the rest of
  the step, such as the output layer o<t> = W_ya a<t> + b_y); ``detail="ops"``
  draws every primitive op.
* **Shared weights are drawn once**, outside the steps, each in its own colour,
  with an edge to every step that uses it and a "used at t = 1..T" mark.
  ``shared="proxy"`` draws instead a small dashed copy of the weight inside each
  step that uses it (dot needs tens of seconds to lay out one node with a hundred
  long edges); ``"auto"`` switches to proxies above 20 drawn steps. Ops that run
  outside the steps (the loss, a layer's batched input projection) are treated
  the same way.
* **Long sequences are elided**: above 20 steps only the first and last ``keep``
  steps are drawn, with a "t = 6 ... 195" cluster between them.
* **After backward** (a ``trace``): each shared weight's node lists
  dL/dW = sum over t of dL/dW^(t), one row per step with the norm of that step's
  contribution and its share of the summed norms (in ``once`` mode each step's
  edge leaves from its own row), and each step carries ‖dL/da<t>‖, all on one log
  colour scale (``tinygraph.viz.LogScale``), so vanishing and exploding gradients
  show. The chain edges are coloured by the gradient that flows back along them.
* **Truncated BPTT**: where the hidden state was detached (a state carried over
  from the previous chunk, or ``detach()`` inside the unroll), the chain edge is
  dashed and grey.

Node ids and clusters come from the graph's order, never from ``id()``: the same
program gives the same DOT, byte for byte. Building the DOT never recurses.
"""
import re
from dataclasses import dataclass

import numpy as np

import tinygraph as tg
from tinygraph import functional as F
from tinygraph.engine import Op
from . import names
from tinygraph.viz import (STYLES, Figure, LogScale, describe, edge_attributes, escape,
                           grad_norm, grad_row, is_parameter, kind_of, render,
                           require_graphviz, small, table_label, tensor_of, vertex_label,
                           vertex_of, walk)

__all__ = ["trace", "Trace", "Gradients", "gradient_norms", "to_dot", "draw", "render",
           "Unrolled", "step_key"]

MAX_STEPS = 20      # drawn steps above which shared="auto" uses proxies, elide="auto" elides
KEEP = 5            # steps kept at each end of an elided sequence
# ColorBrewer's Dark2: one colour per shared weight, as hex so that HTML labels take it too
PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
           "#a6761d", "#666666")
CHAIN_COLOR = "#e6550d"
CUT_COLOR = "#999999"
OUTSIDE = "out"     # the port of the row for contributions from outside the steps

_TIME_LABEL = re.compile(r"t=(\d+)$")


def step_key(scope):
    """``(lane, t)`` for a node's scope tuple: t from its innermost "t=<k>" label and
    the lane the labels outside it (``()``, or e.g. ``("layer=0", "direction=reverse")``);
    None outside every time step."""
    for i in range(len(scope) - 1, -1, -1):
        match = _TIME_LABEL.match(str(scope[i]))
        if match:
            return tuple(scope[:i]), int(match.group(1))
    return None


def _name(vertex):
    tensor = tensor_of(vertex)
    return vertex.out_name if tensor is None else tensor.name


def _state_number(vertex):
    parsed = names.parse(_name(vertex))
    return None if parsed is None else parsed[1]


def _lane_text(lane):
    return " · ".join(str(label) for label in lane)


# ---- the recorded graph, read as an unrolled recurrence -----------------------------
class Unrolled:
    """The graph behind ``roots`` (tensors), split into time steps.

    ``step[v]``: ``(lane, t)`` for every op recorded under a "t=<k>" scope, and for a
    leaf (other than a parameter) used in one step only, such as x<t>.
    ``members[(lane, t)]``: the step's vertices in walk order (parents first).
    ``chain``: the (parent, consumer) op pairs that pass a state to the next step.
    ``states[(lane, t)]``: what the step hands on (a<t>, and c<t> for an LSTM): the
    sources of chain edges and the ops named like unroll's states; ``finals`` the
    ones no other state of the step is computed from; ``cell_part`` every vertex a
    state is computed from within its step (the rest, ``head``, is e.g. o<t>).
    ``starts[leaf] = (lane, kind, t0)``: the leaf a chain begins with, "initial"
    (zeros, or learned) or "carried" (a state kept from an earlier chunk, detached),
    drawn before the first step at the virtual time t0.
    ``cuts[leaf] = state``: a leaf that stands in a step's a<t-1> slot although it
    is not the previous step's state: that state detached (``state`` is the vertex
    it was detached from, when recognisable by its array or its name, else None).
    """

    def __init__(self, roots):
        self.roots = tuple(roots)
        self.root_vertices = {vertex_of(root) for root in self.roots}
        self.order, self.uses = walk(self.roots)
        self.consumers = {vertex: [] for vertex in self.order}
        self.step = {}
        for vertex in self.order:
            if isinstance(vertex, Op):
                for parent in vertex.parents:
                    self.consumers[parent].append(vertex)
                key = step_key(vertex.scope)
                if key is not None:
                    self.step[vertex] = key
        for vertex in self.order:
            if not isinstance(vertex, Op) and not is_parameter(vertex):
                keys = {self.step.get(consumer) for consumer in self.consumers[vertex]}
                if len(keys) == 1 and None not in keys:
                    self.step[vertex] = keys.pop()
        self._group_steps()
        slots = self._find_chain()
        self._find_starts(slots)
        self._group_steps()
        self._find_states()

    def _group_steps(self):
        self.members = {}
        for vertex in self.order:
            if vertex in self.step:
                self.members.setdefault(self.step[vertex], []).append(vertex)
        self.lanes = list(dict.fromkeys(lane for lane, _ in self.members))
        self.times = sorted({t for _, t in self.members})

    def ops(self, key):
        """The step's op vertices, in walk order."""
        return [v for v in self.members.get(key, ()) if isinstance(v, Op)]

    def _find_chain(self):
        """Chain edges, each lane's direction (+1, or -1 for a reverse direction),
        and the slots (op position in the step, parent index) where a state enters."""
        self.chain, self.direction, slots = set(), {}, {}
        for (lane, t) in self.members:
            for k, consumer in enumerate(self.ops((lane, t))):
                for i, parent in enumerate(consumer.parents):
                    key = self.step.get(parent)
                    if (isinstance(parent, Op) and key is not None and key[0] == lane
                            and abs(key[1] - t) == 1):
                        self.chain.add((parent, consumer))
                        self.direction.setdefault(lane, t - key[1])
                        slots.setdefault(lane, set()).add((k, i))
        return slots

    def _find_starts(self, slots):
        """Leaves in a state slot that no previous step produced: chain starts and cuts."""
        self.starts, self.cuts = {}, {}
        for (lane, t) in list(self.members):
            direction = self.direction.get(lane)
            if direction is None:
                continue
            times = [s for (other, s) in self.members if other == lane]
            first = t == (min(times) if direction > 0 else max(times))
            ops = self.ops((lane, t))
            for k, i in sorted(slots[lane]):
                if k >= len(ops) or i >= len(ops[k].parents):
                    continue
                leaf = ops[k].parents[i]
                if isinstance(leaf, Op) or is_parameter(leaf):
                    continue
                if first:
                    kind = "carried" if np.any(leaf.data) else "initial"
                    self.starts[leaf] = (lane, kind, t - direction)
                    self.step.pop(leaf, None)
                else:
                    self.cuts[leaf] = (lane, t - direction)

    def _find_states(self):
        chain_sources = {parent for parent, _ in self.chain}
        self.states, self.finals, self.cell_part = {}, {}, set()
        for key, members in self.members.items():
            states = [v for v in members if isinstance(v, Op)
                      and (v in chain_sources or _state_number(v) == key[1])]
            state_set, feeds = set(states), set()
            for vertex in reversed(members):  # consumers before their parents
                if any(self.step.get(c) == key and (c in state_set or c in feeds)
                       for c in self.consumers[vertex]):
                    feeds.add(vertex)
            self.states[key] = states
            self.finals[key] = [s for s in states if s not in feeds]
            self.cell_part |= state_set | feeds
        for leaf, previous in self.cuts.items():
            self.cuts[leaf] = self._detached_from(leaf, self.states.get(previous, []))

    @staticmethod
    def _detached_from(leaf, states):
        for state in states:
            tensor = tensor_of(state)
            if ((tensor is not None and tensor.data is leaf.data)
                    or (leaf.name is not None and _name(state) == leaf.name)):
                return state
        return None

    def head(self, key):
        """The step's ops no state is computed from (e.g. o<t> = W_ya a<t> + b_y)."""
        return [v for v in self.ops(key) if v not in self.cell_part]

    def series(self, state, lane):
        """The name of a state's sequence: "a<t>" for a<3>, "a→<t>[2]" for a→<3>[2]."""
        parsed = names.parse(_name(state))
        return parsed[0] if parsed else f"{_lane_text(lane) or 'state'}<t>"


# ---- the numbers -------------------------------------------------------------------------
@dataclass
class Gradients:
    """BPTT's gradients, step by step, as arrays (index t-1 holds step t).

    ``state_norms[series]``: (T,) ‖dL/da<t>‖ (Frobenius norm over the batch) for each
    state sequence, keyed "a<t>" (and "c<t>" for an LSTM; "a→<t>[1]" etc. for layers);
    nan where the step has no such state or its gradient was not kept.
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


def _gradients(graph, recorded, names):
    T = max(graph.times, default=0)
    state_norms = {}
    for (lane, t), states in graph.states.items():
        for state in states:
            norms = state_norms.setdefault(graph.series(state, lane), np.full(T, np.nan))
            norm = grad_norm(state)
            if norm is not None:
                norms[t - 1] = norm
    contributions, outside, grads = {}, {}, {}
    for leaf, pairs in recorded.items():
        if not is_parameter(leaf):
            continue
        name = names[id(leaf)]
        per_step, rest = np.zeros((T,) + leaf.shape), np.zeros(leaf.shape)
        for node, grad in pairs:
            key = step_key(node.scope)
            if key is None:
                rest += grad
            else:
                per_step[key[1] - 1] += grad
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
        self.model, self.loss, self.outputs = model, loss, outputs
        self.contributions = contributions

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
        return _gradients(self.graph, self.contributions, self.names())

    def to_dot(self, **options):
        """``rnn.viz.to_dot(self, **options)``."""
        return to_dot(self, **options)

    def draw(self, **options):
        """``rnn.viz.draw(self, **options)``: a figure Jupyter displays."""
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


def trace(model, xs, targets=None, loss_fn=None, a0=None):
    """Run ``model(xs, a0)`` forward, keep dL/da<t> for every state, and run backward
    recording each step's gradient contribution to every parameter.

    model: an ``ElmanRNN``, an ``RNN``/``LSTM``/``GRU`` layer, or any module whose
        forward unrolls under "t=<k>" scopes and returns (output, ...).
    xs: the input (T, B, m) (array or tensor). a0: the initial state, passed on.
    targets: integer classes (T, B) for the summed cross-entropy of the output,
        or floats of the output's shape for the summed squared error; or
    loss_fn: ``loss_fn(output) -> scalar tensor``. Neither: L = output.sum().
    The parameters' old gradients are cleared first, so that afterwards each
    ``.grad`` is exactly the sum of the recorded contributions.
    """
    xs = _as_input(xs)
    with tg.unrolled(), tg.engine.observing(_Outputs()) as outputs:
        output = model(xs) if a0 is None else model(xs, a0)  # per-step nodes
    first = output if isinstance(output, tg.Tensor) else output[0]
    loss = _loss(first, targets, loss_fn)
    if loss.size != 1:
        raise tg.ShapeError(f"trace: the loss must be a scalar, got shape {loss.shape}")
    run = Trace([loss], model, loss, output)
    run.states = []  # the state tensors, kept alive with their gradients
    for states in run.graph.states.values():
        for state in states:
            tensor = outputs.tensors.get(state, tensor_of(state))
            if tensor is not None:
                tensor.retain_grad()
                run.states.append(tensor)
    outputs.tensors.clear()
    for vertex in run.graph.order:  # every leaf the loss reaches, model or not
        if not isinstance(vertex, Op):
            vertex.grad = None
    with tg.record_contributions() as recorded:
        loss.backward()
    run.contributions = recorded
    return run


class _Outputs:
    """An engine observer that keeps every op's output tensor of a forward pass, so
    that ``trace`` can keep the gradient of each state, whatever module made it."""

    def __init__(self):
        self.tensors = {}

    def forward(self, op, inputs, options, out):
        if out.op is not None:
            self.tensors[out.op] = out

    def backward(self, node, grads):
        pass


def gradient_norms(model, xs, targets=None, loss_fn=None, a0=None):
    """``trace(model, xs, targets, loss_fn, a0).gradients()``: per-step ‖dL/da<t>‖ and
    each parameter's per-step contributions and their norms, as arrays."""
    return trace(model, xs, targets, loss_fn, a0).gradients()


# ---- the figure ------------------------------------------------------------------------
def _as_trace(source, xs, a0):
    if isinstance(source, Trace):
        return source
    if isinstance(source, tg.Tensor):
        return Trace([source])
    if isinstance(source, (tuple, list)) and source and all(
            isinstance(t, tg.Tensor) for t in source):
        return Trace(source)
    if xs is None:
        raise TypeError(f"rnn.viz draws a trace, a tensor, or a model with its input "
                        f"xs; got {type(source).__name__} and no xs")
    with tg.unrolled():
        output = source(_as_input(xs)) if a0 is None else source(_as_input(xs), a0)
    return Trace(_tensors(output), model=source, outputs=output)


def _visible_times(times, elide, keep):
    """The drawn steps and the elided ones (a contiguous middle run)."""
    if elide == "auto":
        elide = len(times) > MAX_STEPS
    if not elide or len(times) <= 2 * keep + 1:
        return times, []
    return times[:keep] + times[-keep:], times[keep:-keep]


def _ranges(times):
    """[1, 2, 3, 5] -> "1..3, 5"."""
    parts, start = [], None
    for i, t in enumerate(times):
        if start is None:
            start = t
        if i + 1 == len(times) or times[i + 1] != t + 1:
            parts.append(str(t) if t == start else f"{start}..{t}")
            start = None
    return ", ".join(parts)


def _cell_name(model):
    if model is None:
        return "cell"
    if hasattr(model, "cell_class"):
        return model.cell_class.__name__
    from .cells import GRUCell, LSTMCell, RNNCell
    for cls in (LSTMCell, GRUCell, RNNCell):
        if isinstance(model, cls):
            return cls.__name__
    return type(model).__name__


class _Figure:
    """Builds one figure: first the drawn nodes (with their cluster and rank
    column), then the edges, then emits both as DOT. One instance per ``to_dot``."""

    def __init__(self, run, detail, shared, elide, keep, grads):
        if detail not in ("cell", "ops"):
            raise ValueError(f"detail must be 'cell' or 'ops', not {detail!r}")
        if shared not in ("auto", "once", "proxy"):
            raise ValueError(f"shared must be 'auto', 'once' or 'proxy', not {shared!r}")
        if elide not in ("auto", True, False):
            raise ValueError(f"elide must be 'auto', True or False, not {elide!r}")
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self.run, self.graph, self.detail = run, run.graph, detail
        g = self.graph
        self.visible, self.elided = _visible_times(g.times, elide, keep)
        if shared == "auto":
            shared = "proxy" if len(self.visible) > MAX_STEPS else "once"
        self.shared = shared
        if grads is None:
            grads = run.contributions is not None
        self.gradients = run.gradients() if grads and run.contributions is not None else None
        self.grads = grads
        self.names = run.names()
        self.nodes = {}         # id -> dict(label=..., place=cluster key, extra attributes)
        self.node_of = {}       # vertex -> drawn id
        self.columns = {}       # (t, "in" | "out") -> [ids] pinned to one rank
        self.pins = []          # (time cluster or None, [ids]) pinned to one rank
        self.ports = set()      # "node:port" rows of the parameters' sums
        self.edges, self.edge_keys = [], set()
        self.time_of = {}       # drawn id -> time (for the direction of chain edges)
        self.colors = {}        # parameter vertex -> colour
        self._hide()
        self._scale()

    # -- what is drawn -------------------------------------------------------------------
    def _hide(self):
        """Vertices of elided steps, and what only they feed or only feeds them."""
        g, elided = self.graph, set(self.elided)
        hidden = {v for v, (_, t) in g.step.items() if t in elided}
        for vertex in g.order:
            if isinstance(vertex, Op) and vertex not in g.step:
                parents = vertex.parents
                if (any(p in hidden for p in parents)
                        and not any(isinstance(p, Op) and p not in hidden for p in parents)):
                    hidden.add(vertex)
        for vertex in g.order:
            if (not isinstance(vertex, Op) and vertex not in g.step and not is_parameter(vertex)
                    and g.consumers[vertex]
                    and all(c in hidden for c in g.consumers[vertex])):
                hidden.add(vertex)
        self.hidden = hidden

    def _scale(self):
        if not self.grads:
            self.scale = None
            return
        values = [grad_norm(v) for v in self.graph.order if v not in self.hidden]
        if self.gradients is not None:
            for norms in self.gradients.contribution_norms.values():
                values.extend(norms[t - 1] for t in self.visible)
        self.scale = LogScale(values)

    def _node(self, node_id, label, place=None, time=None, **attributes):
        self.nodes[node_id] = dict(label=label, place=place, **attributes)
        if time is not None:
            self.time_of[node_id] = time
        return node_id

    def _vertex_node(self, vertex, place, title=None):
        g = self.graph
        norm = grad_norm(vertex) if self.grads else None
        # an op keeps its gradient only if retained (the states): say nothing on the rest
        scale = self.scale if norm is not None or not isinstance(vertex, Op) else None
        label = vertex_label(vertex, kind_of(vertex, g.root_vertices), g.uses[vertex],
                             scale, norm, title=title)
        node_id = self._node(f"v{self.index[vertex]}", label, place,
                             g.step.get(vertex, (None, None))[1])
        self.node_of[vertex] = node_id
        return node_id

    def build(self):
        g = self.graph
        if not g.times:
            scanned = any(isinstance(v, Op) and v.name == "scan" for v in g.order)
            raise ValueError(
                "rnn.viz found no time steps in this graph: it draws graphs recorded by "
                "rnn.unroll, whose steps carry the scopes 't=1', 't=2', ..." + (
                    "; this one holds the recurrence as one tg.scan node: run the layer "
                    "under tg.unrolled() to record its time steps" if scanned else
                    "; draw other graphs with tinygraph.viz.to_dot"))
        self.index = {vertex: i for i, vertex in enumerate(g.order)}
        self.lane_index = {lane: i for i, lane in enumerate(g.lanes)}
        self._parameters()
        self._starts()
        for t in self.visible:
            for lane in g.lanes:
                if (lane, t) in g.members:
                    self._step((lane, t))
        if self.elided:
            self._ellipses()
        self._externals()
        self._edges()
        self._anchors()
        return self._emit()

    def _parameters(self):
        g = self.graph
        parameters = [v for v in g.order if not isinstance(v, Op) and is_parameter(v)]
        contributions = self.gradients.contributions if self.gradients else {}
        for k, leaf in enumerate(parameters):
            color = self.colors[leaf] = PALETTE[k % len(PALETTE)]
            name = self.names[id(leaf)]
            times = sorted({g.step[c][1] for c in g.consumers[leaf] if c in g.step})
            outside = sum(1 for c in g.consumers[leaf] if c not in g.step)
            title, shape = describe(leaf)
            rows = [(title, STYLES["parameter"]["fill"]), (small(shape), None)]
            uses = ([f"used at t = {_ranges(times)}"] if times else []) + (
                [f"used ×{outside} outside the steps"] if outside else [])
            rows.extend((small(escape(text)), None) for text in uses)
            place = ("params",) if self.shared == "proxy" else None
            node_id = self._vertex_node(leaf, place)
            if name in contributions:
                rows.extend(self._sum_rows(node_id, leaf, name, times))
            self.nodes[node_id]["label"] = table_label(rows, color, 2)

    def _sum_rows(self, node_id, leaf, name, times):
        """dL/dW = Σ_t dL/dW^(t): one row (with a port) per drawn step, one for the
        elided steps together, one for uses outside the steps, and the total."""
        per_step = self.gradients.contributions[name]
        outside = self.gradients.outside[name]
        norms = self.gradients.contribution_norms[name]
        total = norms.sum() + np.linalg.norm(outside)
        share = (lambda n: n / total) if total > 0 else (lambda n: 0.0)
        symbol = escape(leaf.name or name)
        rows = [(f"dL/d{symbol} = &#8721;<SUB>t</SUB> dL/d{symbol}<SUP>(t)</SUP>", None)]

        def row(text, norm, port):
            font = self.scale.font_color(norm)
            markup = f'<FONT COLOR="{font}">{escape(text)}</FONT>'
            rows.append((markup, self.scale.color(norm)) + ((port,) if port else ()))

        used, elided = set(times), [t for t in self.elided if t in times]
        for t in self.visible:
            if t in used:
                row(f"t={t}: {norms[t - 1]:.2e} ({share(norms[t - 1]):.1%})", norms[t - 1],
                    f"t{t}")
            if elided and t == self.elided[0] - 1:
                # the norm of the elided steps' summed contribution
                summed = np.linalg.norm(per_step[[s - 1 for s in elided]].sum(axis=0))
                row(f"t={_ranges(elided)}: {summed:.2e} "
                    f"({share(norms[[s - 1 for s in elided]].sum()):.1%})", summed, None)
        if np.any(outside):
            norm = float(np.linalg.norm(outside))
            row(f"outside the steps: {norm:.2e} ({share(norm):.1%})", norm, OUTSIDE)
        self.ports.update(f"{node_id}:{port}" for _, _, *port in rows for port in port)
        grad = self.gradients.grads[name]
        if grad is not None:
            rows.append((small(escape(f"= {name}.grad, ‖·‖ = {np.linalg.norm(grad):.3e}")),
                         None))
        return rows

    def _starts(self):
        for leaf, (lane, kind, t0) in self.graph.starts.items():
            if leaf in self.hidden:
                continue
            title = None
            if kind == "carried":
                title = describe(leaf)[0] + " " + small(escape("carried over, detached"),
                                                        CUT_COLOR)
            self._vertex_node(leaf, None, title)
            self.time_of[self.node_of[leaf]] = t0

    def _step(self, key):
        g = self.graph
        lane, t = key
        place = ("step", t, self.lane_index[lane])
        inputs, outputs = self.columns.setdefault((t, "in"), []), \
            self.columns.setdefault((t, "out"), [])
        leaves = [v for v in g.members[key] if not isinstance(v, Op)]
        for leaf in leaves:
            title = None
            if leaf in g.cuts:
                title = describe(leaf)[0] + " " + small(escape("detached"), CUT_COLOR)
            elif leaf.name is None and leaf.ndim > 0:  # not a 0-d constant, such as GRU's 1 - z
                title = f"<B>{escape(f'x<{t}>')}</B>"
            inputs.append(self._vertex_node(leaf, place, title))
        cell = [v for v in g.ops(key) if v in g.cell_part]
        head = g.head(key)
        if self.detail == "ops":
            depth = {}
            for vertex in cell:
                inner = [depth[p] for p in vertex.parents if p in depth]
                depth[vertex] = 1 + max(inner) if inner else 0
                node_id = self._vertex_node(vertex, place)
                if depth[vertex] == 0 and vertex not in g.finals[key]:
                    inputs.append(node_id)
            outputs.extend(self.node_of[v] for v in g.finals[key])
            outputs.extend(self._vertex_node(v, place) for v in head)
        else:
            prefix = f"s{self.lane_index[lane]}_{t}"
            if cell:
                outputs.append(self._block(f"{prefix}_cell", cell, g.finals[key], place, t,
                                           cell=True))
            if head:
                named = [v for v in head if _name(v)] or head[-1:]
                outputs.append(self._block(f"{prefix}_head", head, named, place, t))
        if self.gradients is not None:
            for j, state in enumerate(g.states[key]):
                strip = self._strip(f"{self.node_of[state]}_g{j}", state, lane, place, t)
                outputs.append(strip)
                self._add_edge(self.node_of[state], strip, style="invis")

    def _block(self, node_id, vertices, shown, place, t, cell=False):
        """One node standing for several ops of a step (detail="cell")."""
        ops = list(dict.fromkeys(v.name for v in vertices))
        names = ", ".join(_name(v) or v.name for v in shown)
        what = _cell_name(self.run.model) if cell else " → ".join(ops[-2:])
        title = f"<B>{escape(names)}</B> = {escape(what)}"
        rows = [(title, STYLES["op"]["fill"]), (small(describe(shown[-1])[1]), None),
                (small(escape(f"{len(vertices)} ops: {', '.join(ops)}")), None)]
        if self.grads and cell:
            rows.append(grad_row(shown[-1], grad_norm(shown[-1]), self.scale))
        self._node(node_id, table_label(rows, STYLES["op"]["border"]), place, t)
        for vertex in vertices:
            self.node_of[vertex] = node_id
        return node_id

    def _strip(self, node_id, state, lane, place, t):
        """One cell of the ‖dL/da<t>‖ strip, under the step's state."""
        norm = grad_norm(state)
        text = escape(f"‖dL/d{_name(state) or self.graph.series(state, lane)}‖")
        if norm is None:
            value, fill = small(escape("not kept"), "#666666"), None
        else:
            value = f'<FONT COLOR="{self.scale.font_color(norm)}">{norm:.2e}</FONT>'
            fill = self.scale.color(norm)
        return self._node(node_id, table_label([(small(text), None), (value, fill)]),
                          place, t)

    def _ellipses(self):
        """One "⋯" node per lane standing for the elided steps."""
        g = self.graph
        first, last = self.elided[0], self.elided[-1]
        self.ellipsis = {}
        for lane in g.lanes:
            rows = [(f"<B>&#8943; t = {first} &#8230; {last} &#8943;</B>", "#f3f3f3"),
                    (small(escape(f"{len(self.elided)} steps not drawn")), None)]
            if self.gradients is not None:
                norms = [grad_norm(s) for t in self.elided
                         for s in g.states.get((lane, t), ())]
                norms = [n for n in norms if n is not None]
                if norms:
                    rows.append((small(escape(f"‖dL/da‖ from {min(norms):.2e} to "
                                              f"{max(norms):.2e}")), None))
            self.ellipsis[lane] = self._node(f"e{self.lane_index[lane]}",
                                             table_label(rows, CUT_COLOR, dashed=True),
                                             ("elided",), first + 0.5)

    def _externals(self):
        """Ops outside the steps and the leaves they use: one node each (detail="ops"),
        or one per connected run of such ops in one scope (detail="cell")."""
        g = self.graph
        outside = [v for v in g.order if v not in g.step and v not in self.node_of
                   and v not in self.hidden and v not in g.starts]
        if self.detail == "ops":
            for vertex in outside:
                self._vertex_node(vertex, None)
            return
        runs, run_of = [], {}   # connected runs of ops in one scope
        for vertex in outside:
            if not isinstance(vertex, Op):
                self._vertex_node(vertex, None)
                continue
            joined = []
            for parent in vertex.parents:
                run = run_of.get(parent)
                if (run is not None and parent.scope == vertex.scope
                        and not any(run is other for other in joined)):
                    joined.append(run)
            merged = [member for run in joined for member in run] + [vertex]
            runs = [run for run in runs if not any(run is other for other in joined)]
            runs.append(merged)
            for member in merged:
                run_of[member] = merged
        for members in runs:
            members.sort(key=self.index.get)
            if len(members) == 1:
                self._vertex_node(members[0], None)
                continue
            sink = members[-1]
            ops = list(dict.fromkeys(v.name for v in members))
            title, shape = describe(sink)
            kind = "output" if sink in g.root_vertices else "op"
            rows = [(title, STYLES[kind]["fill"]), (small(shape), None),
                    (small(escape(f"{len(members)} ops: {', '.join(ops)}")), None)]
            node_id = self._node(f"v{self.index[sink]}", table_label(
                rows, STYLES[kind]["border"], 2 if kind == "output" else 1))
            for member in members:
                self.node_of[member] = node_id

    # -- edges ---------------------------------------------------------------------------
    def _add_edge(self, tail, head, port=None, **attributes):
        """One edge per (tail, head); a chain edge that runs against time is drawn
        reversed with dir=back, so that it still ranks its tail before its head."""
        key = (tail, head, port)
        if key in self.edge_keys or tail == head:
            return
        self.edge_keys.add(key)
        t_tail, t_head = self.time_of.get(tail), self.time_of.get(head)
        tail_end = tail if port is None else f"{tail}:{port}"
        if (attributes.get("constraint") != "false" and t_tail is not None
                and t_head is not None and t_tail > t_head):
            tail_end, head, attributes["dir"] = head, tail_end, "back"
        self.edges.append((tail_end, head, attributes))

    def _chain_attributes(self, parent, cut=False):
        attributes = {"weight": "10"}
        if cut:
            return dict(attributes, style="dashed", color=CUT_COLOR, penwidth="2")
        attributes.update(color=CHAIN_COLOR, penwidth="2")
        if self.scale is not None:
            attributes.update(edge_attributes(grad_norm(parent), self.scale))
        return attributes

    def _edges(self):
        g = self.graph
        for consumer in g.order:
            if not isinstance(consumer, Op):
                continue
            for parent in consumer.parents:
                self._edge(parent, consumer)
        for leaf, state in g.cuts.items():
            if leaf in self.node_of and state is not None:
                tail = self.node_of.get(state) or self.ellipsis[g.step[leaf][0]]
                self._add_edge(tail, self.node_of[leaf], **self._chain_attributes(state, True))

    def _edge(self, parent, consumer):
        g = self.graph
        chain = (parent, consumer) in g.chain
        if parent in self.hidden or consumer in self.hidden:
            if chain and not (parent in self.hidden and consumer in self.hidden):
                lane = g.step[consumer][0]
                tail = self.ellipsis[lane] if parent in self.hidden else self.node_of[parent]
                head = self.ellipsis[lane] if consumer in self.hidden else self.node_of[consumer]
                self._add_edge(tail, head, **self._chain_attributes(parent))
            return
        tail, head = self.node_of[parent], self.node_of[consumer]
        if chain:
            self._add_edge(tail, head, **self._chain_attributes(parent))
        elif parent in g.starts:
            carried = g.starts[parent][1] == "carried"
            self._add_edge(tail, head, **self._chain_attributes(parent, carried))
        elif parent not in g.step and consumer in g.step:
            self._use(parent, consumer)
        elif parent in g.step and consumer not in g.step:
            self._output(parent, consumer)
        else:
            self._add_edge(tail, head, self._port(tail, OUTSIDE), **self._use_style(parent, None))

    def _port(self, node_id, port):
        """``port`` if the node has a row of that name, else None."""
        return port if f"{node_id}:{port}" in self.ports else None

    def _contribution(self, vertex, t):
        """‖dL/dW^(t)‖ for a parameter vertex, or None (not a parameter, no gradients)."""
        if t is None or vertex not in self.colors or self.gradients is None:
            return None
        norms = self.gradients.contribution_norms.get(self.names[id(vertex)])
        return None if norms is None else norms[t - 1]

    def _use_style(self, parent, t):
        """Colour of a shared tensor's use edge: the weight's own; width from the
        gradient contribution that flows back along it, when known."""
        color = self.colors.get(parent)
        attributes = {"color": color} if color else {}
        norm = self._contribution(parent, t)
        if norm is not None:
            attributes["penwidth"] = f"{self.scale.penwidth(norm):.2f}"
        return attributes

    def _use(self, parent, consumer):
        """A tensor from outside the steps used in step t: an edge from its one node
        (``once``), or from a small copy of it inside the step (``proxy``)."""
        key = self.graph.step[consumer]
        t, head = key[1], self.node_of[consumer]
        if self.shared == "once":
            tail = self.node_of[parent]
            self._add_edge(tail, head, self._port(tail, f"t{t}"), constraint="false",
                           **self._use_style(parent, t))
            return
        proxy = self._proxy(parent, key, head, f"{self._short(parent)}<SUP>({t})</SUP>")
        self._add_edge(proxy, head, constraint="false", **self._use_style(parent, t))

    def _output(self, parent, consumer):
        """A step's tensor used outside the steps (a stack of all outputs, a loss)."""
        key = self.graph.step[parent]
        tail = self.node_of[parent]
        if self.shared == "once":
            self._add_edge(tail, self.node_of[consumer], constraint="false")
            return
        proxy = self._proxy(consumer, key, tail, f"&#8594; {self._short(consumer)}")
        self._add_edge(tail, proxy, constraint="false")

    def _short(self, vertex):
        if self.detail == "cell" and isinstance(vertex, Op):
            label = self.nodes[self.node_of[vertex]]["label"]
            bold = re.search(r"<B>(.*?)</B>", label)
            if bold:
                return bold.group(1)
        return escape(self.names.get(id(vertex)) or _name(vertex) or vertex.name)

    def _proxy(self, vertex, key, beside, title):
        """The dashed stand-in for ``vertex`` in step ``key``, on ``beside``'s rank."""
        drawn = self.node_of[vertex]
        proxy_id = f"{drawn}_p{self.lane_index[key[0]]}_{key[1]}"
        if proxy_id not in self.nodes:
            color = self.colors.get(vertex, "#666666")
            norm = self._contribution(vertex, key[1])
            fill, font = (None, None) if norm is None else (
                self.scale.color(norm), self.scale.font_color(norm))
            self._node(proxy_id, table_label([(small(title, font), fill)], color, dashed=True),
                       ("step", key[1], self.lane_index[key[0]]), key[1])
            self.pins.append((key[1], [beside, proxy_id]))
        return proxy_id

    def _anchors(self):
        """Keep the ops outside the steps out of the steps' columns: invisible edges
        put what the steps feed after the last step, and what feeds them (and
        depends on no step) before the first."""
        g = self.graph
        entry = {t: (self.columns.get((t, "in")) or self.columns[(t, "out")])[0]
                 for t in self.visible}
        exit_ = {t: self.columns[(t, "out")][0] for t in self.visible}
        # each step starts after the previous one ends, so the clusters sit side by side
        for previous, t in zip(self.visible, self.visible[1:]):
            if self.elided and t == self.elided[-1] + 1:
                ellipsis = self.ellipsis[g.lanes[0]]
                self._add_edge(exit_[previous], ellipsis, style="invis")
                self._add_edge(ellipsis, entry[t], style="invis")
            else:
                self._add_edge(exit_[previous], entry[t], style="invis")
        before, after = entry[self.visible[0]], exit_[self.visible[-1]]
        downstream, fed, feeds = set(), set(), set()
        for vertex in g.order:
            if vertex in g.step or vertex in self.hidden or vertex not in self.node_of:
                continue
            if isinstance(vertex, Op) and any(
                    p in g.step or p in downstream for p in vertex.parents):
                downstream.add(vertex)
                if any(p in g.step and p not in self.hidden for p in vertex.parents):
                    fed.add(self.node_of[vertex])
        for vertex in g.order:
            if (vertex not in g.step and vertex in self.node_of and vertex not in downstream
                    and vertex not in self.colors and vertex not in g.starts
                    and any(c in g.step for c in g.consumers[vertex])):
                feeds.add(self.node_of[vertex])
        position = {node_id: i for i, node_id in enumerate(self.nodes)}
        for node_id in sorted(fed, key=position.get):
            self._add_edge(after, node_id, style="invis")
        for node_id in sorted(feeds, key=position.get):
            self._add_edge(node_id, before, style="invis")
        if self.shared == "once":
            middle = self.visible[(len(self.visible) - 1) // 2]
            column = self.columns.get((middle, "in")) or self.columns[(middle, "out")]
            self.pins.append((None, column[:1] + [self.node_of[p] for p in self.colors]))

    # -- DOT -------------------------------------------------------------------------------
    def _emit(self):
        g = self.graph
        graphviz = require_graphviz()
        dot = graphviz.Digraph("unrolled")
        dot.attr(rankdir="LR", newrank="true", nodesep="0.2", ranksep="0.3")
        dot.attr("node", shape="plain", fontname="Helvetica", fontsize="11")
        dot.attr("edge", arrowsize="0.7", color="#555555")
        groups = {}
        # with several lanes (layers, directions) dot 2.43 can fail to rank groups
        # ("trouble in init_rank"); their chains stay straight enough by weight alone
        if len(g.lanes) == 1:
            for parent, consumer in g.chain:
                for vertex in (parent, consumer):
                    if vertex in self.node_of:
                        groups[self.node_of[vertex]] = "chain"
        clusters = {}
        for t in self.visible:
            cluster = clusters[("time", t)] = graphviz.Digraph(f"cluster_t{t}")
            cluster.attr(label=f"<t = {t}>", style="rounded", color="#999999",
                         fontname="Helvetica", fontsize="12")
            if len(g.lanes) > 1:
                for lane, k in self.lane_index.items():
                    sub = clusters[("step", t, k)] = graphviz.Digraph(f"cluster_t{t}_{k}")
                    sub.attr(label=f"<{escape(_lane_text(lane) or 'steps')}>",
                             style="rounded,dashed", color="#bbbbbb")
            else:
                clusters[("step", t, 0)] = cluster
        if self.elided:
            clusters[("elided",)] = graphviz.Digraph("cluster_elided")
            clusters[("elided",)].attr(label="<elided>", style="rounded,dashed",
                                       color=CUT_COLOR, fontname="Helvetica")
        if self.shared == "proxy" and self.colors:
            clusters[("params",)] = graphviz.Digraph("cluster_params")
            clusters[("params",)].attr(label="<shared weights, drawn once>",
                                       style="rounded", color="#999999",
                                       fontname="Helvetica")
        for node_id, spec in self.nodes.items():
            spec = dict(spec)
            target = clusters.get(spec.pop("place")) or dot
            if node_id in groups:
                spec["group"] = groups[node_id]
            target.node(node_id, **spec)
        for t in self.visible:
            for side in ("in", "out"):
                column = self.columns.get((t, side))
                if column:
                    clusters[("time", t)].body.append(
                        "\t{rank=same; " + " ".join(column) + "}\n")
        for t, pin in self.pins:
            if t is not None:
                clusters[("time", t)].body.append("\t{rank=same; " + " ".join(pin) + "}\n")
        for key in sorted(k for k in clusters if k[0] == "step"):
            if clusters[key] is not clusters[("time", key[1])]:
                clusters[("time", key[1])].subgraph(clusters[key])
        for t in self.visible:
            if self.elided and t == self.elided[-1] + 1:
                dot.subgraph(clusters[("elided",)])
            dot.subgraph(clusters[("time", t)])
        if ("params",) in clusters:
            dot.subgraph(clusters[("params",)])
        for t, pin in self.pins:  # after the clusters, which must define their nodes first
            if t is None:
                dot.body.append("\t{rank=same; " + " ".join(pin) + "}\n")
        for tail, head, attributes in self.edges:
            dot.edge(tail, head, **attributes)
        return dot


def to_dot(source, xs=None, *, a0=None, detail="cell", shared="auto", elide="auto",
           keep=KEEP, grads=None):
    """The unrolled graph as a ``graphviz.Digraph`` (``.source`` is the DOT text).

    source: a ``Trace`` (from ``trace``: the graph and its gradients), a tensor (or
        tensors) to draw the graph behind, or a model together with its input ``xs``
        (and ``a0``), run forward to draw its outputs' graph.
    detail: "cell" (one node per cell application) or "ops" (every primitive op).
    shared: "once" (each weight one node with an edge per use), "proxy" (a small
        copy per use) or "auto" (proxies above 20 drawn steps).
    elide: "auto" (above 20 steps), True or False: draw only the first and last
        ``keep`` steps, and a "⋯" node per lane for those between.
    grads: show gradients (default: when the source has had its backward pass).
    """
    return _Figure(_as_trace(source, xs, a0), detail, shared, elide, keep, grads).build()


def draw(source, xs=None, **options):
    """``to_dot(...)`` as a ``tinygraph.viz.Figure``: displays in Jupyter (as the DOT
    source and an install hint when Graphviz is missing), ``.render(path)``."""
    return Figure(to_dot(source, xs, **options))
