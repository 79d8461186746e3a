"""Random small programs over tinygraph's primitive ops, and an interpreter that runs
one program on tinygraph or on PyTorch.

A program starts from 1-3 leaf inputs whose shapes broadcast together (different
ranks, size-1 axes), then applies instructions v_k = op(v_i, v_j, ...) whose operands
are ANY earlier values, so intermediates are reused (fan-in) and operands of
different shapes broadcast. Its loss is L = sum_j sum(W_j * v_j) over every value that
no instruction consumes (so every instruction reaches the loss) and possibly a few
others, with fixed random weights W_j, so a wrong gradient entry cannot hide behind a
plain sum.

Ops with a restricted domain get operands that satisfy it by construction, built
from primitives in the program itself: log, division and pow with a fractional or
tensor exponent take a positive value (exp(tanh v), v*v + 0.5, sigmoid v, or one
already known to be positive). What construction cannot promise (no relu input near
0, no near-ties for max, nothing huge) is measured on the actual values by
``ill_conditioned``, and the numerical test skips such programs.

The strategy is ``programs()``; ``run(program, leaves, ops)`` interprets a program
with ``TINYGRAPH_OPS`` or ``torch_ops(torch)``.
"""
import functools
from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

import tinygraph as tg

MAX_DIMS = 4        # leaves have at most 4 axes, each of size 1..3
MAX_SIZE = 81       # an instruction whose result would be bigger is not emitted
POW_EXPONENTS = (2.0, 3.0, 0.5, -1.0, -1.5, 1.7)
INTEGER_EXPONENTS = (2.0, 3.0)   # valid for negative bases too
CONSTANTS = (0.5, -1.25, 2.0)


# ---- the two backends -----------------------------------------------------------------
TINYGRAPH_OPS = {
    "add": tg.add, "sub": tg.sub, "mul": tg.mul, "div": tg.div, "pow": tg.pow,
    "matmul": tg.matmul, "linear": tg.linear, "neg": tg.neg, "exp": tg.exp, "log": tg.log,
    "tanh": tg.tanh, "sigmoid": tg.sigmoid, "relu": tg.relu, "softplus": tg.softplus,
    "sum": tg.sum, "mean": tg.mean, "max": tg.max,
    "reshape": tg.reshape, "transpose": tg.transpose, "getitem": tg.getitem,
    "concat": lambda *xs, axis: tg.concat(xs, axis),
    "stack": lambda *xs, axis: tg.stack(xs, axis),
    "where": lambda a, b, condition: tg.where(condition, a, b),
    "log_softmax": tg.log_softmax,
    "constant": tg.tensor,
}


def torch_ops(torch):
    """The same vocabulary in PyTorch (float64 throughout)."""
    def all_axes(x, axis):
        return tuple(range(x.ndim)) if axis is None else axis

    def torch_index(index):
        if isinstance(index, tuple):
            return tuple(torch_index(part) for part in index)
        return torch.from_numpy(index) if isinstance(index, np.ndarray) else index

    def linear(x, W, b=None):
        # not F.linear: it rejects biases with more axes than (out,) that still
        # broadcast to the output, which tinygraph's linear accepts
        out = torch.matmul(x, W.T)
        return out if b is None else out + b

    return {
        "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
        "pow": torch.pow, "matmul": torch.matmul, "linear": linear,
        "neg": torch.neg, "exp": torch.exp, "log": torch.log, "tanh": torch.tanh,
        "sigmoid": torch.sigmoid, "relu": torch.relu,
        # log(1 + e^x) exactly: torch's softplus turns linear above x = 20
        "softplus": lambda x: torch.logaddexp(x, torch.zeros_like(x)),
        "sum": lambda x, axis, keepdims: torch.sum(x, dim=axis, keepdim=keepdims),
        "mean": lambda x, axis, keepdims: torch.mean(x, dim=axis, keepdim=keepdims),
        "max": lambda x, axis, keepdims: torch.amax(x, dim=all_axes(x, axis),
                                                    keepdim=keepdims),
        "reshape": torch.reshape,
        "transpose": lambda x, axes: x.permute(
            tuple(reversed(range(x.ndim))) if axes is None else axes),
        "getitem": lambda x, index: x[torch_index(index)],
        "concat": lambda *xs, axis: torch.cat(xs, dim=axis),
        "stack": lambda *xs, axis: torch.stack(xs, dim=axis),
        "where": lambda a, b, condition: torch.where(torch.from_numpy(condition), a, b),
        "log_softmax": lambda x, axis: torch.log_softmax(x, dim=axis),
        "constant": torch.from_numpy,
    }


