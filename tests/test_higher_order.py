"""Gradients of gradients: every op's VJP, recorded with ``create_graph=True``, is itself
differentiable, and ``tg.grad``, ``tg.hvp`` and ``tg.jvp`` built on it are right.

Each op case below is a hypothesis strategy giving the same function twice, for
tinygraph and for torch, and the float64 arrays to run it on (zero-size shapes where
the op allows them). Its second-order gradient, the gradient of sum(first_grad * w)
with the first gradient v^T J, is checked against central differences of the first
gradient (``tg.gradgradcheck``) and against torch's ``autograd.grad`` taken twice.
Ops that are linear in their inputs (add, sum, getitem, ...) have no second derivative
of their own, so their cases square the output: the second pass then runs through
the op's recorded VJP and through that VJP's VJP.
"""
from typing import Callable, NamedTuple

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import tinygraph as tg
import tinygraph.functional as F
from tinygraph.engine import Op, observing
from test_ops_gradients import (SEEDS, away_from_zero, broadcastable_shapes, concat_shapes,
                                distinct, linear_shapes, matmul_shapes, normal,
                                permutations_of_axes, positive, requires_grad_flags, shapes)

try:  # the torch oracles are skipped one by one (pytest.importorskip) when it is missing
    import torch
except ImportError:
    torch = None

TORCH_TOLERANCE = dict(rtol=1e-10, atol=1e-10)
DIFFERENCE_TOLERANCE = dict(rtol=1e-6, atol=1e-7)  # central differences with eps ~1e-6


# ---- cases: one function in both libraries, and its inputs ------------------------------
class Case(NamedTuple):
    ours: Callable       # on tinygraph tensors
    theirs: Callable     # the same on torch tensors
    arrays: list         # float64 inputs
    flags: tuple = None  # which inputs require grad (None: all)

    def requires_grad(self):
        return self.flags or (True,) * len(self.arrays)

    def tg_inputs(self):
        return [tg.tensor(a.copy(), requires_grad=f)
                for a, f in zip(self.arrays, self.requires_grad())]

    def torch_inputs(self):
        return [torch.tensor(a, dtype=torch.float64, requires_grad=f)
                for a, f in zip(self.arrays, self.requires_grad())]


def squared(f):
    """y * y for y = f(...): gives a linear op a second derivative that runs through its VJP."""
    def square_of(*xs):
        y = f(*xs)
        return y * y
    return square_of


def empty_shapes(max_dims=3):
    """Shapes with at least one zero-length axis."""
    return hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=0, max_side=3).filter(
        lambda s: 0 in s)


def any_shapes():
    """Ordinary shapes (0-d included) and, less often, zero-size ones."""
    return st.one_of(shapes(), shapes(), empty_shapes())


@st.composite
def broadcastable_pairs(draw, num_shapes=2):
    """broadcastable_shapes, and sometimes the same with one common axis of length 0
    (a 1 on that axis still broadcasts)."""
    result = draw(broadcastable_shapes(num_shapes=num_shapes))
    longest = max(len(s) for s in result)
    if longest and draw(st.booleans()):
        back = draw(st.integers(1, longest))  # the axis, counted from the right
        result = [s[:len(s) - back] + (0 if s[-back] != 1 else 1,) + s[len(s) - back + 1:]
                  if len(s) >= back else s for s in result]
    return result


@st.composite
def elementwise_binary(draw, ours, theirs, denominator=normal, numerator=normal,
                       square=False):
    shape_a, shape_b = draw(broadcastable_pairs())
    seed = draw(SEEDS)
    f = squared(ours) if square else ours
    g = squared(theirs) if square else theirs
    return Case(f, g, [numerator(seed, shape_a), denominator(seed + 1, shape_b)],
                tuple(draw(requires_grad_flags(2))))


@st.composite
def unary(draw, ours, theirs, data=normal, square=False, allow_empty=True):
    shape = draw(any_shapes() if allow_empty else shapes(empty=False))
    f, g = (squared(ours), squared(theirs)) if square else (ours, theirs)
    return Case(f, g, [data(draw(SEEDS), shape)])


@st.composite
def pow_number_exponent(draw):
    exponent = draw(st.sampled_from([0, 1, 2, 3, -1, -2, 0.5, 2.7]))
    shape = draw(any_shapes())
    return Case(lambda x: x ** exponent, lambda x: x ** exponent,
                [positive(draw(SEEDS), shape)])


EMPTY_MATMULS = [((0, 3), (3, 2)), ((2, 0), (0, 3)), ((3,), (3, 0)), ((2, 0, 3), (3, 1)),
                 ((0,), (0,))]


