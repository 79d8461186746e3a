"""``scan``: a loop that applies the same step function T times, as one graph node.

    states = tg.scan(step, init, xs)    # carry<t> = step(carry<t-1>, xs[t]), t = 0..T-1

A Python loop over ``step`` records every op of every step as a node of its own (the
literal unrolled graph, which is what a drawing shows). ``scan`` gives the same
values and gradients with far less bookkeeping: it runs ``step`` once on the first
step's values to *trace* the ops it applies, then replays those ops' ``forward``
functions on plain arrays for every step, and, in backward, their ``backward``
functions in reverse, step by step (backpropagation through the loop). The whole
loop is one ``scan`` node of the graph; a weight used at every step is one of its
inputs, and its gradient is the sum of every step's contribution, built with one
matrix product where the ops allow it (``deferred.RowSum``).

What ``step`` may do: apply tinygraph ops to the carry, to the step's inputs and to
any tensor from outside (weights, constants). It is traced, as ``jax.lax.scan`` and
``torch.jit.trace`` trace: the ops it applied on the first step are the ops applied
at every step. So Python decisions on values (``if a.item() > 0``), NumPy on
``.data``, random draws and tensors made inside the step from per-step values are
fixed at the first step; anything that varies per step must come in through ``xs``.
``detach()`` inside a step raises (it is not an op that can be replayed).

``with tg.unrolled():`` makes ``scan`` run the plain loop instead: ordinary nodes per
step, for drawings, ``retain_grad`` on per-step values and hooks. Anomaly mode and
``no_grad`` run the plain loop too.
"""
from contextlib import contextmanager
from operator import itemgetter

import numpy as np

from . import anomaly, engine
from .deferred import Deferred, add_grads, as_array
from .engine import Op, ShapeError
from .ops import stack
from .tensor import Tensor

_unrolled = False


@contextmanager
def unrolled():
    """Inside the block, ``scan`` runs its step as a plain Python loop, recording
    every op of every step as a graph node (for drawings, ``retain_grad`` and hooks on
    per-step values, and anomaly mode's per-op checks)."""
    global _unrolled
    previous, _unrolled = _unrolled, True
    try:
        yield
    finally:
        _unrolled = previous


def replays():
    """True where ``scan`` traces and replays its step; False where it runs the plain
    loop (inside ``unrolled()``, ``no_grad()`` or anomaly mode)."""
    return engine.is_grad_enabled() and not _unrolled and not anomaly.enabled


def scan(step, init, xs, reverse=False):
    """Run ``carry = step(carry, x_t)`` over the time steps of ``xs``; return the carry
    after every step, stacked over time.

    ``init``: the carry before the first step, a tensor or a tuple of tensors (its
    parts). ``xs``: a tensor (T, ...) or a tuple of them, all with T steps; ``x_t`` is
    xs[t] (a tuple of slices for a tuple). ``step`` must return a carry of the same
    parts, shapes and dtype. With ``reverse`` the steps run t = T-1 down to 0.
    Returns a (T, ...) tensor per part (a tuple for a tuple ``init``), whose row t is
    the carry after step t. See the module docstring for what ``step`` may do.
    """
    init_parts, xs_parts = _tensors(init, "init"), _tensors(xs, "xs")
    steps = len(xs_parts[0]) if xs_parts[0].ndim else 0
    for x in xs_parts:
        if x.ndim == 0 or len(x) != steps:
            raise ShapeError(f"scan: every part of xs needs the same number of time steps "
                             f"(axis 0); got shapes {[x.shape for x in xs_parts]}")
    if steps == 0:
        raise ValueError("scan: xs holds no time steps")
    if len({p.dtype for p in init_parts}) != 1:
        raise TypeError(f"scan: the parts of the carry must share one dtype, got "
                        f"{[str(p.dtype) for p in init_parts]}")

    def call(carry_parts, x_parts):
        carry = tuple(carry_parts) if isinstance(init, tuple) else carry_parts[0]
        x_t = tuple(x_parts) if isinstance(xs, tuple) else x_parts[0]
        new = step(carry, x_t)
        new_parts = list(new) if isinstance(new, tuple) else [new]
        _check_carry(new_parts, init_parts)
        return new_parts

    if replays():
        program = _trace(call, init_parts, xs_parts)
        rows = Scan.apply(*init_parts, *xs_parts, *program.externals, program=program,
                          reverse=reverse)
        parts, start = [], 0
        for p in init_parts:
            part = rows[:, start:start + p.size] if len(init_parts) > 1 else rows
            parts.append(part.reshape((steps,) + p.shape))
            start += p.size
    else:
        carry, per_step = init_parts, [None] * steps
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            carry = per_step[t] = call(carry, [x[t] for x in xs_parts])
        parts = [stack([s[i] for s in per_step]) for i in range(len(init_parts))]
    return tuple(parts) if isinstance(init, tuple) else parts[0]


def _tensors(value, what):
    parts = list(value) if isinstance(value, tuple) else [value]
    if not parts or not all(isinstance(p, Tensor) for p in parts):
        raise TypeError(f"scan: {what} must be a tensor or a tuple of tensors, got "
                        f"{type(value).__name__}")
    return parts


