"""The figure: the unrolled graph (``graph.Unrolled``) and its gradients
(``gradients.Gradients``) laid out as Graphviz DOT, time steps left to right.
"""
import re

import numpy as np

import tinygraph as tg
from tinygraph.engine import Op
from tinygraph.viz import (STYLES, Figure, LogScale, describe, edge_attributes, escape,
                           grad_norm, grad_row, is_parameter, kind_of, require_graphviz,
                           small, table_label, vertex_label)

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
    from ..cells import GRUCell, LSTMCell, RNNCell
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