@st.composite
def matmul_case(draw):
    shape_a, shape_b = draw(matmul_shapes() | st.sampled_from(EMPTY_MATMULS))
    seed = draw(SEEDS)
    # bilinear: the second derivative couples a and b; squaring adds one through each
    return Case(squared(tg.matmul), squared(lambda a, b: torch.matmul(a, b)),
                [normal(seed, shape_a), normal(seed + 1, shape_b)],
                tuple(draw(requires_grad_flags(2))))


@st.composite
def linear_case(draw):
    # torch's F.linear takes only a 1-D bias
    x_shape, W_shape, b_shape = draw(
        linear_shapes().filter(lambda s: s[2] is None or len(s[2]) == 1))
    seed = draw(SEEDS)
    arrays = [normal(seed, x_shape), normal(seed + 1, W_shape)]
    if b_shape is not None:
        arrays.append(normal(seed + 2, b_shape))
    return Case(squared(tg.linear), squared(lambda *a: torch.nn.functional.linear(*a)),
                arrays)


@st.composite
def shape_and_axis(draw, allow_empty=True):
    """A shape and a reduction axis: None, an int or a tuple, negatives included."""
    shape = draw(any_shapes() if allow_empty else shapes(empty=False))
    if not shape:
        return shape, None
    ndim = len(shape)
    return shape, draw(st.none() | st.integers(-ndim, ndim - 1)
                       | hnp.valid_tuple_axes(ndim, min_size=1))


def torch_dims(axis, ndim):
    """A NumPy axis as torch's dim (torch reads dim=() as every axis)."""
    return tuple(range(ndim)) if axis is None else axis


@st.composite
def reduction(draw, ours, theirs, data=normal, allow_empty=True):
    shape, axis = draw(shape_and_axis(allow_empty))
    keepdims = draw(st.booleans())
    dims = torch_dims(axis, len(shape))
    return Case(squared(lambda x: ours(x, axis=axis, keepdims=keepdims)),
                squared(lambda x: theirs(x, dims, keepdims)),
                [data(draw(SEEDS), shape)])


@st.composite
def reshape_case(draw):
    shape = draw(any_shapes())
    size = int(np.prod(shape))
    new_shape = draw(st.sampled_from([shape[::-1], (-1,), (1,) + shape + (1,), (size, 1)]))
    return Case(squared(lambda x: tg.reshape(x, new_shape)),
                squared(lambda x: x.reshape(new_shape)), [normal(draw(SEEDS), shape)])


@st.composite
def permute_case(draw):
    shape, axes = draw(permutations_of_axes())
    if draw(st.booleans()):  # no axes: reversed
        return Case(squared(lambda x: x.transpose()),
                    squared(lambda x: x.permute(tuple(range(x.ndim))[::-1])),
                    [normal(draw(SEEDS), shape)])
    return Case(squared(lambda x: tg.permute(x, axes)), squared(lambda x: x.permute(axes)),
                [normal(draw(SEEDS), shape)])


@st.composite
def getitem_case(draw):
    """Basic indices (torch has no negative steps), repeated integer arrays, masks."""
    shape = draw(shapes(min_dims=1, empty=False))  # (an integer index needs a place)
    seed = draw(SEEDS)
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["basic", "integers", "mask"]))
    if kind == "basic":
        index = draw(hnp.basic_indices(shape, allow_newaxis=True))
        parts = index if isinstance(index, tuple) else (index,)
        index = tuple(slice(p.start, p.stop) if isinstance(p, slice) and p.step is not None
                      and p.step < 0 else p for p in parts)
        theirs = index
    elif kind == "integers":
        picks = rng.integers(-shape[0], shape[0], draw(st.integers(1, 4)))
        index = np.append(picks, picks[0])  # one place picked twice
        theirs = lambda: torch.from_numpy(index)
    else:
        index = rng.random(shape[:draw(st.integers(1, len(shape)))]) < 0.5
        theirs = lambda: torch.from_numpy(index)
    return Case(squared(lambda x: x[index]),
                squared(lambda x: x[theirs() if callable(theirs) else theirs]),
                [normal(seed, shape)])


@st.composite
def concat_case(draw):
    input_shapes, axis = draw(concat_shapes())
    seed = draw(SEEDS)
    return Case(squared(lambda *xs: tg.concat(xs, axis=axis)),
                squared(lambda *xs: torch.cat(xs, dim=axis)),
                [normal(seed + i, s) for i, s in enumerate(input_shapes)],
                tuple(draw(requires_grad_flags(len(input_shapes)))))