# ---- programs -----------------------------------------------------------------------
@dataclass
class Instruction:
    """v = ops[op](*operands, **params); an int operand names an earlier value, a float
    is a constant."""
    op: str
    args: tuple
    params: dict = field(default_factory=dict)

    def __str__(self):
        args = [f"v{a}" if isinstance(a, int) else repr(a) for a in self.args]
        args += [f"{k}={_show(v)}" for k, v in self.params.items()]
        return f"{self.op}({', '.join(args)})"


def _show(value):
    if isinstance(value, np.ndarray):
        return f"np.array({value.tolist()})"
    if isinstance(value, tuple):
        trailing_comma = "," if len(value) == 1 else ""
        return "(" + ", ".join(_show(v) for v in value) + trailing_comma + ")"
    return repr(value)


@dataclass
class Program:
    leaves: list         # float64 arrays: the inputs v0 .. v{n-1}
    instructions: list   # v{n}, v{n+1}, ...: one Instruction each
    outputs: list        # indices of the values in the loss
    weights: list        # one fixed array per output: L = sum_j sum(W_j * v_outputs[j])

    def __str__(self):
        lines = [f"v{i} = leaf {x.shape}: {np.array2string(x, precision=17, separator=', ')}"
                 for i, x in enumerate(self.leaves)]
        n = len(self.leaves)
        lines += [f"v{n + k} = {ins}" for k, ins in enumerate(self.instructions)]
        lines.append("L = " + " + ".join(f"sum(W{j} * v{o})"
                                         for j, o in enumerate(self.outputs)))
        return "\n".join(lines)


def make_program(leaves, instructions, also_in_loss=(), rng=None):
    """A Program whose loss takes every value that no instruction consumes (so every
    instruction's VJP is exercised) and the values ``also_in_loss`` (consumed ones add
    fan-in at the loss), weighted by standard normal draws from ``rng``."""
    leaves = [np.asarray(x, dtype=np.float64) for x in leaves]
    instructions = [ins if isinstance(ins, Instruction) else Instruction(*ins)
                    for ins in instructions]
    consumed = {a for ins in instructions for a in ins.args if isinstance(a, int)}
    n_values = len(leaves) + len(instructions)
    outputs = [v for v in range(len(leaves), n_values) if v not in consumed]
    outputs += [v for v in also_in_loss if v not in outputs]
    values = run(Program(leaves, instructions, [], []), [tg.tensor(x) for x in leaves],
                 TINYGRAPH_OPS)
    rng = np.random.default_rng(0) if rng is None else rng
    weights = [rng.standard_normal(values[o].shape) for o in outputs]
    return Program(leaves, instructions, outputs, weights)


def run(program, leaves, ops):
    """Every value of ``program`` (the leaves first), computed with the backend ``ops``."""
    values = list(leaves)
    for ins in program.instructions:
        args = [values[a] if isinstance(a, int) else a for a in ins.args]
        values.append(ops[ins.op](*args, **ins.params))
    return values


def loss(program, values, ops):
    """L = sum_j sum(W_j * v_j) over the program's outputs."""
    total = None
    for o, W in zip(program.outputs, program.weights):
        term = ops["sum"](ops["mul"](values[o], ops["constant"](W)), None, False)
        total = term if total is None else ops["add"](total, term)
    return total


# ---- conditioning ------------------------------------------------------------------
KINK_MARGIN = 1e-3   # relu inputs and max gaps this close to a kink make central differences
                     # meaningless: eps = 1e-6 moved through a chain with gain ~100 crosses it
