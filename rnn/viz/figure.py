"""The figure: the unrolled graph (``graph.Unrolled``) and its gradients
(``gradients.Gradients``) laid out as Graphviz DOT.

The layout reads like the notes' pictures: **time runs left to right**, one cluster
"t = k" per step in order; inside a step the input x<t> is at the bottom, each layer
one row above the one it reads (a bidirectional layer's two directions side by side
in one row), the output o<t> above them and the loss L = Σ_t L<t> on top. The state
chain a<0> -> a<1> -> ... runs along its row (a reverse direction's arrows point back
in time). Ops that work on every step at once (a layer's input projection of the
whole sequence, a head on the stacked outputs) are drawn as their per-step rows.

Shared weights are drawn once, in a grid beside the steps with the legend, each
in its own colour, with dL/dW = Σ_t dL/dW^(t) listed row by row. ``shared`` says how
a step shows that it uses a weight:

* ``"proxy"`` (the default): a visible per-step slice, W^(t) in the weight's colour
  inside the cell (``detail="cell"``) or as a small dashed node beside the op that
  uses it (``detail="ops"``), shaded by that step's contribution ‖dL/dW^(t)‖;
* ``"once"``: an edge from the weight's row t to every step that uses it (readable
  up to about ten steps; dot needs tens of seconds for a node with a hundred edges);
* ``"auto"``: "once" up to 20 drawn steps, "proxy" above.

After backward every number sits on one log colour scale (``tinygraph.viz.LogScale``):
each state's ‖dL/da<t>‖, each step's contribution to each weight, and the chain edges,
coloured by the gradient that flows back along them, so vanishing and exploding
gradients show. A legend says what colours and shares mean. The share of step t is
the projection <dW^(t), dW> / ‖dW‖², so the shares of one weight add up to 100% (one
may be negative, when that step pulls against the others).

Node ids and clusters come from the graph's order, never from ``id()``: the same
program gives the same DOT, byte for byte. Building the DOT never recurses.
"""
import numpy as np

import tinygraph as tg
from tinygraph.engine import Op
from tinygraph.viz import (STYLES, Figure, LogScale, describe, edge_attributes, escape,
                           grad_norm, is_parameter, kind_of, require_graphviz,
                           small, table_label, vertex_label)

from ..names import parse as parse_state
from .graph import _lane_text, _name
from .gradients import Trace, _as_input, _tensors

MAX_STEPS = 20      # drawn steps above which shared="auto" uses proxies, elide="auto" elides
KEEP = 5            # steps kept at each end of an elided sequence
# ColorBrewer's Dark2: one colour per shared weight, as hex so that HTML labels take it too
PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
           "#a6761d", "#666666")
CHAIN_COLOR = "#e6550d"
CUT_COLOR = "#999999"
OUTSIDE = "out"     # the port of the row for contributions from outside the steps
LAYOUTS = ("proxy", "once", "auto")
MAX_INCHES = 20.8   # the longer side's cap: 2,000 px at 96 dpi


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


def _sup(t):
    return f"<SUP>({t})</SUP>"