@st.composite
def stack_case(draw):
    shape = draw(any_shapes())
    count = draw(st.integers(1, 3))
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    seed = draw(SEEDS)
    return Case(squared(lambda *xs: tg.stack(xs, axis=axis)),
                squared(lambda *xs: torch.stack(xs, dim=axis)),
                [normal(seed + i, shape) for i in range(count)],
                tuple(draw(requires_grad_flags(count))))


@st.composite
def where_case(draw):
    shape_condition, shape_a, shape_b = draw(broadcastable_pairs(num_shapes=3))
    seed = draw(SEEDS)
    condition = np.asarray(np.random.default_rng(seed).random(shape_condition) < 0.5)
    return Case(squared(lambda a, b: tg.where(condition, a, b)),
                squared(lambda a, b: torch.where(torch.from_numpy(condition), a, b)),
                [normal(seed + 1, shape_a), normal(seed + 2, shape_b)],
                tuple(draw(requires_grad_flags(2))))


@st.composite
def along_an_axis(draw, ours, theirs):
    """log_softmax and softmax: any shape with at least one axis, any axis."""
    shape = draw(shapes(min_dims=1) | empty_shapes())
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    if shape[axis] == 0:  # zero-size is fine, but not along the softmax's own axis
        shape = tuple(3 if i == axis % len(shape) else n for i, n in enumerate(shape))
    return Case(lambda x: ours(x, axis), lambda x: theirs(x, axis),
                [2 * normal(draw(SEEDS), shape)])


@st.composite
def broadcast_to_case(draw):
    shape, _ = draw(broadcastable_pairs())
    target = draw(st.sampled_from([(2,) + shape, (1, 3) + shape])) if not shape else (
        (2,) + tuple(3 if n == 1 else n for n in shape))
    return Case(squared(lambda x: tg.broadcast_to(x, target)),
                squared(lambda x: torch.broadcast_to(x, target)),
                [normal(draw(SEEDS), shape)])


@st.composite
def cross_entropy_case(draw):
    leading = draw(st.sampled_from([(1,), (4,), (2, 3)]))
    n_classes = draw(st.integers(1, 4))
    reduction_ = draw(st.sampled_from(["mean", "sum", "none"]))
    seed = draw(SEEDS)
    targets = np.random.default_rng(seed).integers(0, n_classes, leading)

    def theirs(logits):
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, n_classes), torch.from_numpy(targets.reshape(-1)),
            reduction=reduction_)
        return loss.reshape(leading) if reduction_ == "none" else loss

    return Case(lambda logits: F.cross_entropy(logits, targets, reduction=reduction_),
                theirs, [2 * normal(seed, leading + (n_classes,))])


@st.composite
def mse_case(draw):
    shape = draw(any_shapes())
    reduction_ = draw(st.sampled_from(["mean", "sum", "none"]))
    seed = draw(SEEDS)
    return Case(lambda x, y: F.mse_loss(x, y, reduction=reduction_),
                lambda x, y: torch.nn.functional.mse_loss(x, y, reduction=reduction_),
                [normal(seed, shape), normal(seed + 1, shape)],
                tuple(draw(requires_grad_flags(2))))


@st.composite
def bce_with_logits_case(draw):
    shape = draw(any_shapes())
    reduction_ = draw(st.sampled_from(["mean", "sum", "none"]))
    seed = draw(SEEDS)
    return Case(
        lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction=reduction_),
        lambda x, y: torch.nn.functional.binary_cross_entropy_with_logits(
            x, y, reduction=reduction_),
        [3 * normal(seed, shape), np.random.default_rng(seed + 1).random(shape)],
        tuple(draw(requires_grad_flags(2))))


def _t(name):
    """torch.<name>, looked up when the torch oracle runs (so no torch is needed here)."""
    return lambda *args, **kwargs: getattr(torch, name)(*args, **kwargs)