POSITIVE_FLOOR = 1e-2  # log, division and fractional pow of smaller values are too steep
MAGNITUDE = 1e3      # larger values lose the digits central differences need


def ill_conditioned(program, arrays):
    """Why central differences cannot judge ``program`` at the values ``arrays`` (one
    ndarray per value, leaves first), or None when they can."""
    for k, ins in enumerate(program.instructions):
        v = len(program.leaves) + k
        out = arrays[v]
        if not np.all(np.isfinite(out)) or np.any(np.abs(out) > MAGNITUDE):
            return f"v{v} is not finite or exceeds {MAGNITUDE}"
        x = arrays[ins.args[0]] if isinstance(ins.args[0], int) else None
        if ins.op == "relu" and np.any(np.abs(x) < KINK_MARGIN):
            return f"v{v}: relu input within {KINK_MARGIN} of 0"
        if ins.op == "max" and _near_tie(x, ins.params["axis"]):
            return f"v{v}: two different maxima within {KINK_MARGIN}"
        positive = _positive_operand(ins, arrays)
        if positive is not None and np.min(positive) < POSITIVE_FLOOR:
            return f"v{v}: {ins.op} of a value below {POSITIVE_FLOOR}"
    return None


def _positive_operand(ins, arrays):
    """The operand that log, div or pow needs positive (and steepens near 0), or None."""
    if ins.op == "log":
        return arrays[ins.args[0]]
    if ins.op == "div":
        return arrays[ins.args[1]]
    if ins.op == "pow" and isinstance(ins.args[0], int):
        base, exponent = ins.args
        if not (isinstance(exponent, float) and exponent in INTEGER_EXPONENTS):
            return arrays[base]
    return None


def _near_tie(x, axis):
    """Whether some reduced slice has an entry below its maximum by less than KINK_MARGIN.

    Exact ties are fine: they come from one value used twice (concat([v, v])) or from
    relu's flat zeros, where max is smooth and the tie rule's g/k shares are exact.
    """
    axes = tuple(range(x.ndim)) if axis is None else tuple(
        np.atleast_1d(axis) % max(x.ndim, 1))
    if not axes:
        return False
    kept = [a for a in range(x.ndim) if a not in axes]
    slices = np.transpose(x, kept + list(axes)).reshape(
        int(np.prod([x.shape[a] for a in kept])), -1)
    top = slices.max(axis=1, keepdims=True)
    runner_up = np.where(slices < top, slices, -np.inf).max(axis=1, keepdims=True)
    return bool(np.any(top - runner_up < KINK_MARGIN))


# ---- the generator ------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def shapes_of_size(size, max_dims=MAX_DIMS):
    """Every shape with ``size`` elements and at most ``max_dims`` axes."""
    result = [()] if size == 1 else []
    if max_dims > 0:
        for first in range(1, size + 1):
            if size % first == 0:
                result += [(first,) + rest for rest in shapes_of_size(size // first,
                                                                       max_dims - 1)]
    return result


@st.composite
def leaf_shapes(draw):
    """1-3 shapes that broadcast together: each keeps the trailing axes of one common
    shape and sets some of them to 1. Sometimes a last one is instead a (k,) or (k, m)
    matrix whose k is the common shape's last side, so that matmul finds a partner."""
    ndim = draw(st.sampled_from(range(1, MAX_DIMS + 1)))
    full = tuple(draw(st.sampled_from((2, 3, 1))) for _ in range(ndim))
    result = []
    for _ in range(draw(st.sampled_from((2, 3, 1)))):
        rank = len(full) if draw(st.booleans()) else draw(st.integers(0, len(full)))
        kept = full[len(full) - rank:]
        ones = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
        result.append(tuple(1 if one else n for n, one in zip(kept, ones)))
    if len(result) < 3 and draw(st.booleans()):
        k = full[-1]
        result.append(draw(st.sampled_from([(k,), (k, 1), (k, 2), (k, 3)])))
    return result


