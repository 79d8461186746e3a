"""``scan``: a loop that applies the same step function T times, as one graph node.

    states = tg.scan(step, init, xs)    # carry<t> = step(carry<t-1>, xs[t]), t = 0..T-1

A Python loop over ``step`` records every op of every step as a node of its own (the
literal unrolled graph, which is what a drawing shows). ``scan`` gives the same
values and gradients with far less bookkeeping: it runs ``step`` on the first two
steps' values to *trace* the ops it applies, then replays those ops' ``forward``
functions on plain arrays for every step, and, in backward, their ``backward``
functions in reverse, step by step (backpropagation through the loop). The whole
loop is one ``scan`` node of the graph; a weight used at every step is one of its
inputs, and its gradient is the sum of every step's contribution, built with one
matrix product per 1,024 rows where the ops allow it (``accel.rowsum.RowSum``).

What ``step`` may do: apply tinygraph ops to the carry, to the step's inputs and to
any tensor from outside (weights, constants), with ``no_grad()`` blocks if it likes,
and call Modules (a scan nested in the step replays too). It is traced, as
``jax.lax.scan`` and ``torch.jit.trace`` trace: its Python code runs twice (for the
first two steps), not once per step, and every step replays the ops those runs
applied. So anything that varies per step must come in through ``xs`` and change
only through tinygraph ops. What would break the replay raises, naming the problem:
reading a per-step tensor's values in Python (``.data``, ``.item()``, ``x > 0``,
``bool()``), a random draw, ``detach()``, ``retain_grad()``, ``register_hook()`` or
assigning ``.data`` inside the step; and, from comparing the two runs, different ops
at the two steps, a per-step value given to an op as a parameter (an index tensor),
or a tensor made outside the ops that differs between the steps or lies in a
per-step value's memory. A tensor kept from inside the step (appended to a list, say)
cannot be backpropagated: only the carry leaves the scan. What none of this sees are
Python decisions and side effects that use no tensor's values. A recorded backward
(``create_graph=True``) through a scan raises: the replay runs on arrays only.

``with tg.unrolled():`` makes ``scan`` run the plain loop instead: ordinary nodes per
step, for drawings, ``retain_grad`` on per-step values, hooks, and any step the
replay refuses. Anomaly mode and ``no_grad`` run the plain loop too. The replay sums
some gradients in another order than the engine's walk of the literal graph (a state
used twice in a step), so the two can differ in the last bits.
"""
import contextlib
from operator import itemgetter

import numpy as np

from .. import engine
from ..anomaly import is_anomaly_enabled
from ..engine import Mode, Op, ShapeError, accumulate, using
from ..ops import Scatter, stack
from ..tensor import Tensor


class Settings:
    unrolled = False  # True inside unrolled(): scan runs the plain loop


def unrolled():
    """Inside the block, ``scan`` runs its step as a plain Python loop, recording
    every op of every step as a graph node (for drawings, ``retain_grad`` and hooks on
    per-step values, and anomaly mode's per-op checks)."""
    return using(Settings, unrolled=True)


def replays():
    """True where ``scan`` traces and replays its step; False where it runs the plain
    loop (inside ``unrolled()``, ``no_grad()`` or anomaly mode)."""
    return Mode.grad_enabled and not Settings.unrolled and not is_anomaly_enabled()