CASES = {
    "add": elementwise_binary(tg.add, _t("add"), square=True),
    "sub": elementwise_binary(tg.sub, _t("sub"), square=True),
    "mul": elementwise_binary(tg.mul, _t("mul")),
    "div": elementwise_binary(tg.div, _t("div"), denominator=away_from_zero),
    "pow_tensor_exponent": elementwise_binary(tg.pow, _t("pow"), numerator=positive),
    "pow_number_exponent": pow_number_exponent(),
    "matmul": matmul_case(),
    "linear": linear_case(),
    "neg": unary(tg.neg, _t("neg"), square=True),
    "exp": unary(tg.exp, _t("exp")),
    "log": unary(tg.log, _t("log"), data=positive),
    "tanh": unary(tg.tanh, _t("tanh")),
    "sigmoid": unary(lambda x: tg.sigmoid(3 * x), lambda x: torch.sigmoid(3 * x)),
    "relu": unary(tg.relu, _t("relu"), data=away_from_zero, square=True),
    "softplus": unary(lambda x: tg.softplus(3 * x),
                      lambda x: torch.nn.functional.softplus(3 * x)),
    "sum": reduction(tg.sum, _t("sum")),
    "mean": reduction(tg.mean, _t("mean")),
    "max": reduction(tg.max, _t("amax"), data=distinct, allow_empty=False),
    "reshape": reshape_case(),
    "transpose_permute": permute_case(),
    "getitem": getitem_case(),
    "concat": concat_case(),
    "stack": stack_case(),
    "where": where_case(),
    "log_softmax": along_an_axis(tg.log_softmax, _t("log_softmax")),
    "broadcast_to": broadcast_to_case(),
    "softmax": along_an_axis(F.softmax, _t("softmax")),
    "cross_entropy": cross_entropy_case(),
    "mse_loss": mse_case(),
    "bce_with_logits": bce_with_logits_case(),
}


# ---- the second-order gradient, the same way in both libraries --------------------------
def second_order(grad, inputs, out, v, w, zeros):
    """(first gradient v^T J, gradient of sum(first * w)) with respect to ``inputs``,
    by ``grad`` (tg.grad or torch.autograd.grad); zeros where an input is unused."""
    first = grad([out], inputs, [v], create_graph=True, allow_unused=True)
    first = [zeros(x) if g is None else g for g, x in zip(first, inputs)]
    terms = [(g * wi).sum() for g, wi in zip(first, w) if g.requires_grad]
    if not terms:  # the first gradient does not depend on the inputs
        return first, [zeros(x) for x in inputs]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    second = grad([total], inputs, allow_unused=True)
    return first, [zeros(x) if g is None else g for g, x in zip(second, inputs)]


def from_numpy(arrays):
    """torch tensors sharing the arrays (NumPy scalars become 0-d arrays first)."""
    return tuple(torch.from_numpy(np.asarray(a)) for a in arrays)


def random_like(shapes_, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in shapes_]


def check_second_derivative_against_central_differences(case):
    """The case's second derivative against central differences of its first gradient
    (test_second_derivatives.py runs it on every case)."""
    assert tg.gradgradcheck(case.ours, case.tg_inputs())


def check_second_derivative_against_torch(case):
    """The case's value, first gradient and second derivative against torch's
    ``autograd.grad`` taken twice (test_second_derivatives.py runs it on every case)."""
    pytest.importorskip("torch")
    ours, theirs = case.tg_inputs(), case.torch_inputs()
    out, expected = case.ours(*ours), case.theirs(*theirs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TORCH_TOLERANCE)
    wanted = [i for i, f in enumerate(case.requires_grad()) if f]
    v, *w = random_like([out.shape] + [case.arrays[i].shape for i in wanted], seed=7)
    first, second = second_order(
        tg.grad, [ours[i] for i in wanted], out, tg.tensor(v), [tg.tensor(a) for a in w],
        lambda x: tg.tensor(np.zeros(x.shape)))
    first_t, second_t = second_order(
        torch.autograd.grad, [theirs[i] for i in wanted], expected, *from_numpy([v]),
        from_numpy(w), torch.zeros_like)
    for g, g_t in zip(first + second, first_t + second_t):
        assert g.shape == tuple(g_t.shape)
        np.testing.assert_allclose(g.data, g_t.detach().numpy(), **TORCH_TOLERANCE)


def test_second_derivative_of_x_to_the_zero_is_zero_at_zero_as_in_torch():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    (first,) = tg.grad((x ** 0).sum(), x, create_graph=True)
    (second,) = tg.grad(first.sum(), x)  # once nan at 0: 0 ** -1 = inf inside the VJP
    np.testing.assert_array_equal(second.data, [0.0, 0.0])


def test_pow_hessian_at_a_zero_base_is_the_limit_of_its_closed_form():
    # f = sum(a^b): d2f/da2 = b (b-1) a^(b-2), 2 at (0, 2) and 0 at (0, 3);
    # d2f/da db = a^(b-1) (1 + b log a) and d2f/db2 = a^b log^2 a both tend to 0 as a -> 0
    # (torch gives nan for the last two, from 0 * log 0 inside its VJP)
    a, b = np.array([0.0, 0.0]), np.array([2.0, 3.0])
    ones, zeros = np.ones(2), np.zeros(2)
    _, (h_aa, h_ba) = tg.hvp(lambda a, b: (a ** b).sum(), [a, b], [ones, zeros])
    _, (h_ab, h_bb) = tg.hvp(lambda a, b: (a ** b).sum(), [a, b], [zeros, ones])
    np.testing.assert_array_equal(h_aa.data, [2.0, 0.0])
    for h in (h_ba, h_ab, h_bb):
        np.testing.assert_array_equal(h.data, [0.0, 0.0])