class _Builder:
    """Appends instructions while tracking each value's shape and whether it is
    positive by construction."""

    def __init__(self, draw, leaves, rng):
        self.draw, self.rng = draw, rng
        self.shapes = [x.shape for x in leaves]
        self.positive = [False] * len(leaves)
        self.instructions = []
        self.n_leaves = len(leaves)

    def emit(self, op, args, positive=False, **params):
        """Append ``op`` and return its value's index, or None when its result would be
        larger than MAX_SIZE (the instruction is then dropped)."""
        dummies = [tg.tensor(np.ones(self.shapes[a])) if isinstance(a, int) else a
                   for a in args]
        shape = TINYGRAPH_OPS[op](*dummies, **params).shape
        if int(np.prod(shape)) > MAX_SIZE or len(shape) > MAX_DIMS + 1:
            return None
        self.instructions.append(Instruction(op, tuple(args), params))
        self.shapes.append(shape)
        self.positive.append(positive)
        return len(self.shapes) - 1

    def pick(self, where=lambda i: True):
        """Any earlier value satisfying ``where``, or None."""
        candidates = [i for i in range(len(self.shapes)) if where(i)]
        return self.draw(st.sampled_from(candidates)) if candidates else None

    def partner(self, i):
        """An operand to combine elementwise with v_i: usually one of another shape, so
        that broadcasting happens, when there is one."""
        def broadcasts(j):
            return _broadcast(self.shapes[i], self.shapes[j]) is not None
        if self.draw(st.integers(0, 3)):
            other = self.pick(lambda j: broadcasts(j) and self.shapes[j] != self.shapes[i])
            if other is not None:
                return other
        return self.pick(broadcasts)

    def positive_version(self, i):
        """A value built from v_i that is positive by construction (v_i itself if it is)."""
        if self.positive[i]:
            return i
        recipe = self.draw(st.sampled_from(["exp_tanh", "square", "sigmoid"]))
        if recipe == "exp_tanh":
            return self.emit("exp", (self.emit("tanh", (i,)),), positive=True)
        if recipe == "square":
            return self.emit("add", (self.emit("mul", (i, i)), 0.5), positive=True)
        return self.emit("sigmoid", (i,), positive=True)