def scan(step, init, xs, reverse=False, names=None):
    """Run ``carry = step(carry, x_t)`` over the time steps of ``xs``; return the carry
    after every step, stacked over time.

    ``init``: the carry before the first step, a tensor or a tuple of tensors (its
    parts). ``xs``: a tensor (T, ...) or a tuple of them, all with T steps; ``x_t`` is
    xs[t] (a tuple of slices for a tuple). ``step`` must return a carry of the same
    parts, shapes and dtype. With ``reverse`` the steps run t = T-1 down to 0.
    Returns a (T, ...) tensor per part (a tuple for a tuple ``init``), whose row t is
    the carry after step t. See the module docstring for what ``step`` may do.

    In the plain loop, step t runs under ``tg.scope(f"t={t + 1}")`` (1-based), and
    ``names``, one format per part of the carry such as ``"a<{t}>"``, names each
    step's carry (``t`` 1-based), so that a drawing can tell the steps and states apart.
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
        program = _trace(call, init_parts, xs_parts, reverse)
        with contextlib.nullcontext() if program.carry_needs_grad else engine.no_grad():
            rows = Scan.apply(*init_parts, *xs_parts, *program.externals, program=program,
                              reverse=reverse)
        if rows._node is not None:  # the steps keep the externals' arrays: guard them
            node, fixed = rows._node, len(init_parts) + len(xs_parts)
            node.versions = (None,) * fixed + tuple(e._version for e in program.externals)
            for e in program.externals:
                if e._node is None:
                    node.holds += engine.hold(e._data)
        parts, start = [], 0
        for p in init_parts:
            part = rows[:, start:start + p.size] if len(init_parts) > 1 else rows
            parts.append(part.reshape((steps,) + p.shape))
            start += p.size
    else:
        carry, per_step = init_parts, [None] * steps
        for t in range(steps - 1, -1, -1) if reverse else range(steps):
            with engine.scope(f"t={t + 1}"):
                carry = per_step[t] = call(carry, [x[t] for x in xs_parts])
            for part, name in zip(carry, names or ()):
                part.name = name.format(t=t + 1)
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
class _Tracer:
    """The engine observer that records every op the step applies while it is traced,
    and makes the op's output a ``_Traced`` tensor (a per-step value)."""

    def __init__(self):
        self.record, self.reads = [], []

    def forward(self, op, inputs, options, out):
        if _tracers[-1] is self:  # (not the ops of a scan nested in the step)
            self.record.append((type(op), inputs, options, out, Mode.grad_enabled))
            out.__class__ = _Traced

    def backward(self, node, grads):
        pass


def _refuse(what, instead=""):
    raise RuntimeError(f"{what} inside a step that tg.scan traces: it is not an op, so "
                       f"the replay of the other steps cannot repeat it; {instead}run "
                       f"the loop under tg.unrolled() instead")


_tracers = []  # the tracers of the steps being traced, innermost last


class _Traced(Tensor):
    """A per-step value while the step is traced: its values are those of one traced
    step only, so reading them in Python is noted (and refused after the trace), and
    what is not an op is refused at once."""

    __slots__ = ()

    @property
    def data(self):
        _tracers[-1].reads.append(self)
        return self._data

    @data.setter
    def data(self, value):
        _refuse("assigning .data")

    def detach(self):
        _refuse("detach()", "compute the value in a tg.no_grad() block of the step "
                            "(that replays), or ")

    def retain_grad(self):
        _refuse("retain_grad()")

    def register_hook(self, hook):
        _refuse("register_hook()")