# ---- tanh to the fourth order ------------------------------------------------------------
def tanh_derivatives(x):
    """d^k tanh / dx^k for k = 1..4, with t = tanh x and s = 1 - t^2 = t':
    d1 = s, d2 = -2 t s, d3 = (6 t^2 - 2) s, d4 = -8 t (3 t^2 - 2) s
    (each the previous differentiated with t' = s and s' = -2 t s)."""
    t = np.tanh(x)
    s = 1 - t * t
    return [s, -2 * t * s, (6 * t * t - 2) * s, -8 * t * (3 * t * t - 2) * s]


def test_repeated_grad_of_tanh_gives_its_closed_form_derivatives_to_the_fourth_order():
    x_values = np.linspace(-3, 3, 13)
    x = tg.tensor(x_values, requires_grad=True)
    y, derivatives = tg.tanh(x), []
    for _ in range(4):
        (y,) = tg.grad(y.sum(), x, create_graph=True)
        derivatives.append(y.data)
    for got, expected in zip(derivatives, tanh_derivatives(x_values)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


def test_tanh_closed_form_derivatives_equal_torch_to_the_fourth_order():
    torch = pytest.importorskip("torch")
    x_values = np.linspace(-3, 3, 13)
    x = torch.tensor(x_values, requires_grad=True)
    y, derivatives = torch.tanh(x), []
    for _ in range(4):
        (y,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        derivatives.append(y.detach().numpy())
    for got, expected in zip(derivatives, tanh_derivatives(x_values)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


# ---- hvp of a small MLP -----------------------------------------------------------------
def mlp_inputs(seed=0):
    """x (5, 3), W1 (4, 3), b1 (4,), W2 (2, 4), b2 (2,)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in [(5, 3), (4, 3), (4,), (2, 4), (2,)]]


TARGETS = np.array([0, 1, 1, 0, 1])
REGRESSION_TARGETS = np.random.default_rng(3).standard_normal((5, 2))


def mlp_loss(loss):
    def f(x, W1, b1, W2, b2):
        logits = tg.linear(tg.tanh(tg.linear(x, W1, b1)), W2, b2)
        if loss == "cross_entropy":
            return F.cross_entropy(logits, TARGETS)
        return F.mse_loss(logits, REGRESSION_TARGETS)
    return f


def torch_mlp_loss(loss):
    def f(x, W1, b1, W2, b2):
        linear = torch.nn.functional.linear
        logits = linear(torch.tanh(linear(x, W1, b1)), W2, b2)
        if loss == "cross_entropy":
            return torch.nn.functional.cross_entropy(logits, torch.from_numpy(TARGETS))
        return torch.nn.functional.mse_loss(logits, torch.from_numpy(REGRESSION_TARGETS))
    return f


def gradient_at(f, arrays):
    xs = [tg.tensor(a, requires_grad=True) for a in arrays]
    return [g.data for g in tg.grad(f(*xs), xs)]


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_hvp_of_an_mlp_loss_equals_central_differences_of_its_gradient(loss):
    f, arrays, eps = mlp_loss(loss), mlp_inputs(), 1e-5
    v = random_like([a.shape for a in arrays], seed=1)
    value, hv = tg.hvp(f, [tg.tensor(a) for a in arrays], v)
    plus = gradient_at(f, [a + eps * d for a, d in zip(arrays, v)])
    minus = gradient_at(f, [a - eps * d for a, d in zip(arrays, v)])
    assert value.item() == pytest.approx(f(*[tg.tensor(a) for a in arrays]).item(), rel=1e-15)
    for h, p, m in zip(hv, plus, minus):
        np.testing.assert_allclose(h.data, (p - m) / (2 * eps), **DIFFERENCE_TOLERANCE)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_hvp_of_an_mlp_loss_equals_torch_functional_hvp(loss):
    torch = pytest.importorskip("torch")
    arrays = mlp_inputs()
    v = random_like([a.shape for a in arrays], seed=1)
    value, hv = tg.hvp(mlp_loss(loss), arrays, v)
    expected_value, expected = torch.autograd.functional.hvp(
        torch_mlp_loss(loss), from_numpy(arrays), from_numpy(v))
    np.testing.assert_allclose(value.data, expected_value.numpy(), **TORCH_TOLERANCE)
    for h, h_t in zip(hv, expected):
        np.testing.assert_allclose(h.data, h_t.numpy(), **TORCH_TOLERANCE)


def test_hvp_of_a_function_linear_in_its_input_is_zero():
    _, (hv,) = tg.hvp(lambda x: (x * 3.0).sum(), [np.ones(4)], [np.ones(4)])
    np.testing.assert_array_equal(hv.data, np.zeros(4))


# ---- jvp -------------------------------------------------------------------------------
# tg.jvp runs on every op case (multi-input, non-scalar outputs, zero-size), and on the MLP
def value_of(f, arrays):
    with tg.no_grad():
        return f(*[tg.tensor(a) for a in arrays]).data


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_jvp_equals_central_differences_along_the_tangent(name, data):
    case = data.draw(CASES[name])
    eps = 1e-6
    tangents = random_like([a.shape for a in case.arrays], seed=5)
    value, jt = tg.jvp(case.ours, case.arrays, tangents)
    assume(np.isfinite(value.data).all())  # (the mean of nothing: no derivative to take)
    plus = value_of(case.ours, [a + eps * t for a, t in zip(case.arrays, tangents)])
    minus = value_of(case.ours, [a - eps * t for a, t in zip(case.arrays, tangents)])
    np.testing.assert_allclose(value.data, value_of(case.ours, case.arrays), rtol=1e-15)
    assert jt.shape == value.shape
    np.testing.assert_allclose(jt.data, (plus - minus) / (2 * eps), **DIFFERENCE_TOLERANCE)


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_jvp_equals_torch_forward_mode(name, data):
    pytest.importorskip("torch")
    case = data.draw(CASES[name])
    tangents = random_like([a.shape for a in case.arrays], seed=5)
    value, jt = tg.jvp(case.ours, case.arrays, tangents)
    # torch's forward mode gives nan for the mean of nothing, its reverse mode (and ours) 0
    assume(np.isfinite(value.data).all())
    expected_value, expected = torch.func.jvp(
        case.theirs, from_numpy(case.arrays), from_numpy(tangents))
    np.testing.assert_allclose(value.data, expected_value.numpy(), **TORCH_TOLERANCE)
    np.testing.assert_allclose(jt.data, expected.numpy(), **TORCH_TOLERANCE)


def test_jvp_of_an_mlp_equals_torch_autograd_functional_jvp():
    torch = pytest.importorskip("torch")
    arrays = mlp_inputs()
    tangents = random_like([a.shape for a in arrays], seed=2)

    def logits(x, W1, b1, W2, b2):
        return F.softmax(tg.linear(tg.tanh(tg.linear(x, W1, b1)), W2, b2))

    def torch_logits(x, W1, b1, W2, b2):
        linear = torch.nn.functional.linear
        return torch.softmax(linear(torch.tanh(linear(x, W1, b1)), W2, b2), -1)

    _, jt = tg.jvp(logits, arrays, tangents)
    _, expected = torch.autograd.functional.jvp(
        torch_logits, from_numpy(arrays), from_numpy(tangents))
    np.testing.assert_allclose(jt.data, expected.numpy(), **TORCH_TOLERANCE)


def test_jvp_of_a_function_that_ignores_its_input_is_zero_as_in_torch():
    value, jt = tg.jvp(lambda x: tg.tensor(np.ones(3)) * 2.0, [np.ones(2)], [np.ones(2)])
    np.testing.assert_array_equal(value.data, [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(jt.data, np.zeros(3))


def test_hvp_of_a_function_that_ignores_its_input_is_zero_as_in_torch():
    value, (hv,) = tg.hvp(lambda x: tg.tensor(2.0) * 3.0, [np.ones(2)], [np.ones(2)])
    assert value.item() == 6.0
    np.testing.assert_array_equal(hv.data, np.zeros(2))


# ---- tg.grad follows torch.autograd.grad --------------------------------------------------
def two_outputs():
    """x, y leaves; outputs u = sum(x * y), w = tanh(x) * 2 (a vector)."""
    x = tg.tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = tg.tensor([1.5, 0.25, -0.75], requires_grad=True)
    return x, y, (x * y).sum(), tg.tanh(x) * 2.0


def test_grad_of_several_outputs_sums_their_gradients_for_each_input():
    x, y, u, w = two_outputs()
    g_w = np.array([1.0, -2.0, 0.5])
    gx, gy = tg.grad([u, w], [x, y], grad_outputs=[None, g_w])
    t = np.tanh(x.data)
    np.testing.assert_allclose(gx.data, y.data + 2 * (1 - t * t) * g_w, rtol=1e-15)
    np.testing.assert_allclose(gy.data, x.data, rtol=1e-15)


def test_grad_takes_grad_outputs_as_arrays_or_tensors_alike():
    x, y, u, w = two_outputs()
    g_w = np.array([1.0, -2.0, 0.5])
    from_array = tg.grad(w, [x], grad_outputs=g_w, retain_graph=True)
    from_tensor = tg.grad(w, [x], grad_outputs=tg.tensor(g_w), retain_graph=True)
    from_list = tg.grad([w], [x], grad_outputs=[tg.tensor(g_w)])
    for result in (from_tensor, from_list):
        np.testing.assert_array_equal(result[0].data, from_array[0].data)


def test_grad_of_several_outputs_and_inputs_equals_torch():
    torch = pytest.importorskip("torch")
    x, y, u, w = two_outputs()
    g_w = np.array([1.0, -2.0, 0.5])
    ours = tg.grad([u, w], [x, y], grad_outputs=[np.array(1.0), g_w])
    xt = torch.tensor(x.data, requires_grad=True)
    yt = torch.tensor(y.data, requires_grad=True)
    theirs = torch.autograd.grad([(xt * yt).sum(), torch.tanh(xt) * 2.0], [xt, yt],
                                 grad_outputs=[torch.tensor(1.0, dtype=torch.float64),
                                               torch.from_numpy(g_w)])
    for g, g_t in zip(ours, theirs):
        np.testing.assert_allclose(g.data, g_t.numpy(), **TORCH_TOLERANCE)


def test_grad_with_fewer_grad_outputs_than_outputs_raises_as_torch():
    x, y, u, w = two_outputs()
    with pytest.raises(RuntimeError, match="2 outputs but 1 grad_outputs"):
        tg.grad([u, w], [x], grad_outputs=[None])


def test_grad_with_respect_to_an_intermediate_tensor_gives_its_gradient():
    x = tg.tensor([0.5, -1.0], requires_grad=True)
    h = x * 3.0
    (gh,) = tg.grad((tg.tanh(h) * h).sum(), [h])
    t = np.tanh(h.data)
    np.testing.assert_allclose(gh.data, (1 - t * t) * h.data + t, rtol=1e-15)


def test_grad_leaves_the_inputs_grad_untouched():
    x, y, u, _ = two_outputs()
    x.grad = np.array([7.0, 7.0, 7.0])
    tg.grad(u, [x, y])
    np.testing.assert_array_equal(x.grad, [7.0, 7.0, 7.0])
    assert y.grad is None


def test_grad_frees_the_graph_by_default_so_a_second_call_raises():
    x, _, u, _ = two_outputs()
    tg.grad(u, [x])
    with pytest.raises(tg.GraphFreedError):
        tg.grad(u, [x])


def test_grad_with_retain_graph_can_run_twice_and_gives_the_same_gradient():
    x, _, u, _ = two_outputs()
    (first,) = tg.grad(u, [x], retain_graph=True)
    (second,) = tg.grad(u, [x])
    np.testing.assert_array_equal(first.data, second.data)


def test_grad_with_create_graph_retains_the_graph():
    x, _, _, w = two_outputs()
    (first,) = tg.grad(w.sum(), [x], create_graph=True)
    (again,) = tg.grad(w.sum(), [x])
    np.testing.assert_array_equal(first.data, again.data)


def test_grad_of_an_unused_input_raises_naming_allow_unused():
    x, y, _, w = two_outputs()
    with pytest.raises(RuntimeError, match="allow_unused=True"):
        tg.grad(w.sum(), [x, y])


def test_grad_of_an_unused_input_is_none_with_allow_unused():
    x, y, _, w = two_outputs()
    gx, gy = tg.grad(w.sum(), [x, y], allow_unused=True)
    assert gy is None
    np.testing.assert_allclose(gx.data, 2 * (1 - np.tanh(x.data) ** 2), rtol=1e-15)


def test_grad_without_create_graph_gives_tensors_that_do_not_require_grad():
    x, y, u, _ = two_outputs()
    gx, gy = tg.grad(u, [x, y])
    assert not gx.requires_grad and not gy.requires_grad


def test_grad_with_create_graph_gives_tensors_in_a_graph_of_their_own():
    x, y, u, _ = two_outputs()
    gx, gy = tg.grad(u, [x, y], create_graph=True)
    assert gx.requires_grad and not gx.is_leaf
    (gxy,) = tg.grad(gx.sum(), [y])  # d/dy sum(d u/dx) = d/dy sum(y) = 1
    np.testing.assert_array_equal(gxy.data, np.ones(3))


def cube_with_grad_from_backward():
    """x, and x.grad = 3 x^2 left by backward(create_graph=True) of sum(x^3)."""
    x = tg.tensor([0.3, 0.7, -1.2], requires_grad=True)
    (x * x * x).sum().backward(create_graph=True)
    return x


def test_backward_with_create_graph_leaves_grad_as_a_tensor_in_a_graph():
    x = cube_with_grad_from_backward()
    assert isinstance(x.grad, tg.Tensor) and x.grad.requires_grad
    np.testing.assert_allclose(x.grad.data, 3 * x.data ** 2, rtol=1e-15)


def test_backward_of_the_grad_left_by_create_graph_gives_the_second_derivative():
    x = cube_with_grad_from_backward()
    first, x.grad = x.grad, None
    first.sum().backward()
    np.testing.assert_allclose(x.grad, 6 * x.data, rtol=1e-15)


def test_backward_of_the_grad_accumulates_the_second_derivative_onto_it_as_torch():
    torch = pytest.importorskip("torch")
    x = cube_with_grad_from_backward()
    x.grad.sum().backward()
    xt = torch.tensor([0.3, 0.7, -1.2], dtype=torch.float64, requires_grad=True)
    (xt * xt * xt).sum().backward(create_graph=True)
    xt.grad.sum().backward()
    np.testing.assert_allclose(np.asarray(getattr(x.grad, "data", x.grad)),
                               xt.grad.detach().numpy(), rtol=1e-15)


class WrongShapeAdd(Op):
    """a + b whose VJP sends b a gradient that cannot be summed back to b's shape."""

    broadcasts = True

    def forward(self, a, b):
        return a + b

    def backward(self, g, out, a, b):
        return g, g.sum() * np.ones(4)


def test_a_vjp_returning_a_gradient_of_the_wrong_shape_is_named_in_the_error():
    a, b = (tg.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    with pytest.raises(tg.ShapeError, match="backward of 'wrongshapeadd' returned the wrong"):
        WrongShapeAdd.apply(a, b).sum().backward()


# ---- the first-order path is unchanged -------------------------------------------------
class CountOps:
    """An engine observer counting the ops applied (graph nodes or not)."""

    def __init__(self):
        self.applied = 0

    def forward(self, op, inputs, options, out):
        self.applied += 1

    def backward(self, node, grads):
        pass


def mlp_leaves():
    return [tg.tensor(a, requires_grad=True) for a in mlp_inputs()]


def test_backward_without_create_graph_leaves_ndarray_grads():
    leaves = mlp_leaves()
    mlp_loss("cross_entropy")(*leaves).backward()
    for leaf in leaves:
        assert type(leaf.grad) is np.ndarray and leaf.grad.shape == leaf.shape


def test_backward_without_create_graph_applies_no_ops():
    loss = mlp_loss("cross_entropy")(*mlp_leaves())
    with observing(CountOps()) as count:
        loss.backward()
    assert count.applied == 0


def test_backward_with_create_graph_records_the_backward_pass_as_ops():
    loss = mlp_loss("cross_entropy")(*mlp_leaves())
    with observing(CountOps()) as count:
        loss.backward(create_graph=True)
    assert count.applied > 0


def test_grad_without_create_graph_applies_no_ops():
    leaves = mlp_leaves()
    loss = mlp_loss("mse")(*leaves)
    with observing(CountOps()) as count:
        tg.grad(loss, leaves)
    assert count.applied == 0


def test_first_order_gradients_are_the_same_with_and_without_create_graph():
    plain, recorded = mlp_leaves(), mlp_leaves()
    mlp_loss("cross_entropy")(*plain).backward()
    mlp_loss("cross_entropy")(*recorded).backward(create_graph=True)
    for a, b in zip(plain, recorded):
        np.testing.assert_array_equal(a.grad, b.grad.data)


@pytest.mark.parametrize("helper", ["jvp", "hvp"])
def test_jvp_and_hvp_want_one_direction_per_input_shaped_like_it(helper):
    """As torch.autograd.functional: a missing, extra or misshapen direction raises
    (zip would have read a missing one as 0)."""
    f = (lambda a, b: a * b) if helper == "jvp" else (lambda a, b: (a * b * b).sum())
    inputs = [np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    for directions in ([np.ones(2)], [np.ones(2)] * 3):
        with pytest.raises(ValueError, match=f"{helper}: {len(directions)} directions for 2"):
            getattr(tg, helper)(f, inputs, directions)
    with pytest.raises(ValueError, match=r"direction 1 has shape \(3,\).*\(2,\)"):
        getattr(tg, helper)(f, inputs, [np.ones(2), np.ones(3)])


def test_jvp_takes_one_array_as_one_input():
    out, jt = tg.jvp(lambda x: x * x, np.array([1.0, 2.0]), np.array([1.0, 0.5]))
    np.testing.assert_allclose(jt.data, [2.0, 2.0])