def _check_carry(new_parts, init_parts):
    if len(new_parts) != len(init_parts) or not all(
            isinstance(n, Tensor) and n.shape == p.shape and n.dtype == p.dtype
            for n, p in zip(new_parts, init_parts)):
        got = [(n.shape, str(n.dtype)) if isinstance(n, Tensor) else type(n).__name__
               for n in new_parts]
        raise ShapeError(f"scan: step must return a carry like init, "
                         f"{[(p.shape, str(p.dtype)) for p in init_parts]}; got {got}")


# ---- tracing -----------------------------------------------------------------------
class Program:
    """A traced step, ready to replay on arrays.

    Values live in numbered slots: first the carry's parts, then the step inputs'
    parts, then the tensors from outside (``externals``, inputs of the scan node),
    then one slot per op in the order the ops ran. ``ops`` holds (op class, input
    slots, params, needs_grad) per op; ``outputs`` the slots of the new carry's parts.
    """

    def __init__(self, n_carry, n_xs, externals, ops, outputs, carry_shapes):
        self.n_carry, self.n_xs, self.externals = n_carry, n_xs, externals
        self.ops, self.outputs, self.carry_shapes = ops, outputs, carry_shapes
        self.n_inputs = n_carry + n_xs + len(externals)
        # For the replay: how each op gets its arguments from the slots (itemgetter
        # returns a tuple for several slots, the value itself for one), and the
        # slots its backward sends gradients to (None: it needs none).
        self.replay = [(cls, itemgetter(*slots), len(slots) > 1, params, needs_grad)
                       for cls, slots, params, needs_grad in ops]
        self.backward_slots = [slots if True in needs_grad else None
                               for _, slots, _, needs_grad in ops]


def _trace(call, init_parts, xs_parts):
    """Run the step on the first step's values (twice: see below) with no graph,
    recording every op it applies, and turn the second run's record into a Program.

    The first run is a warm-up. Inside a Module call, ``linear`` treats a weight's
    first use differently from later ones (it shares a transposed copy from the second
    use on: ``ops.transposes_shared``), and every replayed step is a later use. The
    two runs must apply the same ops.
    """
    carry = [Tensor._wrap(p._data) for p in init_parts]
    x_first = [Tensor._wrap(x._data[0]) for x in xs_parts]
    records = []
    for _ in range(2):
        previous, engine.tracing = engine.tracing, []
        try:
            with engine.no_grad():
                outputs = call(carry, x_first)
            records.append((engine.tracing, outputs))
        finally:
            engine.tracing = previous
    (first, _), (second, outputs) = records
    if [r[0] for r in first] != [r[0] for r in second]:
        raise RuntimeError(
            "scan: step applied different ops on two runs with the same inputs (does it "
            "depend on state outside its arguments?); run the loop under tg.unrolled()")
    return _program(second, outputs, carry, x_first, xs_parts, init_parts)


def _program(record, outputs, carry, x_first, xs_parts, init_parts):
    """The Program of one traced run. A tensor the step used that neither is one of its
    arguments nor came out of one of its ops is an external (a weight, a constant)."""
    slot = {id(t): ("arg", i) for i, t in enumerate(carry + x_first)}
    externals, ops = [], []

    def slot_of(t):
        if id(t) not in slot:
            slot[id(t)] = ("external", len(externals))
            externals.append(t)
        return slot[id(t)]

    per_step = [t._data for t in carry + x_first]
    for cls, inputs, params, out in record:
        _check_params(cls, params, per_step)
        ops.append((cls, [slot_of(t) for t in inputs], params))
        slot[id(out)] = ("op", len(ops) - 1)
    output_slots = [slot_of(t) for t in outputs]
    first = {"arg": 0, "external": len(carry) + len(x_first),
             "op": len(carry) + len(x_first) + len(externals)}
    ops = [(cls, [first[kind] + i for kind, i in slots], params) for cls, slots, params in ops]
    output_slots = [first[kind] + i for kind, i in output_slots]

    # Which slots need a gradient: the inputs that require one and what is computed
    # from them. The carry needs one where the init does, or where a step's carry is
    # computed from something that does: a fixed point, reached in a pass or two.
    fixed_needs = [x._requires_grad for x in xs_parts] + [e._requires_grad for e in externals]
    carry_needs = [p._requires_grad for p in init_parts]
    while True:
        needs, flags = carry_needs + fixed_needs, []
        for _, slots, _ in ops:
            flags.append(tuple(needs[s] for s in slots))
            needs.append(True in flags[-1])
        new = [c or needs[s] for c, s in zip(carry_needs, output_slots)]
        if new == carry_needs:
            break
        carry_needs = new
    return Program(len(carry), len(x_first), externals,
                   [(cls, slots, params, flag) for (cls, slots, params), flag
                    in zip(ops, flags)], output_slots, [p.shape for p in carry])