class Program:
    """A traced step, ready to replay on arrays.

    Values live in numbered slots: first the carry's parts, then the step inputs'
    parts, then the tensors from outside (``externals``, inputs of the scan node),
    then one slot per op in the order the ops ran. ``ops`` holds (op class, input
    slots, params) per op; ``outputs`` the slots of the new carry's parts.
    ``prepare`` makes the program that will replay ready for it.
    """

    def __init__(self, n_carry, n_xs, externals, ops, outputs, carry_shapes):
        self.n_carry, self.n_xs, self.externals = n_carry, n_xs, externals
        self.ops, self.outputs, self.carry_shapes = ops, outputs, carry_shapes
        self.n_inputs = n_carry + n_xs + len(externals)

    def wiring(self):
        """Which op ran on which slots, and which slots the new carry is in."""
        return [(cls, slots) for cls, slots, _ in self.ops], self.outputs

    def prepare(self, needs_grad, input_shapes):
        """Work out, once, what every step of the replay repeats: per op the flags of
        which inputs need a gradient (``needs_grad``) and its inputs' shapes."""
        # For the forward: how each op gets its arguments from the slots (itemgetter
        # returns a tuple for several slots, the value itself for one), and what it
        # keeps for its backward (None: that will not run, it needs no gradient).
        self.replay = [(cls, itemgetter(*slots), len(slots) > 1, params, needs,
                        _kept(cls, len(slots)) if True in needs else None)
                       for (cls, slots, params), needs in zip(self.ops, needs_grad)]
        # For the backward: the ops that send gradients, last first, each as (the slot
        # of its output, its place on a step's tape, (slot, shape to sum back to, or
        # None where the op does not broadcast) per input).
        self.backward_plan = []
        for j, ((cls, slots, _), needs, shapes) in enumerate(zip(self.ops, needs_grad,
                                                                 input_shapes)):
            if True in needs:
                sum_to = shapes if cls.broadcasts else [None] * len(slots)
                self.backward_plan.append((self.n_inputs + j, j, tuple(zip(slots, sum_to))))
        self.backward_plan.reverse()


def _kept(cls, n_inputs):
    """(the output kept?, how many inputs kept, the Nones after them): what ``Op.apply``
    saves for an op of ``cls``, worked out once per Program instead of at every step."""
    k = n_inputs if cls.saves_inputs is True else int(cls.saves_inputs)
    return cls.saves_output, k, (None,) * (n_inputs - k)


def _trace(call, init_parts, xs_parts, reverse):
    """Run the step on the first two steps it will take (the first alone when T = 1),
    recording every op it applies, and make a Program of the second run, which the
    replay repeats at every step. Comparing the two runs catches most steps that
    cannot be replayed (see ``_check_replayable``).
    """
    steps, k = len(xs_parts[0]), len(init_parts)
    times = [steps - 1, steps - 2] if reverse else [0, 1]
    carry, programs = [Tensor._wrap(p._data) for p in init_parts], []
    for t in times[:min(steps, 2)]:
        tracer = _Tracer()
        args = carry + [Tensor._wrap(x._data[t, ...]) for x in xs_parts]  # x[t]: (0-d too)
        for a in args:
            a.__class__ = _Traced
        assignments = Tensor.assignments
        _tracers.append(tracer)
        try:
            with engine.observing(tracer), engine.enable_grad():  # the step may turn it off
                outputs = call(args[:k], args[k:])
        finally:
            _tracers.pop()
            for a in args + [r[3] for r in tracer.record]:  # plain tensors again
                a.__class__ = Tensor
        record, reads = tracer.record, tracer.reads
        if Tensor.assignments != assignments:
            _refuse("assigning .data")
        for _, _, _, out, _ in record:  # a backward from a tensor that escaped the step
            if out._node is not None:   # (collected on the side) raises, and says why
                out._node.saved, out._node.freed = None, _ESCAPED
        per_step = {id(a) for a in args} | {id(r[3]) for r in record}
        read = [r for r in reads if id(r) in per_step]
        if read:
            raise ValueError(
                f"scan: the step read the values of a per-step tensor (shape "
                f"{read[0].shape}) in Python (.data, .item(), a comparison such as x > 0, "
                f"bool()), which the replay would fix at the traced steps; compute with "
                f"tinygraph ops (a mask can come in through xs; an embedding or index can "
                f"look up the whole sequence before the scan), or run the loop under "
                f"tg.unrolled()")
        programs.append(_program(record, args, outputs, init_parts, xs_parts))
        carry = [Tensor._wrap(out._data) for out in outputs]
    program = programs[-1]
    if len(programs) == 2:
        _check_replayable(*programs, _per_step_arrays(args, record, program), times)
    _prepare(program, record, init_parts, xs_parts)
    return program


_ESCAPED = ("backward through an op of a step that tg.scan traced: a tensor from inside "
            "the step was kept outside it (collected in a list, say), but only the carry "
            "leaves a scan; return what you need as part of the carry (scan stacks every "
            "step's), or run the loop under tg.unrolled()")