class _Figure:
    """Builds one figure: first the drawn nodes (each with its cluster and row), then
    the edges, then emits both as DOT. One instance per ``to_dot``."""

    def __init__(self, run, detail, shared, elide, keep, grads):
        if detail not in ("cell", "ops"):
            raise ValueError(f"detail must be 'cell' or 'ops', not {detail!r}")
        if shared not in LAYOUTS:
            raise ValueError(f"shared must be 'proxy', 'once' or 'auto', not {shared!r}")
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
        self.grads = grads
        self.gradients = run.gradients() if grads and run.contributions is not None else None
        self.names = run.names()
        self.nodes = {}       # id -> dict(label=..., place=cluster key, extra attributes)
        self.node_of = {}     # vertex -> drawn id
        self.rows = {}        # row key -> [ids] on one rank
        self.time_of = {}     # drawn id -> time (for the direction of chain edges)
        self.ports = set()    # "node:port" rows of the weights' sums
        self.edges, self.edge_keys = [], set()
        self.colors = {}      # parameter vertex -> colour
        self.uses = {}        # parameter vertex -> {t: [drawn ids that use it at t]}
        self.hidden = {v for v, (_, t) in g.step.items() if t in set(self.elided)}
        self.ellipsis, self.parallel_node = {}, {}  # lane -> "⋯" node; (op, t) -> node
        self._scale()

    # -- numbers -------------------------------------------------------------------------
    def _scale(self):
        if not self.grads:
            self.scale = None
            return
        values = [grad_norm(v) for v in self.graph.order if v not in self.hidden]
        if self.gradients is not None:
            for norms in self.gradients.contribution_norms.values():
                values.extend(norms[t - 1] for t in self.visible)
        self.scale = LogScale(values)

    def _contribution(self, leaf, t):
        """‖dL/dW^(t)‖ for a parameter, or None (no gradients)."""
        if self.gradients is None or t is None:
            return None
        norms = self.gradients.contribution_norms.get(self.names[id(leaf)])
        return None if norms is None else float(norms[t - 1])

    def _shares(self, name):
        """Each step's share <dW^(t), dW> / ‖dW‖² (they and the outside part add to 1)."""
        per_step = self.gradients.contributions[name]
        total = per_step.sum(axis=0) + self.gradients.outside[name]
        norm2 = float((total ** 2).sum())
        if norm2 == 0:
            return np.zeros(len(per_step)), 0.0
        shares = per_step.reshape(len(per_step), -1) @ total.reshape(-1) / norm2
        return shares, float((self.gradients.outside[name] * total).sum() / norm2)

    # -- nodes ---------------------------------------------------------------------------
    def _node(self, node_id, label, place=None, time=None, row=None, **attributes):
        if node_id not in self.nodes:
            self.nodes[node_id] = dict(label=label, place=place, **attributes)
            if row is not None:
                self.rows.setdefault(row, []).append(node_id)
        if time is not None:
            self.time_of[node_id] = time
        return node_id

    def _vertex_node(self, vertex, place, row=None, title=None):
        g = self.graph
        norm = grad_norm(vertex) if self.grads else None
        scale = self.scale if norm is not None or not isinstance(vertex, Op) else None
        label = vertex_label(vertex, kind_of(vertex, g.root_vertices), g.uses[vertex],
                             scale, norm, title=title)
        node_id = self._node(f"v{self.index[vertex]}", label, place,
                             g.step.get(vertex, (None, None))[1], row)
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
        parameters = [v for v in g.order if not isinstance(v, Op) and is_parameter(v)]
        for k, leaf in enumerate(parameters):
            self.colors[leaf] = PALETTE[k % len(PALETTE)]
            self.uses[leaf] = {}
        self.heads = self._find_heads()
        for t in self.visible:
            for lane in g.lanes:
                if (lane, t) in g.members:
                    self._step((lane, t))
            self._heads(t)
        if self.elided:
            self._ellipses()
        self._starts_and_cuts()
        self._sinks()
        self._edges()
        self._parameters(parameters)
        self._legend()
        return self._emit()

    def _step(self, key):
        """The nodes of one step of one lane, and the inputs it reads."""
        g = self.graph
        lane, t = key
        place, row = ("step", t), ("lane", self.lane_index[lane])
        cell = [v for v in g.ops(key) if v in g.cell_part]
        head = g.head(key)
        if self.detail == "ops":
            for vertex in g.ops(key):
                self._vertex_node(vertex, ("lane", t, self.lane_index[lane]),
                                  None)
        else:
            if cell:
                self._block(f"s{self.lane_index[lane]}_{t}", cell, key, place, row)
            if head:
                self._head_block(f"h{self.lane_index[lane]}_{t}", head, key, place)
        for leaf in (v for v in g.members[key] if not isinstance(v, Op)):
            if leaf in g.cuts or leaf in g.starts:
                continue
            if leaf.name is None and leaf.ndim == 0:
                if self.detail == "cell":
                    continue  # a constant such as GRU's 1 in 1 - z: part of the formula
                self._vertex_node(leaf, ("lane", t, self.lane_index[lane]))
                continue
            title = f"<B>{escape(f'x<{t}>')}</B>" if leaf.name is None else None
            self._vertex_node(leaf, place, ("inputs",), title)

    def _block(self, node_id, cell, key, place, row):
        """One node standing for a cell application (detail="cell"): its formula in
        the notes' names, its states' gradient norms and the weights it uses."""
        g = self.graph
        lane, t = key
        finals = g.finals[key]
        names = [_name(v) or "state" for v in finals]
        ops = [v.name for v in cell]
        state = names[0]
        note = None
        if len(finals) == 2 or ops.count("sigmoid") == 3:
            formula, note = f"{', '.join(names)} = LSTM cell", "gates i, f, g, o; c: the cell"
        elif ops.count("sigmoid") == 2:
            formula, note = f"{state} = GRU cell", "gates r, z, n"
        else:
            g1 = next((name for name in reversed(ops) if name in ("tanh", "relu")), "g")
            previous = self._previous(key)
            formula = (f"{state} = {g1}(W_ax {self._input_name(key)} + W_aa {previous} "
                       f"+ b_a)")
        rows = [(_bold_first(formula), STYLES["op"]["fill"]),
                (small(describe(finals[-1])[1] + (f", {escape(note)}" if note else "")), None)]
        if self.grads:
            for state_vertex in g.states[key]:
                rows.append(self._state_row(state_vertex))
        label_rows = rows
        self._node(node_id, None, place, t, row)
        for vertex in cell:
            self.node_of[vertex] = node_id
        self.nodes[node_id]["rows"] = label_rows
        return node_id

    def _state_row(self, state):
        text = f"‖dL/d{_name(state) or 'state'}‖"
        norm = grad_norm(state)
        if norm is None:
            return small(escape(f"{text}: not kept"), "#666666"), None
        return (f'<FONT COLOR="{self.scale.font_color(norm)}">'
                f'{escape(f"{text} = {norm:.2e}")}</FONT>', self.scale.color(norm))

    def _previous(self, key):
        """The name of the state a step reads: a<t-1>, or the chain's start."""
        g = self.graph
        for consumer in g.ops(key):
            for parent in consumer.parents:
                if (parent, consumer) in g.chain or parent in g.starts or parent in g.cuts:
                    return _name(parent) or "a"
        return "a<0>"

    def _input_name(self, key):
        """x<t>, or the states of the layer below that a step reads."""
        g = self.graph
        lane, t = key
        names = []
        for consumer in g.ops(key):
            for parent in consumer.parents:
                if parent in g.step or (not isinstance(parent, Op)):
                    continue
                for source in g.sources(parent, t) if parent in g.parallel else ():
                    if source in g.step and g.step[source][0] != lane:
                        names.append(_name(source) or "input")
        return "[" + "; ".join(dict.fromkeys(names)) + "]" if len(names) > 1 else (
            names[0] if names else f"x<{t}>")

    def _head_block(self, node_id, head, key, place):
        """A step's ops after its cell, e.g. o<t> = W_ya a<t> + b_y (detail="cell")."""
        shown = [v for v in head if _name(v)] or head[-1:]
        title = _bold_first(f"{_name(shown[-1]) or f'o<{key[1]}>'} = "
                            f"{self._formula(head, key[1])}")
        rows = [(title, STYLES["op"]["fill"]), (small(describe(shown[-1])[1]), None)]
        self._node(node_id, None, place, key[1], ("head",))
        self.nodes[node_id]["rows"] = rows
        for vertex in head:
            self.node_of[vertex] = node_id

    def _formula(self, ops, t):
        """W a + b for one affine op (the names of its weight, input and bias), else
        the ops' names in order."""
        if len(ops) == 1 and ops[0].name == "linear":
            op = ops[0]
            names = [self._symbol(p, t) for p in op.parents]
            return f"{names[1]} {names[0]}" + (f" + {names[2]}" if len(names) > 2 else "")
        return " → ".join(dict.fromkeys(v.name for v in ops))

    def _symbol(self, vertex, t):
        g = self.graph
        if not isinstance(vertex, Op) and is_parameter(vertex):
            return vertex.name or self.names[id(vertex)]
        if vertex in g.step:
            return _name(vertex) or vertex.name
        if vertex in g.parallel:
            states = [_name(s) for s in g.sources(vertex, t) if s in g.step]
            return "[" + "; ".join(states) + "]" if len(states) > 1 else (
                states[0] if states else "x")
        return _name(vertex) or "x"

    def _find_heads(self):
        """The ops on every step at once that use a weight and come after the steps
        (a head on the stacked outputs), not before them (a layer's projection)."""
        g = self.graph
        before = set()
        for vertex in reversed(g.order):
            if any(c in g.step or c in before for c in g.consumers[vertex]):
                before.add(vertex)
        return [v for v in g.order if v in g.parallel and v not in before
                and any(not isinstance(p, Op) and is_parameter(p) for p in v.parents)]

    def _heads(self, t):
        """Per-step rows of the heads (``_find_heads``), such as o<t> = W_ya a<t> + b_y
        on the stacked outputs: one node per step."""
        g = self.graph
        for vertex in self.heads:
            if not any(s in g.step for s in g.sources(vertex, t)):
                continue
            node_id = f"p{self.index[vertex]}_{t}"
            name = _name(vertex)
            parsed = name and parse_state(name)
            title = f"{name or 'o'}<{t}>" if not parsed else name
            title = _bold_first(f"{title} = {self._formula([vertex], t)}")
            rows = [(title, STYLES["op"]["fill"]),
                    (small(escape(f"row {t} of {vertex.name} on every step at once")), None)]
            self._node(node_id, None, ("step", t), t, ("head",))
            self.nodes[node_id]["rows"] = rows
            self.parallel_node[(vertex, t)] = node_id

    def _ellipses(self):
        """One "⋯" node per row standing for the elided steps."""
        g = self.graph
        first, last = self.elided[0], self.elided[-1]
        self.ellipsis = {}
        middle = (first + last) / 2
        for lane in g.lanes:
            row = ("lane", self.lane_index[lane])
            rows = [(f"<B>&#8943; t = {first} &#8230; {last} &#8943;</B>", "#f3f3f3"),
                    (small(escape(f"{len(self.elided)} steps not drawn")), None)]
            if self.gradients is not None:
                norms = [grad_norm(s) for t in self.elided for s in g.states.get((lane, t), ())]
                norms = [n for n in norms if n is not None]
                if norms:
                    rows.append((small(escape(f"‖dL/da‖ from {min(norms):.2e} to "
                                              f"{max(norms):.2e}")), None))
            node_id = self._node(f"e{self.lane_index[lane]}", table_label(rows, CUT_COLOR),
                                 ("elided",), middle, row)
            self.ellipsis[lane] = node_id

    def _starts_and_cuts(self):
        g = self.graph
        for leaf, (lane, kind, t0) in g.starts.items():
            title = None
            if kind == "carried":
                title = describe(leaf)[0] + " " + small(escape("carried over, detached"),
                                                        CUT_COLOR)
            row = ("lane", self.lane_index[lane]) if self.detail == "cell" else None
            first = t0 + 1 if t0 < g.times[0] else t0 - 1  # beside the step it feeds
            self._vertex_node(leaf, ("step", first), row, title)
            self.time_of[self.node_of[leaf]] = t0
        for leaf, (lane, t) in ((leaf, g.step[leaf]) for leaf in g.cuts if leaf in g.step):
            if t not in self.visible:
                continue
            title = describe(leaf)[0] + " " + small(escape("detached"), CUT_COLOR)
            row = ("lane", self.lane_index[lane]) if self.detail == "cell" else None
            self._vertex_node(leaf, ("step", t), row, title)

    def _sinks(self):
        """The roots outside the steps (the loss, the stacked outputs): one node each,
        standing for every op between the steps and it."""
        g = self.graph
        self.sink_of = {}
        for root in g.roots:
            vertex = root.op if root.op is not None else root
            if vertex in g.step or vertex in self.node_of:
                continue
            node_id = f"r{self.index[vertex]}"
            steps = self._times_feeding(vertex)
            if root.size == 1:
                value = float(np.asarray(root.data).reshape(-1)[0])
                name = escape(root.name or "L")
                if len(steps) > 1:
                    formula = f"{name} = &#8721;<SUB>t</SUB> {name}&lt;t&gt;"
                elif steps:
                    formula = f"{name} = {name}&lt;{steps[0]}&gt;"
                else:
                    formula = name
                rows = [(f"<B>{formula}</B>", STYLES["output"]["fill"]),
                        (small(escape(f"= {value:.4g}, the loss summed over "
                                      f"{'the steps and ' if len(steps) > 1 else ''}"
                                      f"the batch")), None)]
            else:
                rows = [(f"<B>{escape(root.name or 'output')}</B>", STYLES["output"]["fill"]),
                        (small(escape(f"{root.shape}: every step's, stacked")), None)]
            self._node(node_id, table_label(rows, STYLES["output"]["border"], 2), None,
                       None)
            self.sink_of[vertex] = node_id
            for v in self._between(vertex):
                self.node_of.setdefault(v, node_id)

    def _between(self, root):
        """The ops outside the steps that lead to ``root`` and are not drawn per step."""
        g = self.graph
        found, pending = [], [root]
        while pending:
            v = pending.pop()
            if not isinstance(v, Op) or v in found:
                continue
            found.append(v)
            for p in v.parents:
                if isinstance(p, Op) and p not in g.step and p not in g.parallel:
                    pending.append(p)
        return found

    def _times_feeding(self, root):
        g = self.graph
        times, pending, seen = set(), [root], set()
        while pending:
            v = pending.pop()
            if id(v) in seen or not isinstance(v, Op):
                continue
            seen.add(id(v))
            for p in v.parents:
                if p in g.step:
                    times.add(g.step[p][1])
                elif isinstance(p, Op):
                    pending.append(p)
        return sorted(times)

    def _parameters(self, parameters):
        contributions = self.gradients.contributions if self.gradients else {}
        for leaf in parameters:
            name = self.names[id(leaf)]
            times = set(self.uses[leaf])
            if self.elided and {self.elided[0] - 1, self.elided[-1] + 1} <= times:
                times |= set(self.elided)  # used on both sides: by the steps between too
            times = sorted(times)
            title, shape = describe(leaf)
            if leaf.name and not name.endswith(leaf.name):
                title = f"<B>{escape(leaf.name)}</B> " + small(escape(name))
            rows = [(title, STYLES["parameter"]["fill"]), (small(shape), None)]
            if times:
                rows.append((small(escape(f"used at t = {_ranges(times)}")), None))
            node_id = f"v{self.index[leaf]}"
            self.node_of[leaf] = node_id
            if name in contributions:
                rows.extend(self._sum_rows(node_id, leaf, name))
            self._node(node_id, table_label(rows, self.colors[leaf], 2), ("params",),
                       None, ("params",))

    def _sum_rows(self, node_id, leaf, name):
        """dL/dW = Σ_t dL/dW^(t): one row (with a port) per drawn step that uses W,
        one for the elided steps together, one for uses outside the steps, the total."""
        per_step = self.gradients.contributions[name]
        norms = self.gradients.contribution_norms[name]
        shares, outside_share = self._shares(name)
        rows = [("dL/dW = &#8721;<SUB>t</SUB> dL/dW<SUP>(t)</SUP>", None)]

        def row(text, norm, port):
            font = self.scale.font_color(norm)
            rows.append((f'<FONT COLOR="{font}">{escape(text)}</FONT>', self.scale.color(norm))
                        + ((port,) if port else ()))

        used = set(self.uses[leaf]) | {t for t in self.elided if norms[t - 1] > 0}
        elided = [t for t in self.elided if t in used]
        for t in self.visible:
            if t in used or norms[t - 1] > 0:
                row(f"t={t}: {norms[t - 1]:.2e}, {shares[t - 1]:.1%}", norms[t - 1], f"t{t}")
            if elided and t == self.elided[0] - 1:
                summed = float(np.linalg.norm(per_step[[s - 1 for s in elided]].sum(axis=0)))
                row(f"t={_ranges(elided)}: {summed:.2e}, "
                    f"{shares[[s - 1 for s in elided]].sum():.1%}", summed, None)
        outside = self.gradients.outside[name]
        if np.any(outside):
            norm = float(np.linalg.norm(outside))
            row(f"outside the steps: {norm:.2e}, {outside_share:.1%}", norm, OUTSIDE)
        self.ports.update(f"{node_id}:{port}" for _, _, *port in rows for port in port)
        grad = self.gradients.grads[name]
        if grad is not None:
            rows.append((small(escape(f"= .grad, ‖·‖ = {np.linalg.norm(grad):.3e}")), None))
        return rows

    def _legend(self):
        rows = [("<B>legend: shared weights, each drawn once</B>", "#f3f3f3"),
                (small(escape("each shared weight: one colour, drawn once here")), None),
                (small(escape("W(t): step t's use of W" + (
                    ", its slice shaded by ‖dL/dW(t)‖" if self.shared == "proxy"
                    else " (an edge from row t)"))), None),
                (small(escape("heavy arrows: the state chain a<t-1> → a<t>")), None),
                (small(escape("dashed grey: a detached state (truncated BPTT)")), None)]
        if self.scale is not None:
            lo, hi = 10 ** self.scale.lo, 10 ** self.scale.hi
            rows += [(small(escape(f"red: gradient norm on a log scale, {lo:.1e}")),
                      self.scale.color(lo)),
                     (small(escape(f"… to {hi:.1e}"), self.scale.font_color(hi)),
                      self.scale.color(hi)),
                     (small(escape("a weight's row t: ‖dL/dW(t)‖ and the share "
                                   "<dW(t), dW> / ‖dW‖²;")), None),
                     (small(escape("the shares of one weight add up to 100%")), None)]
        self._node("legend", table_label(rows, "#999999"), ("params",), None, ("params",))
        self._grid(self.rows[("params",)])

    def _grid(self, ids):
        """The weights and the legend in a grid of columns beside the steps (invisible
        edges stack each column; tying them to the steps scrambles dot's step order)."""
        per_column = max(1, int(np.ceil(np.sqrt(len(ids) / 3))))
        columns = [ids[i:i + per_column] for i in range(0, len(ids), per_column)]
        for column in columns:
            for lower, upper in zip(column, column[1:]):
                self._add_edge(lower, upper, style="invis")
        self.grid = [column[0] for column in columns]  # the bottom row, kept in order

    # -- edges ---------------------------------------------------------------------------
    def _add_edge(self, tail, head, port=None, **attributes):
        """One edge per (tail, head); an edge that runs against time is drawn reversed
        with dir=back, so that it still places its tail before its head."""
        key = (tail, head, port)
        if key in self.edge_keys or tail == head:
            return
        self.edge_keys.add(key)
        t_tail, t_head = self.time_of.get(tail), self.time_of.get(head)
        tail_end = tail if port is None else f"{tail}:{port}"
        if t_tail is not None and t_head is not None and t_tail > t_head:
            tail_end, head, attributes["dir"] = head, tail_end, "back"
        self.edges.append((tail_end, head, attributes))

    def _chain_attributes(self, parent, cut=False):
        attributes = {"weight": "10"}
        if self.detail == "ops":
            attributes["constraint"] = "false"  # the steps' ops keep their own ranks
        if cut:
            return dict(attributes, style="dashed", color=CUT_COLOR, penwidth="2")
        attributes.update(color=CHAIN_COLOR, penwidth="2.5")
        if self.scale is not None:
            attributes.update(edge_attributes(grad_norm(parent), self.scale))
        return attributes

    def _edges(self):
        g = self.graph
        for consumer in g.order:
            if isinstance(consumer, Op) and consumer in g.step:
                for parent in consumer.parents:
                    self._edge(parent, consumer)
        for (vertex, t), node_id in self.parallel_node.items():
            for source in g.sources(vertex, t):
                self._from_source(source, node_id, t)
        self._to_sinks()
        for leaf, state in g.cuts.items():
            if leaf in self.node_of and state is not None:
                tail = self.node_of.get(state) or self.ellipsis.get(g.step[leaf][0])
                if tail:
                    self._add_edge(tail, self.node_of[leaf],
                                   **self._chain_attributes(state, True))
        self._order_steps()

    def _edge(self, parent, consumer):
        g = self.graph
        lane, t = g.step[consumer]
        if consumer in self.hidden:
            if (parent, consumer) in g.chain and parent not in self.hidden:
                self._add_edge(self.node_of[parent], self.ellipsis[lane],
                               **self._chain_attributes(parent))
            return
        head = self.node_of[consumer]
        if (parent, consumer) in g.chain:
            tail = self.ellipsis[lane] if parent in self.hidden else self.node_of[parent]
            self._add_edge(tail, head, **self._chain_attributes(parent))
        elif parent in g.starts:
            carried = g.starts[parent][1] == "carried"
            self._add_edge(self.node_of[parent], head,
                           **self._chain_attributes(parent, carried))
        elif parent in g.step:
            if parent in self.node_of:
                self._add_edge(self.node_of[parent], head)
        else:
            self._from_source(parent, head, t)

    def _from_source(self, source, head, t):
        """An edge into a step from what it reads outside the steps: a weight (its use
        at t), row t of an op on every step at once (what that row is made of), an
        input sequence (its x<t>)."""
        g = self.graph
        if isinstance(source, Op) and (source in g.parallel or g._fixed(source)):
            for s in g.sources(source, t):
                self._from_source(s, head, t)
        elif not isinstance(source, Op) and is_parameter(source):
            self._use(source, head, t)
        elif source in g.step:
            if source in self.node_of and source not in self.hidden:
                self._add_edge(self.node_of[source], head, weight="2")
        elif not isinstance(source, Op) and source.shape[:1] == (max(g.times),):
            self._add_edge(self._x_node(source, t), head)
        elif source in self.node_of:
            self._add_edge(self.node_of[source], head)
        else:
            self._add_edge(self._vertex_node(source, None), head)

    def _x_node(self, leaf, t):
        """Row t of an input sequence given to an op on every step at once: x<t>."""
        name = f"{leaf.name or 'x'}<{t}>"
        rows = [(f"<B>{escape(name)}</B>", STYLES["input"]["fill"]),
                (small(escape(str(leaf.shape[1:]))), None)]
        return self._node(f"x{self.index[leaf]}_{t}", table_label(rows, STYLES["input"]["border"]),
                          ("step", t), t, ("inputs",))

    def _use(self, leaf, head, t):
        """Step t uses weight W: an edge from W's row t (``once``) or W^(t) drawn in the
        step (``proxy``)."""
        self.uses[leaf].setdefault(t, [])
        if head in self.uses[leaf][t]:
            return
        self.uses[leaf][t].append(head)

    def _use_edges(self):
        """The uses recorded by ``_use``, drawn once the weights' nodes exist."""
        for leaf, by_time in self.uses.items():
            color = self.colors[leaf]
            for t, heads in by_time.items():
                norm = self._contribution(leaf, t)
                for head in heads:
                    attributes = {"color": color, "constraint": "false", "weight": "0"}
                    if norm is not None:
                        attributes["penwidth"] = f"{self.scale.penwidth(norm):.2f}"
                    if self.shared == "once":
                        tail = self.node_of[leaf]
                        port = f"t{t}" if f"{tail}:t{t}" in self.ports else None
                        self._add_edge(tail, head, port, **attributes)
                    elif "rows" in self.nodes[head]:
                        self._slice_row(leaf, head, t, norm)
                    else:
                        self._proxy(leaf, head, t, norm, attributes)

    def _slice_row(self, leaf, head, t, norm):
        """W^(t) as a row of the cell that uses it, in W's colour."""
        symbol = escape(leaf.name or self.names[id(leaf)])
        value = "" if norm is None else f" {norm:.2e}"
        fill = None if norm is None else self.scale.color(norm)
        font = "black" if norm is None else self.scale.font_color(norm)
        markup = (f'<FONT COLOR="{self.colors[leaf]}">&#9632;</FONT> '
                  f'<FONT COLOR="{font}" POINT-SIZE="9">{symbol}{_sup(t)}{escape(value)}</FONT>')
        self.nodes[head]["rows"].append((markup, fill))

    def _proxy(self, leaf, head, t, norm, attributes):
        symbol = escape(leaf.name or self.names[id(leaf)])
        fill, font = (None, None) if norm is None else (self.scale.color(norm),
                                                        self.scale.font_color(norm))
        proxy_id = f"{self.node_of[leaf]}_{head}"
        self._node(proxy_id, table_label([(small(f"{symbol}{_sup(t)}", font), fill)],
                                         self.colors[leaf], dashed=True),
                   self.nodes[head]["place"], t)
        self._add_edge(proxy_id, head, **dict(attributes, constraint="true"))

    def _to_sinks(self):
        """Each step's last nodes into the loss (or the stacked outputs) they feed; a
        sink fed by a few steps only is labelled with them instead (``_name_sources``)."""
        g = self.graph
        for vertex, sink in self.sink_of.items():
            tails = []
            for v in self._between(vertex):
                for p in v.parents:
                    if p in g.step:
                        tails.append(self.ellipsis[g.step[p][0]] if p in self.hidden
                                     else self.node_of.get(p))
                    elif p in g.parallel:
                        for t in self.visible:
                            node_id = self.parallel_node.get((p, t))
                            tails += [node_id] if node_id else [
                                self.node_of[s] for s in g.sources(p, t)
                                if s in self.node_of and s in g.step]
            tails = [tail for tail in dict.fromkeys(tails) if tail]
            times = {self.time_of.get(tail) for tail in tails}
            if len(self.visible) > 2 and not set(self.visible) <= times:
                self._name_sources(sink, vertex)  # h_n: from the ends only, named
                continue
            for tail in tails:
                self._add_edge(tail, sink)

    def _name_sources(self, sink, vertex):
        """A sink fed by a few steps only (h_n: each lane's last state) lists them in its
        label instead of edges, which would pull the first and last steps together."""
        g = self.graph
        names = [_name(p) for v in self._between(vertex) for p in v.parents if p in g.step]
        label = self.nodes[sink]["label"].replace(escape(": every step's, stacked"), "")
        row = small(escape("from " + ", ".join(dict.fromkeys(n for n in names if n))))
        self.nodes[sink]["label"] = label.replace("</TABLE>>", f"<TR><TD>{row}</TD></TR>"
                                                  "</TABLE>>")

    def _order_steps(self):
        """Invisible edges along the lowest row drawn in every step, so that the steps
        stand left to right in time order."""
        first = {self.time_of[i]: i for i in reversed(self.rows.get(("inputs",), []))}
        for node_id, spec in self.nodes.items():  # the lowest row a step has: its input
            place = spec["place"] or (None,)
            if place[0] in ("step", "lane"):
                first.setdefault(place[1], node_id)
        anchors = []
        for t in self.visible:
            if self.elided and t == self.elided[-1] + 1:
                anchors.append(next(iter(self.ellipsis.values())))
            if t in first:
                anchors.append(first[t])
        self.anchors = anchors
        for tail, head in zip(anchors, anchors[1:]):
            self._add_edge(tail, head, style="invis", weight="100")
        if self.detail == "cell":  # one row per lane, in the lanes' order, bottom up
            rows = [self.rows.get(("lane", k), []) for k in range(len(self.lane_index))]
            for lower, upper in zip(rows, rows[1:]):
                by_time = {self.time_of.get(i): i for i in upper}
                for node_id in lower:
                    if self.time_of.get(node_id) in by_time and node_id.startswith("s"):
                        self._add_edge(node_id, by_time[self.time_of[node_id]],
                                       style="invis")

    # -- DOT -------------------------------------------------------------------------------
    def _emit(self):
        self._use_edges()
        graphviz = require_graphviz()
        dot = graphviz.Digraph("unrolled")
        # at most 2,000 px on the longer side at 96 dpi: dot scales a larger figure down
        # the cell view's rows (one per lane) across the steps need newrank; with it dot
        # 2.43 scrambles the order of the steps in the ops view, whose one row (the
        # inputs') keeps them in order without it
        pinned = self.detail == "cell"
        dot.attr(rankdir="BT", nodesep="0.2", ranksep="0.3",
                 size=f"{MAX_INCHES},{MAX_INCHES}", **({"newrank": "true"} if pinned else {}))
        dot.attr("node", shape="plain", fontname="Helvetica", fontsize="11")
        dot.attr("edge", arrowsize="0.7", color="#555555")
        clusters = {}
        for t in self.visible:
            cluster = clusters[("step", t)] = graphviz.Digraph(f"cluster_t{t}")
            cluster.attr(label=f"<t = {t}>", style="rounded", color="#999999",
                         fontname="Helvetica", fontsize="12")
            if self.detail == "ops":
                for lane, k in self.lane_index.items():
                    sub = clusters[("lane", t, k)] = graphviz.Digraph(f"cluster_t{t}_{k}")
                    sub.attr(label=f"<{escape(_lane_text(lane) or 'cell')}>",
                             style="rounded,dashed", color="#bbbbbb")
        if self.elided:
            clusters[("elided",)] = graphviz.Digraph("cluster_elided")
            clusters[("elided",)].attr(label="<elided>", style="rounded,dashed",
                                       color=CUT_COLOR, fontname="Helvetica")
        for node_id, spec in self.nodes.items():
            spec = dict(spec)
            rows = spec.pop("rows", None)
            if rows is not None:
                spec["label"] = table_label(rows, STYLES["op"]["border"])
            place = spec.pop("place")
            if self.detail == "cell" and place and place[0] == "step":
                spec["group"] = f"t{place[1]}"  # the step's column stays straight
            target = clusters.get(place) or dot
            target.node(node_id, **spec)
        for key in sorted(k for k in clusters if k[0] == "lane"):
            if any(n["place"] == key for n in self.nodes.values()):
                clusters[("step", key[1])].subgraph(clusters[key])
        for t in self.visible:
            if self.elided and t == self.elided[-1] + 1:
                dot.subgraph(clusters[("elided",)])
            dot.subgraph(clusters[("step", t)])
        # one rank per row: the inputs, each layer, the heads, the sinks, the weights
        for row, ids in self.rows.items():
            if len(ids) > 1 and row != ("params",):
                dot.body.append("\t{rank=same; " + " ".join(ids) + "}\n")
        if len(getattr(self, "grid", ())) > 1:
            dot.body.append("\t{rank=same; " + " ".join(self.grid) + "}\n")
            for left, right in zip(self.grid, self.grid[1:]):
                self._add_edge(left, right, style="invis")
        for tail, head, attributes in self.edges:
            dot.edge(tail, head, **attributes)
        return dot


