"""The edges of every op: zero-size tensors, 0-d tensors, and floating-point extremes.

PyTorch is the oracle where it is installed (values, NaN and inf placement, and the
shapes and values of the gradients); where it is not, the tests that need it skip.
Where torch itself rounds badly, the oracle is the exact value, rounded once.
"""
import warnings
from contextlib import contextmanager

import numpy as np
import pytest

import tinygraph as tg
import tinygraph.functional as F
from tinygraph.engine import Op

try:
    import torch
except ImportError:  # the torch comparisons skip; the rest still run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def run(fn, arrays, grad_out=None, library="tinygraph"):
    """(output, input gradients) of ``fn`` on float64 leaves made from ``arrays``, after
    a backward of ``grad_out`` (default: a fixed random gradient of the output's shape)."""
    if library == "torch":
        inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    else:
        inputs = [tg.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)
                  for a in arrays]
    out = fn(*inputs)
    shape = tuple(out.shape)
    if grad_out is None:
        grad_out = np.random.default_rng(5).standard_normal(shape)
    if library == "torch":
        out.backward(torch.from_numpy(np.asarray(grad_out, dtype=np.float64)))
        return out.detach().numpy(), [x.grad.numpy() for x in inputs]
    out.backward(np.asarray(grad_out, dtype=np.float64))
    return out.data, [x.grad for x in inputs]


def assert_same_as_torch(ours, theirs, arrays, grad_out=None, rtol=1e-12):
    """Equal outputs and input gradients (shapes, values, NaN and inf places)."""
    out, grads = run(ours, arrays, grad_out)
    expected_out, expected_grads = run(theirs, arrays, grad_out, library="torch")
    assert out.shape == expected_out.shape
    np.testing.assert_allclose(out, expected_out, rtol=rtol, atol=1e-300)
    for g, expected in zip(grads, expected_grads):
        assert g.shape == expected.shape
        np.testing.assert_allclose(g, expected, rtol=rtol, atol=1e-300)


def data(*shape, low=0.5, high=2.0):
    return np.random.default_rng(sum(shape) + len(shape)).uniform(low, high, shape)