def _per_step_arrays(args, record, program):
    """The arrays of a traced run that hold per-step values: its arguments and its ops'
    outputs, but for outputs that view a tensor from outside (W.T, a constant's
    slice), which are as fixed as that tensor."""
    arrays, fixed = [t._data for t in args], {id(t) for t in program.externals}
    for _, inputs, _, out, _ in record:
        if any(id(t) in fixed and _base(t._data) is _base(out._data) for t in inputs):
            fixed.add(id(out))
        else:
            arrays.append(out._data)
    return arrays


def _program(record, args, outputs, init_parts, xs_parts):
    """The Program of one traced run. A tensor the step used that neither is one of its
    arguments nor came out of one of its ops is an external (a weight, a constant)."""
    slot = {id(t): ("arg", i) for i, t in enumerate(args)}
    externals, ops = [], []

    def slot_of(t):
        if id(t) not in slot:
            slot[id(t)] = ("external", len(externals))
            externals.append(t)
        return slot[id(t)]

    for cls, inputs, params, out, _ in record:
        ops.append((cls, [slot_of(t) for t in inputs], params))
        slot[id(out)] = ("op", len(ops) - 1)
    output_slots = [slot_of(t) for t in outputs]
    first = {"arg": 0, "external": len(args), "op": len(args) + len(externals)}
    ops = [(cls, [first[s[0]] + s[1] for s in slots], params) for cls, slots, params in ops]
    output_slots = [first[s[0]] + s[1] for s in output_slots]
    return Program(len(init_parts), len(xs_parts), externals, ops, output_slots,
                   [p.shape for p in init_parts])


def _prepare(program, record, init_parts, xs_parts):
    """Ready the Program of a traced run (``record``) to replay.

    Which slots need a gradient: the inputs that require one and what is computed from
    them (not inside a ``no_grad`` block of the step). The carry needs one where the
    init does, or where a step's carry is computed from something that does: a fixed
    point, reached in a pass or two."""
    fixed_needs = [x._requires_grad for x in xs_parts] + [
        e._requires_grad for e in program.externals]
    carry_needs = [p._requires_grad for p in init_parts]
    while True:
        needs, flags = carry_needs + fixed_needs, []
        for (_, slots, _), (_, _, _, _, grad_enabled) in zip(program.ops, record):
            flag = tuple(map(needs.__getitem__, slots)) if grad_enabled else \
                (False,) * len(slots)
            flags.append(flag)
            needs.append(True in flag)
        new = [c or needs[s] for c, s in zip(carry_needs, program.outputs)]
        if new == carry_needs:
            break
        carry_needs = new
    program.prepare(flags, [[t._data.shape for t in inputs] for _, inputs, _, _, _ in record])
    program.carry_needs_grad = True in carry_needs  # (else the scan records no node)