def _broadcast(*shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        return None


def _elementwise(b, op):
    a = b.pick()
    if b.draw(st.integers(0, 9)) == 0:  # a Python number on either side
        c = b.draw(st.sampled_from(CONSTANTS))
        args = (a, c) if b.draw(st.booleans()) else (c, a)
        return b.emit(op, args, positive=op == "mul" and b.positive[a] and c > 0)
    other = b.partner(a)
    both_positive = b.positive[a] and b.positive[other] and op in ("add", "mul")
    return b.emit(op, (a, other), positive=both_positive)


def _div(b, _):
    a = b.pick()
    denominator = b.positive_version(b.partner(a))
    if b.draw(st.integers(0, 9)) == 0:
        return b.emit("div", (b.draw(st.sampled_from(CONSTANTS)), denominator))
    return b.emit("div", (a, denominator), positive=b.positive[a])


def _pow(b, _):
    a = b.pick()
    kind = b.draw(st.sampled_from(["scalar", "integer", "tensor", "number_base"]))
    if kind == "scalar":
        return b.emit("pow", (b.positive_version(a), b.draw(st.sampled_from(POW_EXPONENTS))),
                      positive=True)
    if kind == "integer":
        return b.emit("pow", (a, b.draw(st.sampled_from(INTEGER_EXPONENTS))))
    if kind == "tensor":
        exponent = b.partner(a)
        return b.emit("pow", (b.positive_version(a), exponent), positive=True)
    return b.emit("pow", (b.draw(st.sampled_from([0.5, 2.0])), a), positive=True)


def _unary(b, op):
    a = b.pick()
    if op == "log":
        a = b.positive_version(a)
    return b.emit(op, (a,), positive=op in ("exp", "sigmoid", "softplus"))


def _matmul(b, _):
    a = b.pick(lambda i: len(b.shapes[i]) >= 1)
    if a is None:
        return None
    right = b.pick(lambda i: _matmul_fits(b.shapes[a], b.shapes[i]))
    if right is None or b.draw(st.booleans()):
        # a @ a^T always fits and uses a twice (for a vector, a @ a = |a|^2)
        ndim = len(b.shapes[a])
        right = a if ndim == 1 else b.emit(
            "transpose", (a,), axes=tuple(range(ndim - 2)) + (ndim - 1, ndim - 2))
    return b.emit("matmul", (a, right))


def _linear(b, _):
    x = b.pick(lambda i: len(b.shapes[i]) >= 1)
    if x is None:
        return None
    features = b.shapes[x][-1]
    W = b.pick(lambda i: len(b.shapes[i]) == 2 and b.shapes[i][1] == features)
    if W is None or b.draw(st.integers(0, 3)) == 0:
        W = b.emit("reshape", (x,), shape=(-1, features))  # x's rows as the weight
    out_shape = b.shapes[x][:-1] + b.shapes[W][:1]
    kind = b.draw(st.sampled_from(["none", "value", "row sums"]))
    bias = None
    if kind == "value":  # any value that broadcasts to the output's shape
        bias = b.pick(lambda i: _broadcast(out_shape, b.shapes[i]) == out_shape)
    elif kind == "row sums":  # shape (out,), and W used twice
        bias = b.emit("sum", (W,), axis=1, keepdims=False)
    return b.emit("linear", (x, W) if bias is None else (x, W, bias))


def _matmul_fits(shape_a, shape_b):
    try:
        np.matmul(np.empty(shape_a), np.empty(shape_b))
    except ValueError:
        return False
    return True


def _reduction_op(b, op):
    a = b.pick()
    ndim = len(b.shapes[a])
    if op == "max" and ndim and b.draw(st.integers(0, 3)) == 0:
        # every slice along the new axis ties with its copy: max must split g
        doubled = b.emit("concat", (a, a), axis=b.draw(st.integers(-ndim, ndim - 1)))
        a = a if doubled is None else doubled
    axis = None
    if ndim:
        axis = b.draw(st.none() | st.integers(-ndim, ndim - 1)
                      | st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                                 unique=True).map(tuple))
    return b.emit(op, (a,), positive=b.positive[a], axis=axis,
                  keepdims=b.draw(st.booleans()))


def _reshape(b, _):
    a = b.pick()
    shape = b.draw(st.sampled_from(shapes_of_size(int(np.prod(b.shapes[a])))))
    if shape and b.draw(st.booleans()):  # let reshape infer one side
        position = b.draw(st.integers(0, len(shape) - 1))
        shape = shape[:position] + (-1,) + shape[position + 1:]
    return b.emit("reshape", (a,), positive=b.positive[a], shape=shape)


def _transpose(b, _):
    # only three or more axes have permutations that are not their own inverse
    a = b.pick(lambda i: len(b.shapes[i]) >= 3)
    a = b.pick() if a is None else a
    ndim = len(b.shapes[a])
    identity = tuple(range(ndim))
    axes = tuple(b.draw(st.permutations(identity)))
    if axes == identity:  # a rotation instead: the identity tests nothing
        axes = identity[1:] + identity[:1]
    if b.draw(st.integers(0, 4)) == 0:
        axes = None  # reversed, as .T
    return b.emit("transpose", (a,), positive=b.positive[a], axes=axes)


def _getitem(b, _):
    a = b.pick(lambda i: len(b.shapes[i]) >= 1)
    if a is None:
        return None
    shape = b.shapes[a]
    axis = b.draw(st.integers(0, len(shape) - 1))
    n = shape[axis]
    kind = b.draw(st.sampled_from(["slice", "int", "array"]))
    if kind == "slice":
        start = b.draw(st.integers(0, n - 1))
        part = slice(start, b.draw(st.integers(start + 1, n)), b.draw(st.integers(1, 2)))
    elif kind == "int":
        part = b.draw(st.integers(-n, n - 1))
    else:  # with a repeat, half the time: the repeated places' gradients must add up
        chosen = b.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=3))
        part = np.array(chosen + chosen[:1] if b.draw(st.booleans()) else chosen)
    index = (slice(None),) * axis + (part,)
    return b.emit("getitem", (a,), positive=b.positive[a],
                  index=index if len(index) > 1 else part)