def _check_params(cls, params, per_step):
    """Raise if an op's parameters hold one of the step's own arrays (an index given
    as a tensor, say): a parameter is fixed when traced, so the replay would use the
    first step's value at every step."""
    values = list(params.values())
    for value in values:
        if isinstance(value, (tuple, list)):
            values.extend(value)
        elif isinstance(value, np.ndarray) and any(
                np.may_share_memory(value, array) for array in per_step):
            raise ValueError(
                f"scan: the step gave '{cls.__name__.lower()}' one of its per-step values "
                f"as a parameter (an index or an option, not an input), which the trace "
                f"would fix at the first step; run the loop under tg.unrolled()")


# ---- the node ----------------------------------------------------------------------
def _add(a, b):
    """a + b for gradients (arrays or Deferred), where either may be None (nothing yet)."""
    if a is None:
        return b
    if type(a) is np.ndarray and type(b) is np.ndarray:
        return a + b
    return add_grads(a, b)


class Scan(Op):
    """The whole loop of ``scan`` as one node: inputs (carry parts, xs parts, externals),
    output rows (T, size of the carry), row t the carry after step t, its parts
    flattened and joined.

    Forward replays the Program's ops on arrays, step by step; each step's op
    instances keep what their backward needs (``saved``, as graph nodes would).
    Backward runs them in reverse: step t receives dL/d(row t) plus the gradient the
    next step sent back to its carry, and hands its own carry's gradient to the step
    before. The externals' gradients add up over the steps (as ``Deferred`` where the
    ops return them, so a weight's T products become one).
    """

    saves_inputs = True

    def forward(self, *arrays, program, reverse):
        k, m = program.n_carry, program.n_xs
        carry, xs, fixed = list(arrays[:k]), arrays[k:k + m], list(arrays[k + m:])
        steps = len(xs[0])
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        ops, outputs = program.replay, program.outputs
        tapes, per_step = [None] * steps, [None] * steps
        # Plain loops, no comprehensions: in CPython 3.11 each of those is a call.
        for t in order:
            env = carry.copy()
            for x in xs:
                env.append(x[t])
            env += fixed
            tape = []
            for cls, fetch, spread, params, needs_grad in ops:
                op = cls()
                op.needs_grad = needs_grad
                out = op.forward(*fetch(env), **params) if spread else \
                    op.forward(fetch(env), **params)
                env.append(out if type(out) is np.ndarray else np.asarray(out))
                tape.append(op)
            carry = [env[s] for s in outputs]
            tapes[t], per_step[t] = tape, carry
        self.saved = tapes, [x.shape for x in xs]
        self.program, self.reverse = program, reverse
        if k == 1:
            return np.stack([c[0] for c in per_step]).reshape(steps, -1)
        return np.concatenate([np.stack([c[i] for c in per_step]).reshape(steps, -1)
                               for i in range(k)], axis=1)

    def backward(self, g):
        tapes, xs_shapes = self.saved
        program, k, m = self.program, self.program.n_carry, self.program.n_xs
        n_inputs, outputs, back = program.n_inputs, program.outputs, program.backward_slots
        needs = self.needs_grad
        steps, start, g_outputs = len(tapes), 0, []
        for shape in program.carry_shapes:  # dL/d(carry after step t), per part
            size = int(np.prod(shape))
            g_outputs.append(g[:, start:start + size].reshape((steps,) + shape))
            start += size
        g_xs = [np.zeros(shape, dtype=g.dtype) if needs[k + i] else None
                for i, shape in enumerate(xs_shapes)]
        g_externals = [None] * len(program.externals)
        g_carry = [None] * k
        for t in range(steps) if self.reverse else range(steps - 1, -1, -1):
            grads = [None] * (n_inputs + len(back))
            for i in range(k):
                grad = g_outputs[i][t] if g_carry[i] is None else g_outputs[i][t] + g_carry[i]
                s = outputs[i]
                grads[s] = grad if grads[s] is None else _add(grads[s], grad)
            tape = tapes[t]
            if not engine.retaining_graph:
                tapes[t] = None  # the step's saved arrays go once its backward has run
            for j in range(len(tape) - 1, -1, -1):
                grad, slots = grads[n_inputs + j], back[j]
                if grad is None or slots is None:
                    continue
                if isinstance(grad, Deferred):
                    grad = grad.evaluate()
                for s, input_grad in zip(slots, tape[j].backward(grad)):
                    if input_grad is not None:
                        previous = grads[s]
                        grads[s] = input_grad if previous is None else _add(previous, input_grad)
            g_carry = grads[:k]
            for i in range(k):
                if isinstance(g_carry[i], Deferred):
                    g_carry[i] = g_carry[i].evaluate()
            for i in range(m):
                if g_xs[i] is not None and grads[k + i] is not None:
                    g_xs[i][t] = as_array(grads[k + i])
            for e in range(len(g_externals)):
                grad = grads[k + m + e]
                if grad is not None and needs[k + m + e]:
                    g_externals[e] = grad if g_externals[e] is None else \
                        _add(g_externals[e], grad)
        g_init = [grad if needed else None for grad, needed in zip(g_carry, needs)]
        return (*g_init, *g_xs, *g_externals)
