"""The recorded graph, read as an unrolled recurrence: which ops belong to which time
step (the ``tg.scope("t=k")`` labels), which of them are the states a<t> (and c<t>)
that a step hands on (the chain edges between steps and the names ``rnn.names``
gives), where each chain starts and where it was cut (a detached state).
"""
import re

import numpy as np

from tinygraph.engine import Op
from tinygraph.viz import is_parameter, tensor_of, vertex_of, walk

from ..names import parse as parse_state

_TIME_LABEL = re.compile(r"t=(\d+)$")
# ops that, given time-major inputs (T, ...), make row t of their output from row t of
# each input: a batched projection of every step, the stack of the states, a head
ROWWISE = {"stack", "concat", "linear", "matmul", "add", "sub", "mul", "tanh", "sigmoid",
           "relu", "where", "neg", "exp"}


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
    parsed = parse_state(_name(vertex))
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
    ``parallel``: the ops outside the steps that work on every step at once, row t
    of their output made from row t of their inputs (a layer's input projection
    x W_ax^T + b_ax of the whole sequence, the stack of the states, a head applied to
    it); ``sources(op, t)`` says what row t of one comes from.
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
        self._find_parallel()

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

    def _find_parallel(self):
        T, self.parallel = max(self.times, default=0), set()
        for vertex in self.order:
            if (not isinstance(vertex, Op) or vertex in self.step or vertex.name not in ROWWISE
                    or not vertex.out_shape or vertex.out_shape[0] != T):
                continue
            if vertex.name == "stack":
                if len(vertex.parents) == T and all(p in self.step for p in vertex.parents):
                    self.parallel.add(vertex)
            elif all(self._fixed(p) or self._time_major(p, T) for p in vertex.parents) and any(
                    self._time_major(p, T) for p in vertex.parents):
                self.parallel.add(vertex)

    def _time_major(self, vertex, T):
        """Every step's rows, time first: a parallel op, or an input leaf (T, ...)."""
        return vertex in self.parallel or (
            not isinstance(vertex, Op) and not is_parameter(vertex) and vertex.shape[:1] == (T,))

    def _fixed(self, vertex):
        """A parameter, or an op outside the steps computed from parameters only (such
        as b_ax + b_aa): the same at every step."""
        if not isinstance(vertex, Op):
            return is_parameter(vertex)
        return vertex not in self.step and all(self._fixed(p) for p in vertex.parents)

    def sources(self, vertex, t):
        """What row t of a ``parallel`` op is made from, in the graph's order: the
        vertices of steps at time t, parameters (also through ops on parameters only,
        such as b_ax + b_aa), and leaves holding every step (such as the input
        sequence x, whose row t is x<t>)."""
        found, pending = [], [vertex]
        while pending:
            v = pending.pop(0)
            for parent in [v.parents[t - 1]] if v.name == "stack" else v.parents:
                if parent in self.parallel or (isinstance(parent, Op) and self._fixed(parent)):
                    pending.append(parent)
                elif (all(parent is not f for f in found)  # (a tensor's == is per entry)
                      and (parent not in self.step or self.step[parent][1] == t)):
                    found.append(parent)
        return found

    def head(self, key):
        """The step's ops no state is computed from (e.g. o<t> = W_ya a<t> + b_y)."""
        return [v for v in self.ops(key) if v not in self.cell_part]

    def series(self, state, lane):
        """The name of a state's sequence: "a<t>" for a<3>, "a→<t>[2]" for a→<3>[2]."""
        parsed = parse_state(_name(state))
        return parsed[0] if parsed else f"{_lane_text(lane) or 'state'}<t>"