def _join(b, op):
    a = b.pick(lambda i: op == "stack" or len(b.shapes[i]) >= 1)
    if a is None:
        return None
    shape = b.shapes[a]
    ndim = len(shape)
    if op == "stack":
        axis = b.draw(st.integers(-ndim - 1, ndim))
        fits = lambda i: b.shapes[i] == shape
    else:
        axis = b.draw(st.integers(-ndim, ndim - 1))
        fits = lambda i: (len(b.shapes[i]) == ndim and all(
            p == q for k, (p, q) in enumerate(zip(b.shapes[i], shape)) if k != axis % ndim))
    others = [b.pick(fits) for _ in range(b.draw(st.integers(1, 2)))]
    if op == "concat" and b.draw(st.booleans()):
        # a part of another length along the axis, so each input's slice of g differs
        k = axis % ndim
        others[0] = b.emit("getitem", (others[0],),
                           index=(slice(None),) * k + (slice(0, 1),))
    args = (a, *others)
    return b.emit(op, args, positive=all(b.positive[i] for i in args), axis=axis)


def _where(b, _):
    a = b.pick()
    other = b.partner(a)
    full = _broadcast(b.shapes[a], b.shapes[other])
    rank = b.draw(st.integers(0, len(full)))
    mask_shape = tuple(1 if b.draw(st.booleans()) else n for n in full[len(full) - rank:])
    condition = np.asarray(b.rng.random(mask_shape) < 0.5)
    return b.emit("where", (a, other), positive=b.positive[a] and b.positive[other],
                  condition=condition)


def _log_softmax(b, _):
    a = b.pick(lambda i: len(b.shapes[i]) >= 1)
    if a is None:
        return None
    ndim = len(b.shapes[a])
    return b.emit("log_softmax", (a,), axis=b.draw(st.integers(-ndim, ndim - 1)))


GENERATORS = {
    "add": _elementwise, "sub": _elementwise, "mul": _elementwise, "div": _div,
    "neg": _unary, "exp": _unary, "log": _unary, "tanh": _unary, "sigmoid": _unary,
    "relu": _unary, "softplus": _unary, "pow": _pow, "matmul": _matmul, "linear": _linear,
    "sum": _reduction_op, "mean": _reduction_op, "max": _reduction_op,
    "reshape": _reshape, "transpose": _transpose, "getitem": _getitem,
    "concat": _join, "stack": _join, "where": _where, "log_softmax": _log_softmax,
}


@st.composite
def programs(draw, max_instructions=8):
    """A random program: 1-3 leaves, 1-``max_instructions`` ops (each possibly preceded
    by the primitives that make its operand positive), and a weighted-sum loss."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    leaves = [rng.standard_normal(shape) for shape in draw(leaf_shapes())]
    b = _Builder(draw, leaves, rng)
    # sampled_from draws the count uniformly; st.integers would favour short programs
    for _ in range(draw(st.sampled_from(range(1, max_instructions + 1)))):
        op = draw(st.sampled_from(sorted(GENERATORS)))
        if GENERATORS[op](b, op) is not None and draw(st.integers(0, 3)) == 0:
            # The same instruction again: two nodes with the same inputs stay two nodes
            # (identity, not structure), and both of their gradients reach the inputs.
            ins = b.instructions[-1]
            b.emit(ins.op, ins.args, positive=b.positive[-1], **ins.params)
    if not b.instructions:  # every draw was too large: fall back to one safe op
        b.emit("tanh", (b.pick(),))
    extra = draw(st.lists(st.sampled_from(range(b.n_leaves, len(b.shapes))), max_size=2,
                          unique=True))
    return make_program(leaves, b.instructions, extra, rng)