def _bold_first(formula):
    """Escaped ``formula`` with its left-hand side in bold."""
    left, _, right = formula.partition(" = ")
    return f"<B>{escape(left)}</B> = {escape(right)}" if right else f"<B>{escape(left)}</B>"


def to_dot(source, xs=None, *, a0=None, detail="cell", shared="proxy", elide="auto",
           keep=KEEP, grads=None):
    """The unrolled graph as a ``graphviz.Digraph`` (``.source`` is the DOT text).

    source: a ``Trace`` (from ``trace``: the graph and its gradients), a tensor (or
        tensors) to draw the graph behind, or a model together with its input ``xs``
        (and ``a0``), run forward to draw its outputs' graph.
    detail: "cell" (one node per cell application, its formula in the notes' names)
        or "ops" (every primitive op).
    shared: how a step shows its use of a shared weight (see the module docstring):
        "proxy" (a per-step slice W^(t) in the step; the default), "once" (an edge
        from the weight's one node) or "auto" ("once" up to 20 drawn steps).
    elide: "auto" (above 20 steps), True or False: draw only the first and last
        ``keep`` steps, and a "⋯" node per row for those between.
    grads: show gradients (default: when the source has had its backward pass).
    """
    return _Figure(_as_trace(source, xs, a0), detail, shared, elide, keep, grads).build()


def draw(source, xs=None, **options):
    """``to_dot(...)`` as a ``tinygraph.viz.Figure``: displays in Jupyter (as the DOT
    source and an install hint when Graphviz is missing), ``.render(path)``."""
    return Figure(to_dot(source, xs, **options))