def _check_replayable(first, second, arrays, times):
    """Raise unless the traced runs at steps ``times`` replay as the plain loop would
    run them: the same ops on the same slots, with the same parameters, the same
    tensors from outside, or equal ones where the step made them
    (constants), and no parameter or constant in the memory of a per-step value
    (``arrays``)."""
    where = f"at steps {times[0]} and {times[1]}"
    if first.wiring() != second.wiring():
        raise ValueError(
            f"scan: step applied different ops {where} (does a Python decision depend on "
            f"the values?); run the loop under tg.unrolled()")
    owners = {}
    for a in arrays:
        owners.setdefault(id(_base(a)), []).append(a)

    def per_step(array):
        return any(np.may_share_memory(array, a) for a in owners.get(id(_base(array)), ()))

    for a, b in zip(first.externals, second.externals):
        if a is b:
            continue
        if (a._requires_grad or b._requires_grad or a.dtype != b.dtype
                or a.shape != b.shape or per_step(b._data) or not np.array_equal(
                    a._data, b._data, equal_nan=a.dtype.kind in "fc")):
            raise ValueError(
                f"scan: the step made a tensor of shape {b.shape} {where} that is not the "
                f"output of an op and differs between them, or views a per-step value "
                f"(from .data, .item(), tg.tensor(...), a random draw such as dropout's "
                f"mask); per-step values "
                f"must come in through xs and change only by tinygraph ops. Run the loop "
                f"under tg.unrolled() to run the step as Python at every step")
    for (cls, _, params_a), (_, _, params_b) in zip(first.ops, second.ops):
        for name in params_b:
            if not _same(params_a[name], params_b[name]) or any(
                    per_step(a) for a in _arrays_in(params_b[name])):
                raise ValueError(
                    f"scan: the step gave '{cls.__name__.lower()}' a per-step value as its "
                    f"parameter '{name}' (an index or an option, not an input), which "
                    f"the replay would fix. Index the whole sequence before the scan (an "
                    f"embedding of every step at once, say), or run the loop under "
                    f"tg.unrolled()")