@contextmanager
def no_warnings():
    """A block in which any warning (NumPy's "divide by zero", ...) is an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---- zero-size tensors --------------------------------------------------------------
if torch is not None:
    TF = torch.nn.functional
    EMPTY_TARGETS = np.zeros(0, dtype=np.int64)
    # (id, tinygraph function, torch function, input shapes)
    ZERO_SIZE = [
        ("add", tg.add, torch.add, [(0, 3), (3,)]),
        ("sub", tg.sub, torch.sub, [(0, 3), (1, 3)]),
        ("mul", tg.mul, torch.mul, [(2, 0), (2, 1)]),
        ("div", tg.div, torch.div, [(0, 3), (3,)]),
        ("pow", tg.pow, torch.pow, [(3,), (0, 3)]),
        ("matmul zero inner", tg.matmul, torch.matmul, [(2, 0), (0, 3)]),
        ("matmul zero rows", tg.matmul, torch.matmul, [(0, 2), (2, 3)]),
        ("matmul zero columns", tg.matmul, torch.matmul, [(2, 2), (2, 0)]),
        ("matmul empty vectors", tg.matmul, torch.matmul, [(0,), (0,)]),
        ("matmul empty vector and matrix", tg.matmul, torch.matmul, [(0,), (0, 3)]),
        ("matmul matrix and empty vector", tg.matmul, torch.matmul, [(3, 0), (0,)]),
        ("matmul empty batch", tg.matmul, torch.matmul, [(0, 2, 2), (2, 3)]),
        ("matmul batch with zero inner", tg.matmul, torch.matmul, [(2, 3, 0), (0, 4)]),
        ("linear zero rows", tg.linear, TF.linear, [(0, 3), (2, 3), (2,)]),
        ("linear zero features", tg.linear, TF.linear, [(4, 0), (2, 0), (2,)]),
        ("linear zero outputs", tg.linear, TF.linear, [(4, 3), (0, 3), (0,)]),
        ("neg", tg.neg, torch.neg, [(0, 3)]),
        ("exp", tg.exp, torch.exp, [(0, 3)]),
        ("log", tg.log, torch.log, [(0, 3)]),
        ("tanh", tg.tanh, torch.tanh, [(0, 3)]),
        ("sigmoid", tg.sigmoid, torch.sigmoid, [(0, 3)]),
        ("relu", tg.relu, torch.relu, [(0, 3)]),
        ("softplus", tg.softplus, TF.softplus, [(0, 3)]),
        ("sum", tg.sum, torch.sum, [(0, 3)]),
        ("sum over the empty axis", lambda x: x.sum(axis=0), lambda x: x.sum(0), [(0, 3)]),
        ("sum over the other axis", lambda x: x.sum(axis=1), lambda x: x.sum(1), [(0, 3)]),
        ("mean", tg.mean, torch.mean, [(0, 3)]),
        ("mean over the empty axis", lambda x: x.mean(axis=0), lambda x: x.mean(0),
         [(0, 3)]),
        ("mean over the other axis", lambda x: x.mean(axis=1), lambda x: x.mean(1),
         [(0, 3)]),
        ("max over a full axis", lambda x: x.max(axis=1), lambda x: x.amax(1), [(0, 3)]),
        ("max leaving an empty axis", lambda x: x.max(axis=0), lambda x: x.amax(0),
         [(3, 0)]),
        ("reshape", lambda x: x.reshape(3, 0), lambda x: x.reshape(3, 0), [(0, 3)]),
        ("reshape to -1", lambda x: x.reshape(-1), lambda x: x.reshape(-1), [(0, 3)]),
        ("transpose", lambda x: x.T, lambda x: x.T, [(0, 3)]),
        ("getitem of an empty tensor", lambda x: x[1:], lambda x: x[1:], [(0, 3)]),
        ("getitem of an empty slice", lambda x: x[:, 1:1], lambda x: x[:, 1:1], [(2, 3)]),
        ("getitem with no integers", lambda x: x[np.zeros(0, np.int64)],
         lambda x: x[torch.zeros(0, dtype=torch.long)], [(2, 3)]),
        ("getitem with an empty mask", lambda x: x[np.zeros(0, bool)],
         lambda x: x[torch.zeros(0, dtype=torch.bool)], [(0, 3)]),
        ("concat", lambda a, b: tg.concat([a, b]), lambda a, b: torch.cat([a, b]),
         [(0, 3), (2, 3)]),
        ("concat of empties", lambda a, b: tg.concat([a, b], axis=1),
         lambda a, b: torch.cat([a, b], 1), [(2, 0), (2, 0)]),
        ("stack", lambda a, b: tg.stack([a, b], axis=1),
         lambda a, b: torch.stack([a, b], 1), [(0, 3), (0, 3)]),
        ("where", lambda a, b: tg.where(np.zeros((0, 3), bool), a, b),
         lambda a, b: torch.where(torch.zeros((0, 3), dtype=torch.bool), a, b),
         [(0, 3), (3,)]),
        ("log_softmax", lambda x: tg.log_softmax(x, -1), lambda x: x.log_softmax(-1),
         [(0, 3)]),
        ("log_softmax along the empty axis", lambda x: tg.log_softmax(x, 0),
         lambda x: x.log_softmax(0), [(0, 3)]),
        ("log_softmax over zero classes", lambda x: tg.log_softmax(x, -1),
         lambda x: x.log_softmax(-1), [(3, 0)]),
        ("broadcast_to an empty shape", lambda x: tg.broadcast_to(x, (0, 3)),
         lambda x: x.broadcast_to((0, 3)), [(3,)]),
        ("broadcast_to a zero side", lambda x: tg.broadcast_to(x, (2, 0)),
         lambda x: x.broadcast_to((2, 0)), [(2, 1)]),
        ("softmax", F.softmax, lambda x: x.softmax(-1), [(0, 3)]),
        ("softmax over zero classes", F.softmax, lambda x: x.softmax(-1), [(3, 0)]),
        ("cross_entropy mean", lambda x: F.cross_entropy(x, EMPTY_TARGETS),
         lambda x: TF.cross_entropy(x, torch.from_numpy(EMPTY_TARGETS)), [(0, 3)]),
        ("cross_entropy sum", lambda x: F.cross_entropy(x, EMPTY_TARGETS, reduction="sum"),
         lambda x: TF.cross_entropy(x, torch.from_numpy(EMPTY_TARGETS), reduction="sum"),
         [(0, 3)]),
        ("cross_entropy none",
         lambda x: F.cross_entropy(x, EMPTY_TARGETS, reduction="none"),
         lambda x: TF.cross_entropy(x, torch.from_numpy(EMPTY_TARGETS), reduction="none"),
         [(0, 3)]),
        ("mse_loss mean", lambda x: F.mse_loss(x, np.zeros((0, 3))),
         lambda x: TF.mse_loss(x, torch.zeros(0, 3, dtype=torch.float64)), [(0, 3)]),
        ("mse_loss sum", lambda x: F.mse_loss(x, np.zeros((0, 3)), reduction="sum"),
         lambda x: TF.mse_loss(x, torch.zeros(0, 3, dtype=torch.float64), reduction="sum"),
         [(0, 3)]),
    ]
else:
    ZERO_SIZE = []


@needs_torch
@pytest.mark.parametrize("name, ours, theirs, input_shapes", ZERO_SIZE,
                         ids=[case[0] for case in ZERO_SIZE])
def test_every_op_runs_forward_and_backward_on_zero_size_tensors_as_torch(name, ours, theirs,
                                                                          input_shapes):
    assert_same_as_torch(ours, theirs, [data(*shape) for shape in input_shapes])


@pytest.mark.parametrize("shape_a, shape_b", [((0, 2), (2, 3)), ((2, 0), (0, 3)),
                                              ((0,), (0, 3)), ((4, 0, 2), (2, 3))])
def test_a_matmul_with_a_zero_dimension_gives_zero_gradients_of_the_operands_shapes(shape_a,
                                                                                     shape_b):
    out, (ga, gb) = run(tg.matmul, [data(*shape_a), data(*shape_b)])
    np.testing.assert_array_equal(out, np.zeros(np.matmul(data(*shape_a),
                                                          data(*shape_b)).shape))
    np.testing.assert_array_equal(ga, np.zeros(shape_a))
    np.testing.assert_array_equal(gb, np.zeros(shape_b))


def test_a_matmul_with_a_zero_dimension_has_recorded_gradients_of_the_right_shapes():
    a = tg.tensor(np.ones((0, 2)), requires_grad=True)
    b = tg.tensor(np.ones(2), requires_grad=True)
    out = tg.matmul(a, b)
    ga, gb = tg.grad(out, [a, b], grad_outputs=np.ones(0), create_graph=True)
    assert (ga.shape, gb.shape) == ((0, 2), (2,))
    np.testing.assert_array_equal(gb.data, [0.0, 0.0])
    (gb_a,) = tg.grad(gb.sum(), [a], allow_unused=True)
    assert gb_a is None or gb_a.shape == (0, 2)


def test_sum_over_a_zero_size_axis_gives_zeros():
    x = tg.tensor(np.ones((0, 3)), requires_grad=True)
    np.testing.assert_array_equal(x.sum(axis=0).data, np.zeros(3))
    x.sum(axis=0).backward(np.ones(3))
    assert x.grad.shape == (0, 3)


def test_mean_over_a_zero_size_axis_is_nan_as_numpy_without_a_warning():
    x = tg.tensor(np.ones((0, 3)), requires_grad=True)
    with no_warnings():
        out = x.mean(axis=0)
        out.backward(np.ones(3))
    np.testing.assert_array_equal(out.data, np.full(3, np.nan))
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("axis", [None, 0, (0, 1), -2])
def test_max_over_a_zero_size_axis_raises_a_shape_error_naming_max_and_the_shape(axis):
    x = tg.tensor(np.ones((0, 3)), requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"max: .*axis 0, which has size 0.*\(0, 3\)"):
        tg.max(x, axis=axis)


def test_log_softmax_over_an_axis_of_zero_classes_is_empty():
    x = tg.tensor(np.ones((3, 0)), requires_grad=True)
    with no_warnings():
        out = tg.log_softmax(x, axis=-1)
        out.backward(np.ones((3, 0)))
    assert out.shape == (3, 0) and x.grad.shape == (3, 0)


@pytest.mark.parametrize("reduction, expected", [("mean", np.nan), ("sum", 0.0)])
def test_cross_entropy_of_zero_rows_is_nan_for_mean_and_zero_for_sum_as_torch(reduction,
                                                                              expected):
    logits = tg.tensor(np.ones((0, 3)), requires_grad=True)
    with no_warnings():
        loss = F.cross_entropy(logits, np.zeros(0, dtype=np.int64), reduction=reduction)
        loss.backward()
    np.testing.assert_array_equal(loss.data, expected)
    assert logits.grad.shape == (0, 3)


def test_cross_entropy_with_every_target_ignored_is_nan_with_zero_gradients_as_torch():
    logits = tg.tensor(data(2, 3), requires_grad=True)
    with no_warnings():
        loss = F.cross_entropy(logits, np.array([-100, -100]))
        loss.backward()
    assert np.isnan(loss.item())
    np.testing.assert_array_equal(logits.grad, np.zeros((2, 3)))


# ---- 0-d tensors -------------------------------------------------------------------------
if torch is not None:
    ZERO_D = [
        ("sum", lambda x, axis: x.sum(axis=axis), lambda x, dim: x.sum(dim)),
        ("sum keepdims", lambda x, axis: x.sum(axis=axis, keepdims=True),
         lambda x, dim: x.sum(dim, keepdim=True)),
        ("mean", lambda x, axis: x.mean(axis=axis), lambda x, dim: x.mean(dim)),
        ("max", lambda x, axis: x.max(axis=axis), lambda x, dim: x.amax(dim)),
        ("log_softmax", tg.log_softmax, torch.log_softmax),
        ("softmax", F.softmax, torch.softmax),
        ("stack", lambda x, axis: tg.stack([x, 2 * x], axis=axis),
         lambda x, dim: torch.stack([x, 2 * x], dim)),
    ]
else:
    ZERO_D = []


@needs_torch
@pytest.mark.parametrize("axis", [0, -1])
@pytest.mark.parametrize("name, ours, theirs", ZERO_D, ids=[case[0] for case in ZERO_D])
def test_a_0d_tensor_takes_axis_0_and_minus_1_as_torch_takes_dim(name, ours, theirs, axis):
    assert_same_as_torch(lambda x: ours(x, axis), lambda x: theirs(x, axis),
                         [np.array(1.5)])


def test_softmax_of_a_0d_tensor_is_one_and_its_gradient_zero():
    x = tg.tensor(np.array(-3.0), requires_grad=True)
    out = F.softmax(x, axis=0)
    out.backward()
    assert out.shape == () and out.item() == 1.0
    assert x.grad.shape == () and x.grad == 0.0


@pytest.mark.parametrize("op", [tg.sum, tg.mean, tg.max, tg.log_softmax])
def test_a_0d_tensor_rejects_axis_1_as_numpy_does(op):
    with pytest.raises(IndexError, match="axis 1 is out of bounds"):
        op(tg.tensor(np.array(1.0), requires_grad=True), 1)


def test_concat_of_0d_tensors_raises_a_shape_error_as_numpy_and_torch():
    x = tg.tensor(np.array(1.0), requires_grad=True)
    with pytest.raises(tg.ShapeError, match="concat: zero-dimensional"):
        tg.concat([x, x], axis=0)


# ---- floating point -------------------------------------------------------------------
@pytest.mark.parametrize("a, b, expected_ga, expected_gb", [
    (1.0, 1e-200, 1e200, -np.inf),          # -1/b^2 = -1e400 overflows: -inf is its rounding
    (1e-200, 1e-200, 1e200, -1e200),        # b^2 would underflow to 0 and give -inf
    (1.0, 1e200, 1e-200, -0.0),             # -1e-400 underflows: -0 is its rounding
    (1e200, 1e200, 1e-200, -1e-200),        # b^2 would overflow to inf and give -0
    (-1e-150, 1e-200, 1e200, 1e250),
])
def test_a_quotients_gradient_by_a_tiny_or_huge_denominator_is_the_true_value_rounded(
        a, b, expected_ga, expected_gb):
    _, (ga, gb) = run(tg.div, [a, b], grad_out=1.0)
    np.testing.assert_allclose([ga, gb], [expected_ga, expected_gb], rtol=1e-15)


BASES = [0.0, -2.0, -0.5, 1.5]
EXPONENTS = [0.0, 0.5, 1.0, 2.0, 3.0, -1.0]


@needs_torch
@pytest.mark.parametrize("p", EXPONENTS)
def test_pow_by_a_number_at_zero_and_negative_bases_has_torchs_gradient(p):
    assert_same_as_torch(lambda x: x ** p, lambda x: x ** p, [np.array(BASES)],
                         grad_out=np.ones(len(BASES)))


@needs_torch
def test_pow_by_a_tensor_at_zero_and_negative_bases_has_torchs_gradients_for_both():
    base, exponent = np.meshgrid(BASES, EXPONENTS)
    assert_same_as_torch(tg.pow, torch.pow, [base, exponent], grad_out=np.ones(base.shape))


def test_pow_of_zero_to_a_negative_exponent_has_exponent_gradient_minus_inf_as_torch():
    # d(0^b)/db = 0^b log 0 = inf * -inf; the double where must not make log 0 into 0
    _, (ga, gb) = run(tg.pow, [np.array([0.0]), np.array([-1.0])], grad_out=np.ones(1))
    np.testing.assert_array_equal(gb, [-np.inf])
    np.testing.assert_array_equal(ga, [-np.inf])


EXTREMES = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])


@needs_torch
@pytest.mark.parametrize("name, ours, theirs", [
    ("softplus", tg.softplus, lambda x: torch.nn.functional.softplus(x)),
    ("tanh", tg.tanh, lambda x: torch.tanh(x)),
    ("log_softmax", lambda x: tg.log_softmax(x, -1), lambda x: x.log_softmax(-1)),
    ("softmax", F.softmax, lambda x: x.softmax(-1)),
], ids=["softplus", "tanh", "log_softmax", "softmax"])
def test_activations_at_extreme_inputs_are_finite_and_equal_torch_without_warnings(
        name, ours, theirs):
    with no_warnings():
        out, (grad,) = run(ours, [EXTREMES])
    assert np.isfinite(out).all() and np.isfinite(grad).all()
    assert_same_as_torch(ours, theirs, [EXTREMES])


def test_sigmoid_at_extreme_inputs_has_the_exact_slope_where_torchs_rounds_to_zero():
    # torch's out (1 - out) gives 0 at x = 40; sigmoid(-x) for 1 - out keeps e^-40
    with no_warnings():
        out, (grad,) = run(tg.sigmoid, [EXTREMES], grad_out=np.ones(len(EXTREMES)))
    e = np.exp(-np.abs(EXTREMES))
    np.testing.assert_allclose(out, np.where(EXTREMES >= 0, 1 / (1 + e), e / (1 + e)),
                               rtol=1e-15)
    np.testing.assert_allclose(grad, e / (1 + e) ** 2, rtol=1e-14, atol=1e-300)


def test_softplus_at_plus_minus_1000_is_x_and_zero_with_slopes_one_and_zero():
    out, (grad,) = run(tg.softplus, [np.array([-1000.0, 1000.0])], grad_out=np.ones(2))
    np.testing.assert_array_equal(out, [0.0, 1000.0])
    np.testing.assert_array_equal(grad, [0.0, 1.0])


def test_tanh_at_plus_minus_40_is_exactly_one_with_a_vanishing_finite_slope():
    out, (grad,) = run(tg.tanh, [np.array([-40.0, 40.0])], grad_out=np.ones(2))
    np.testing.assert_array_equal(out, [-1.0, 1.0])
    # the true slope sech(40)^2 = 7e-35; 1 - tanh^2 rounds it to 0, as torch does
    np.testing.assert_allclose(grad, 4 * np.exp(-80.0), atol=1e-34)


# ---- the engine ---------------------------------------------------------------------------
class BroadcastingWithAWrongGradient(Op):
    """a + b whose VJP returns a gradient that fits neither input."""

    broadcasts = True

    def forward(self, a, b):
        return a + b

    def backward(self, g, out, a, b):
        return np.ones((5,)), g


def test_a_broadcasting_op_whose_backward_returns_a_wrong_shape_raises_a_shape_error():
    a = tg.tensor(np.ones(3), requires_grad=True)
    b = tg.tensor(np.ones(3), requires_grad=True)
    out = BroadcastingWithAWrongGradient.apply(a, b)
    with pytest.raises(tg.ShapeError, match=r"backward of 'broadcastingwithawronggradient' "
                                            r"returned the wrong shape.*\(5,\).*\(3,\)"):
        out.sum().backward()


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min", "var", "std", "amax"])
def test_a_reduction_naming_an_axis_twice_raises_as_numpy(reduce):
    x = tg.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="duplicate value in 'axis'"):
        getattr(tg, reduce)(x, axis=(1, -1))
    with pytest.raises(ValueError, match="duplicate value in 'axis'"):
        getattr(tg, reduce)(tg.tensor(1.0), axis=(0, -1))


def test_binary_cross_entropy_refuses_a_nan_probability():
    from tinygraph import functional as F
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\] \(and not be NaN\)"):
        F.binary_cross_entropy(tg.tensor([np.nan, 0.5]), np.array([1.0, 0.0]))


@pytest.mark.parametrize("n", [1, 2])
def test_average_pooling_without_the_padding_keeps_float32(n):
    from tinygraph import functional as F
    x = tg.tensor(np.ones((1, 1) + (5,) * n, dtype=np.float32), requires_grad=True)
    pool = F.avg_pool1d if n == 1 else F.avg_pool2d
    out = pool(x, 2, padding=1, count_include_pad=False)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32