def _base(array):
    """The array that owns ``array``'s memory (itself unless it is a view)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


def _arrays_in(value):
    if isinstance(value, np.ndarray):
        yield value
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _arrays_in(item)


def _same(a, b):
    """Parameters a and b are equal (arrays by value; tuples item by item; the
    programs of scans nested in the step by their ops)."""
    if isinstance(a, Program) and isinstance(b, Program):
        return a.wiring() == b.wiring() and all(
            _same(pa, pb) for (_, _, pa), (_, _, pb) in zip(a.ops, b.ops))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        return np.shape(a) == np.shape(b) and np.array_equal(a, b)
    if isinstance(a, (tuple, list)):
        return (type(a) is type(b) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b)))
    return a is b or a == b


# ---- the node ----------------------------------------------------------------------
class Scan(Op):
    """The whole loop of ``scan`` as one node: inputs (carry parts, xs parts, externals),
    output rows (T, size of the carry), row t the carry after step t, its parts
    flattened and joined.

    Forward replays the Program's ops on arrays, step by step; each step keeps, per op,
    the op instance and the arrays its backward reads (as graph nodes would). Backward
    runs them in reverse: step t receives dL/d(row t) plus the gradient the next step
    sent back to its carry, and hands its own carry's gradient to the step before. The
    externals' gradients add up over the steps with the engine's ``accumulate`` (so
    a weight's row sums join), and each step's arrays go once its backward has run.
    The node keeps no input of its own; ``scan`` has the engine check and guard the
    externals, which the steps keep.
    """

    def forward(self, *arrays, program, reverse):
        k, m = program.n_carry, program.n_xs
        carry, xs, fixed = list(arrays[:k]), arrays[k:k + m], list(arrays[k + m:])
        steps = len(xs[0])
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        outputs = program.outputs
        tapes, per_step, rows = [None] * steps, [None] * steps, None
        # Plain loops, no comprehensions: in CPython 3.11 each of those is a call.
        for t in order:
            env = carry.copy()
            for x in xs:
                env.append(x[t, ...])
            env += fixed
            tape = []
            for cls, fetch, spread, params, needs_grad, kept in program.replay:
                op = cls()
                op.needs_grad = needs_grad
                inputs = fetch(env) if spread else (fetch(env),)
                out = op.forward(*inputs, **params)
                if type(out) is not np.ndarray:
                    out = np.asarray(out)
                env.append(out)
                if kept is not None:  # what the backward of a graph node would read
                    out_kept, n_kept, nones = kept
                    tape.append((op, (out if out_kept else None, *inputs[:n_kept]) + nones))
                else:
                    tape.append(None)  # (the loop records no node for it)
            carry = [env[s] for s in outputs]
            tapes[t] = tape
            if k == 1:
                per_step[t] = carry[0]
            else:  # each part into its columns, with no temporaries for all steps
                if rows is None:
                    rows = np.empty((steps, sum(p.size for p in carry)), dtype=carry[0].dtype)
                start = 0
                for part in carry:
                    rows[t, start:start + part.size] = part.reshape(-1)
                    start += part.size
        self.tapes, self.program, self.reverse = tapes, program, reverse
        self.xs_meta = [(x.shape, x.dtype) for x in xs]
        return np.stack(per_step).reshape(steps, -1) if k == 1 else rows

    def backward(self, g, out, *inputs):
        if isinstance(g, Tensor):
            raise RuntimeError(
                "a recorded backward (create_graph=True, tg.grad of a gradient) through "
                "tg.scan: the replay runs on arrays only; run the loop under "
                "tg.unrolled() to differentiate through it twice")
        tapes, program, reverse = self.tapes, self.program, self.reverse
        k, m = program.n_carry, program.n_xs
        n_slots, outputs, plan = program.n_inputs + len(program.ops), program.outputs, \
            program.backward_plan
        needs = self.needs_grad
        steps, start, g_outputs = len(tapes), 0, []
        for shape in program.carry_shapes:  # dL/d(carry after step t), per part
            size = int(np.prod(shape))
            g_outputs.append(g[:, start:start + size].reshape((steps,) + shape))
            start += size
        g_xs = [None] * m  # a Scatter of the steps' rows (as x[t] gives)
        g_externals = [None] * len(program.externals)
        g_carry = [None] * k
        for t in range(steps) if reverse else range(steps - 1, -1, -1):
            grads = [None] * n_slots
            for i in range(k):
                grad = g_outputs[i][t] if g_carry[i] is None else g_outputs[i][t] + g_carry[i]
                s = outputs[i]
                grads[s] = grad if grads[s] is None else accumulate(grads[s], grad)
            tape = tapes[t]
            if not Mode.retain_graph:
                tapes[t] = None  # the step's saved arrays go once its backward has run
            for out_slot, j, targets in plan:
                grad = grads[out_slot]
                if grad is None:
                    continue
                if type(grad) is not np.ndarray:
                    grad = grad.evaluate()
                op, saved = tape[j]  # (a call with * costs more than the rest of a step)
                input_grads = (op.backward(grad, saved[0], saved[1]) if len(saved) == 2 else
                               op.backward(grad, saved[0], saved[1], saved[2])
                               if len(saved) == 3 else op.backward(grad, *saved))
                if type(input_grads) is not tuple:
                    input_grads = (input_grads,)
                for (s, shape), input_grad in zip(targets, input_grads):
                    if input_grad is not None:
                        if shape is not None and input_grad.shape != shape:
                            input_grad = engine.unbroadcast(input_grad, shape, op)
                        previous = grads[s]
                        grads[s] = input_grad if previous is None else accumulate(
                            previous, input_grad)
            g_carry = grads[:k]
            for i in range(k):
                if g_carry[i] is not None and type(g_carry[i]) is not np.ndarray:
                    g_carry[i] = g_carry[i].evaluate()
            for i in range(m):
                grad = grads[k + i]
                if grad is not None and needs[k + i]:
                    grad = grad if type(grad) is np.ndarray else grad.evaluate()
                    if g_xs[i] is None:
                        g_xs[i] = Scatter(self.xs_meta[i][0], self.xs_meta[i][1], t, grad)
                    else:  # (what Scatter's + does, without an operator call per step)
                        g_xs[i].pieces.append((t, grad))
            for e in range(len(g_externals)):
                grad = grads[k + m + e]
                if grad is not None and needs[k + m + e]:
                    g_externals[e] = grad if g_externals[e] is None else accumulate(
                        g_externals[e], grad)
        if not Mode.retain_graph:
            self.tapes = self.program = None  # the Program holds the externals
        g_init = [grad if needed else None for grad, needed in zip(g_carry, needs)]
        return (*g_init, *g_xs, *g_externals)
