"""The ops a PyTorch user reaches for beyond the core set (issue 17): sqrt, abs, clamp,
sin, cos, erf, maximum/minimum, min, var/std, cumsum, squeeze/unsqueeze/flatten,
expand, flip, pad, softmax, split/chunk; and the functions without a gradient
(argmax/argmin, tolist).

Each op case is a hypothesis strategy giving the function twice, for tinygraph and for
torch, and the float64 arrays to run it on (0-d and zero-size shapes where the op takes
them), as in test_higher_order.py. Every case is checked four ways: its gradient
against central differences, its value and gradient against torch's, its second
derivative against central differences of the first gradient, and against torch's
``autograd.grad`` taken twice. Ops linear in their input are squared, so that the
second pass runs through their VJP's VJP.
"""
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygraph as tg
from test_higher_order import (TORCH_TOLERANCE, Case, along_an_axis, any_shapes,
                               elementwise_binary, random_like, reduction, shape_and_axis,
                               squared, torch_dims, unary)
from test_ops_gradients import (SEEDS, away_from_zero, broadcastable_shapes, check_backward,
                                distinct, normal, positive, shapes)

try:  # the torch oracles are skipped one by one (pytest.importorskip) when it is missing
    import torch
except ImportError:
    torch = None


def _t(name):
    """torch.<name>, looked up when the torch oracle runs (so no torch is needed here)."""
    return lambda *args, **kwargs: getattr(torch, name)(*args, **kwargs)


# ---- cases ------------------------------------------------------------------------------
@st.composite
def clamp_case(draw):
    low, high = draw(st.sampled_from([(-0.5, 0.7), (None, 0.3), (-0.2, None), (0.5, -0.5)]))
    shape = draw(any_shapes())
    return Case(squared(lambda x: tg.clamp(x, low, high)),
                squared(lambda x: torch.clamp(x, low, high)), [normal(draw(SEEDS), shape)])


@st.composite
def var_case(draw, ours, theirs, least=1):
    """var or std over an axis with a correction of 0, 1 or 2, where the reduced axes
    hold more than ``least`` entries and more than the correction (else nan, tested
    below)."""
    shape, axis = draw(shape_and_axis(allow_empty=True))
    correction = draw(st.sampled_from([0, 1, 2]))
    keepdims = draw(st.booleans())
    axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
    n = math.prod(shape[a] for a in axes)
    if n <= builtins_max(correction, least - 1):
        shape = tuple(4 if i in [a % len(shape) for a in axes] else s
                      for i, s in enumerate(shape))
        if not shape:  # a 0-d tensor has one entry: give it one axis
            shape, axis = (4,), None
    dims = torch_dims(axis, len(shape))
    return Case(lambda x: ours(x, axis, correction=correction, keepdims=keepdims),
                lambda x: theirs(x, dims, correction=correction, keepdim=keepdims),
                [normal(draw(SEEDS), shape)])


builtins_max = max


@st.composite
def cumsum_case(draw):
    shape = draw(any_shapes())
    if not shape or draw(st.booleans()):
        axis = None if not shape or draw(st.booleans()) else 0
    else:
        axis = draw(st.integers(-len(shape), len(shape) - 1))

    def theirs(x):
        return torch.cumsum(x.flatten() if axis is None else x, 0 if axis is None else axis)
    return Case(squared(lambda x: tg.cumsum(x, axis)), squared(theirs),
                [normal(draw(SEEDS), shape)])


@st.composite
def squeeze_case(draw):
    shape = draw(any_shapes())
    ndim = len(shape)
    axis = None if not ndim else draw(st.none() | st.integers(-ndim, ndim - 1)
                                      | hnp.valid_tuple_axes(ndim, min_size=1))
    return Case(squared(lambda x: tg.squeeze(x, axis)),
                squared(lambda x: torch.squeeze(x) if axis is None else torch.squeeze(x, axis)),
                [normal(draw(SEEDS), shape)])


@st.composite
def unsqueeze_case(draw):
    shape = draw(any_shapes())
    axis = draw(st.integers(-len(shape) - 1, len(shape)))
    return Case(squared(lambda x: x.unsqueeze(axis)), squared(lambda x: x.unsqueeze(axis)),
                [normal(draw(SEEDS), shape)])


@st.composite
def flatten_case(draw):
    shape = draw(any_shapes())
    ndim = max(len(shape), 1)
    start = draw(st.integers(-ndim, ndim - 1))
    end = draw(st.integers(start % ndim, ndim - 1))
    return Case(squared(lambda x: x.flatten(start, end)),
                squared(lambda x: x.flatten(start, end)), [normal(draw(SEEDS), shape)])


@st.composite
def expand_case(draw):
    full, shape = draw(broadcastable_shapes())
    shape = shape[len(shape) - len(full):] if len(shape) > len(full) else shape
    full = tuple(max(a, b) for a, b in zip(full[len(full) - len(shape):], shape))
    sizes = (2,) + tuple(-1 if draw(st.booleans()) and n == s else n
                         for n, s in zip(full, shape))
    return Case(squared(lambda x: x.expand(*sizes)), squared(lambda x: x.expand(*sizes)),
                [normal(draw(SEEDS), shape)])


@st.composite
def flip_case(draw):
    shape = draw(any_shapes())
    ndim = len(shape)
    axis = None if not ndim else draw(st.none() | st.integers(-ndim, ndim - 1)
                                      | hnp.valid_tuple_axes(ndim, min_size=1))
    dims = tuple(range(ndim)) if axis is None else tuple(np.atleast_1d(axis).tolist())
    return Case(squared(lambda x: tg.flip(x, axis)), squared(lambda x: torch.flip(x, dims)),
                [normal(draw(SEEDS), shape)])


@st.composite
def pad_case(draw):
    shape = draw(shapes(min_dims=1))
    widths = [tuple(draw(st.integers(0, 2)) for _ in range(2)) for _ in shape]
    value = draw(st.sampled_from([0.0, -1.5]))
    flat = [w for pair in widths[::-1] for w in pair]  # torch's order: last axis first
    return Case(squared(lambda x: tg.pad(x, widths, value=value)),
                squared(lambda x: torch.nn.functional.pad(x, flat, value=value)),
                [normal(draw(SEEDS), shape)])


@st.composite
def split_case(draw, kind):
    """split by a size or a list of sizes, or chunk, along an axis; the pieces are
    weighted and joined again, so each piece's gradient is told apart."""
    shape = draw(shapes(min_dims=1))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    if kind == "sizes":
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=3)))
        argument = [b - a for a, b in zip([0] + cuts, cuts + [n])]
    else:
        argument = draw(st.integers(1, 4))
    name = "chunk" if kind == "chunk" else "split"
    ours_f, theirs_f = getattr(tg, name), _t(name)

    def ours(x):
        pieces = ours_f(x, argument, axis)
        return tg.concat([p * (i + 1.0) for i, p in enumerate(pieces)], axis=axis)

    def theirs(x):
        pieces = theirs_f(x, argument, axis)
        return torch.cat([p * (i + 1.0) for i, p in enumerate(pieces)], dim=axis)
    return Case(squared(ours), squared(theirs), [normal(draw(SEEDS), shape)])


@st.composite
def swapaxes_case(draw):
    shape = draw(any_shapes())
    sides = max(len(shape), 1)
    a, b = draw(st.integers(-sides, sides - 1)), draw(st.integers(-sides, sides - 1))
    return Case(squared(lambda x: x.swapaxes(a, b)), squared(lambda x: x.swapaxes(a, b)),
                [normal(draw(SEEDS), shape)])


CASES = {
    "sqrt": unary(tg.sqrt, _t("sqrt"), data=positive),
    "abs": unary(tg.abs, _t("abs"), data=away_from_zero, square=True),
    "clamp": clamp_case(),
    "sin": unary(tg.sin, _t("sin")),
    "cos": unary(tg.cos, _t("cos")),
    "erf": unary(tg.erf, _t("erf")),
    "maximum": elementwise_binary(tg.maximum, _t("maximum"), square=True),
    "minimum": elementwise_binary(tg.minimum, _t("minimum"), square=True),
    "min": reduction(tg.min, _t("amin"), data=distinct, allow_empty=False),
    "var": var_case(tg.var, _t("var")),
    "std": var_case(tg.std, _t("std"), least=2),
    "cumsum": cumsum_case(),
    "squeeze": squeeze_case(),
    "unsqueeze": unsqueeze_case(),
    "flatten": flatten_case(),
    "expand": expand_case(),
    "flip": flip_case(),
    "swapaxes": swapaxes_case(),
    "pad": pad_case(),
    "softmax": along_an_axis(tg.softmax, _t("softmax")),
    "split_by_size": split_case("size"),
    "split_by_sizes": split_case("sizes"),
    "chunk": split_case("chunk"),
}


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_gradient_matches_central_differences(name, data):
    case = data.draw(CASES[name])
    check_backward(case.ours, *case.tg_inputs())


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_value_and_gradient_equal_torch(name, data):
    pytest.importorskip("torch")
    case = data.draw(CASES[name])
    ours, theirs = case.tg_inputs(), case.torch_inputs()
    out, expected = case.ours(*ours), case.theirs(*theirs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TORCH_TOLERANCE)
    grad_out = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(grad_out)
    expected.backward(torch.from_numpy(grad_out))
    for x, t in zip(ours, theirs):
        if t.requires_grad:
            np.testing.assert_allclose(x.grad, t.grad.numpy(), **TORCH_TOLERANCE)


# ---- where the derivative has a kink or a tie: as PyTorch -------------------------------
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def same_as_torch(ours, theirs, *arrays):
    """Equal values and gradients (NaN and inf in the same places) for one random g."""
    xs = [tg.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    ts = [torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out, expected = ours(*xs), theirs(*ts)
    g = np.random.default_rng(3).uniform(1, 2, out.shape)
    out.backward(g)
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12)
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)
    return xs


@needs_torch
@pytest.mark.parametrize("ours, theirs", [(tg.maximum, _t("maximum")),
                                          (tg.minimum, _t("minimum"))],
                         ids=["maximum", "minimum"])
def test_maximum_and_minimum_give_each_of_two_tied_entries_half_the_gradient(ours, theirs):
    a, b = [[1.0, 2.0, 3.0], [1.0, 0.0, 3.0]], [[1.0, 5.0, 3.0], [0.0, 0.0, 4.0]]
    xs = same_as_torch(ours, theirs, a, b)
    assert 0.5 <= xs[0].grad[0, 0] <= 1.0  # (g is drawn from [1, 2]: half of it at a tie)


@needs_torch
def test_maximum_broadcast_against_a_number_passes_half_at_ties_as_torch():
    same_as_torch(lambda x: tg.maximum(x, 0.0),
                  lambda x: torch.maximum(x, torch.zeros((), dtype=torch.float64)),
                  [-1.0, 0.0, 2.0])


@needs_torch
def test_clamp_passes_the_gradient_at_its_bounds_and_stops_it_outside_as_torch():
    xs = same_as_torch(lambda x: x.clamp(-0.5, 0.7), lambda x: x.clamp(-0.5, 0.7),
                       [-1.0, -0.5, 0.0, 0.7, 1.0])
    assert (xs[0].grad[[0, 4]] == 0).all() and (xs[0].grad[1:4] > 0).all()


@needs_torch
def test_abs_has_gradient_zero_at_zero_and_sqrt_infinite_as_torch():
    same_as_torch(tg.abs, torch.abs, [-2.0, 0.0, 3.0])
    same_as_torch(tg.sqrt, torch.sqrt, [0.0, 4.0])


@needs_torch
@pytest.mark.parametrize("ours, theirs", [(tg.min, _t("amin")), (tg.max, _t("amax"))],
                         ids=["min", "max"])
def test_min_and_max_share_the_gradient_among_ties_as_torch_amin_amax(ours, theirs):
    x = [[1.0, 1.0, 3.0], [3.0, 2.0, 3.0]]
    same_as_torch(lambda x: ours(x, 1), lambda x: theirs(x, 1), x)
    same_as_torch(lambda x: ours(x), lambda x: theirs(x), x)


def test_min_of_an_empty_axis_raises_a_shape_error_naming_min():
    with pytest.raises(tg.ShapeError, match="min over axis 0"):
        tg.min(tg.tensor(np.zeros((0, 2))), axis=0)


@needs_torch
@pytest.mark.parametrize("n, correction", [(1, 1), (2, 2), (1, 2), (0, 0)])
def test_var_and_std_with_no_degrees_of_freedom_are_nan_or_inf_as_torch(n, correction):
    for ours, theirs in [(tg.var, torch.var), (tg.std, torch.std)]:
        x = np.arange(float(n))
        out = ours(tg.tensor(x), correction=correction)
        expected = theirs(torch.tensor(x), correction=correction)
        np.testing.assert_array_equal(out.data, expected.numpy())


@needs_torch
def test_std_of_constant_entries_passes_zero_gradient_as_torch_at_first_and_second_order():
    """d std/dx is 0/0 where the std is 0; PyTorch gives 0 (a normalisation of a constant
    row must not turn every gradient into NaN)."""
    x = np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 4.0]])
    ours = tg.tensor(x, requires_grad=True)
    theirs = torch.tensor(x, requires_grad=True)
    (g,) = tg.grad(ours.std(axis=1).sum(), [ours], create_graph=True)
    (gg,) = tg.grad((g * g).sum(), [ours])
    (tg_,) = torch.autograd.grad(theirs.std(dim=1).sum(), [theirs], create_graph=True)
    (tgg,) = torch.autograd.grad((tg_ * tg_).sum(), [theirs])
    np.testing.assert_allclose(g.data, tg_.detach().numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(gg.data, tgg.numpy(), rtol=1e-12, atol=1e-15)
    assert np.all(g.data[0] == 0)
    y = tg.tensor(np.array(2.0), requires_grad=True)
    y.std(correction=0).backward()
    assert y.grad == 0


# ---- the documented choices ---------------------------------------------------------------
def test_var_defaults_to_the_unbiased_estimate_as_pytorch_and_reads_numpys_ddof():
    x = np.random.default_rng(0).standard_normal((3, 5))
    np.testing.assert_allclose(tg.var(tg.tensor(x), 1).data, np.var(x, 1, ddof=1))
    np.testing.assert_allclose(tg.tensor(x).var(axis=1, ddof=0).data, np.var(x, 1))
    np.testing.assert_allclose(tg.std(tg.tensor(x), correction=0).data, np.std(x))
    np.testing.assert_allclose(tg.tensor(x).std(unbiased=False).data, np.std(x))
    with pytest.raises(TypeError, match="pass one of correction= .*, ddof= .* and unbiased="):
        tg.var(tg.tensor(x), correction=1, ddof=1)


def test_clamp_takes_constant_tensor_bounds_and_refuses_bounds_that_want_a_gradient():
    x = tg.tensor(np.array([-2.0, 0.5, 3.0]), requires_grad=True)
    low, high = tg.tensor(np.array([-1.0, 0.0, 0.0])), tg.tensor(1.0)
    np.testing.assert_array_equal(x.clamp(low, high).data, [-1.0, 0.5, 1.0])
    with pytest.raises(TypeError, match="use tg.maximum"):
        x.clamp(max=tg.tensor(1.0, requires_grad=True))


def test_max_and_min_with_an_axis_return_the_values_and_argmax_argmin_the_indices():
    x = tg.tensor([[1.0, 5.0, 5.0], [7.0, 0.0, 7.0]], requires_grad=True)
    values, indices = x.max(dim=1), x.argmax(dim=1)
    assert isinstance(values, tg.Tensor) and values.tolist() == [5.0, 7.0]
    assert indices.tolist() == [1, 0]  # the first of tied maxima, as NumPy and torch
    assert x.min(1).tolist() == [1.0, 0.0] and x.argmin(1).tolist() == [0, 1]


def test_argmax_and_argmin_return_int64_tensors_outside_the_graph():
    x = tg.tensor(np.array([[3.0, 1.0], [0.0, 4.0]]), requires_grad=True)
    for index in (x.argmax(), tg.argmax(x, 0, keepdims=True), x.argmin(dim=1, keepdim=True)):
        assert index.dtype == np.int64 and not index.requires_grad and index.is_leaf
    assert x.argmax().item() == 3 and tg.argmax(x, 0, keepdims=True).shape == (1, 2)


@needs_torch
@pytest.mark.parametrize("shape, dim", [((4, 3), 0), ((4, 3), -1), ((5,), None), ((2, 3, 2), 1)])
def test_argmax_and_argmin_equal_torch(shape, dim):
    x = np.random.default_rng(1).integers(0, 3, shape).astype(np.float64)  # with ties
    for ours, theirs in [(tg.argmax, torch.argmax), (tg.argmin, torch.argmin)]:
        np.testing.assert_array_equal(ours(tg.tensor(x), dim=dim).data,
                                      theirs(torch.tensor(x), dim=dim).numpy())


def test_squeeze_leaves_an_axis_whose_size_is_not_one_as_pytorch():
    x = tg.tensor(np.zeros((2, 1, 3)))
    assert x.squeeze(0).shape == (2, 1, 3) and x.squeeze(1).shape == (2, 3)
    assert x.squeeze().shape == (2, 3) and x.squeeze((0, 1)).shape == (2, 3)


def test_flatten_of_a_0d_tensor_is_one_entry_and_start_after_end_is_an_error():
    assert tg.tensor(3.0).flatten().shape == (1,)
    with pytest.raises(tg.ShapeError, match="start_dim 2 comes after end_dim 1"):
        tg.tensor(np.zeros((2, 3, 4))).flatten(2, 1)


def test_view_is_reshape_and_tolist_gives_python_numbers():
    x = tg.tensor(np.arange(6.0), requires_grad=True)
    assert tg.Tensor.view is tg.reshape and x.view(2, 3).shape == (2, 3)
    assert x.view(-1, 2).tolist() == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    assert tg.tensor(np.int64(4)).tolist() == 4


def test_expand_keeps_the_sizes_given_as_minus_one_and_rejects_fewer_sizes():
    x = tg.tensor(np.zeros((3, 1)))
    assert x.expand(2, -1, 4).shape == (2, 3, 4) and x.expand((3, 5)).shape == (3, 5)
    with pytest.raises(ValueError, match="expand: 1 sizes"):
        x.expand(3)


@needs_torch
@pytest.mark.parametrize("n, size", [(7, 3), (6, 3), (0, 2), (2, 5)])
def test_split_by_a_size_and_chunk_cut_like_torch(n, size):
    x = np.arange(float(n))
    for ours, theirs in [(tg.split, torch.split), (tg.chunk, torch.chunk)]:
        pieces, expected = ours(tg.tensor(x), size), theirs(torch.tensor(x), size)
        assert [p.tolist() for p in pieces] == [p.tolist() for p in expected]


def test_split_by_sizes_that_do_not_add_up_names_the_sizes_and_the_axis():
    with pytest.raises(ValueError, match=r"split: the sizes \[1, 1\] .* axis 0, 3"):
        tg.split(tg.tensor(np.zeros(3)), [1, 1])


def test_split_pieces_send_their_gradients_to_their_own_parts():
    x = tg.tensor(np.arange(5.0), requires_grad=True)
    a, b = x.split([2, 3])
    (a.sum() * 2 + b.sum() * 3).backward()
    np.testing.assert_array_equal(x.grad, [2, 2, 3, 3, 3])


def test_clamp_without_bounds_and_pad_with_negative_widths_raise_naming_the_op():
    x = tg.tensor(np.zeros((2, 2)))
    with pytest.raises(tg.ShapeError, match="clamp: needs at least one of min and max"):
        x.clamp()
    with pytest.raises(tg.ShapeError, match="pad: pad widths must be >= 0"):
        x.pad(((0, -1), (0, 0)))


def test_cumsum_without_an_axis_runs_over_the_flattened_tensor_as_numpy():
    x = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(tg.cumsum(tg.tensor(x)).data, np.cumsum(x))
    np.testing.assert_array_equal(tg.tensor(x).cumsum(dim=1).data, np.cumsum(x, 1))


# ---- PyTorch's dim= and keepdim= wherever NumPy's axis= and keepdims= are -------------------
X = np.random.default_rng(4).standard_normal((2, 3, 4))
WITH_DIM = {
    "sum": (lambda x: x.sum(dim=1, keepdim=True), lambda x: x.sum(axis=1, keepdims=True)),
    "mean": (lambda x: tg.mean(x, dim=(0, 2)), lambda x: tg.mean(x, axis=(0, 2))),
    "max": (lambda x: x.max(dim=-1, keepdim=True), lambda x: x.max(axis=-1, keepdims=True)),
    "min": (lambda x: x.min(dim=0), lambda x: x.min(axis=0)),
    "var": (lambda x: x.var(dim=1, keepdim=True), lambda x: x.var(axis=1, keepdims=True)),
    "std": (lambda x: x.std(dim=2, correction=0), lambda x: x.std(axis=2, correction=0)),
    "softmax": (lambda x: tg.softmax(x, dim=1), lambda x: tg.softmax(x, axis=1)),
    "F.softmax": (lambda x: tg.functional.softmax(x, dim=-1), lambda x: tg.softmax(x, -1)),
    "log_softmax": (lambda x: x.log_softmax(dim=0), lambda x: x.log_softmax(axis=0)),
    "cumsum": (lambda x: x.cumsum(dim=2), lambda x: x.cumsum(axis=2)),
    "concat": (lambda x: tg.concat([x, x], dim=1), lambda x: tg.concat([x, x], axis=1)),
    "cat": (lambda x: tg.cat([x, x], dim=2), lambda x: tg.concat([x, x], axis=2)),
    "stack": (lambda x: tg.stack([x, x], dim=-1), lambda x: tg.stack([x, x], axis=-1)),
    "squeeze": (lambda x: x[:, :1].squeeze(dim=1), lambda x: x[:, :1].squeeze(axis=1)),
    "unsqueeze": (lambda x: x.unsqueeze(dim=1), lambda x: x.unsqueeze(axis=1)),
    "flip": (lambda x: x.flip(dim=1), lambda x: x.flip(axis=1)),
    "argmax": (lambda x: x.argmax(dim=1, keepdim=True), lambda x: x.argmax(axis=1, keepdims=True)),
    "argmin": (lambda x: tg.argmin(x, dim=2), lambda x: tg.argmin(x, axis=2)),
    "split": (lambda x: tg.stack(x.split(2, dim=2)), lambda x: tg.stack(x.split(2, axis=2))),
    "chunk": (lambda x: tg.stack(x.chunk(3, dim=1)), lambda x: tg.stack(x.chunk(3, axis=1))),
}


@pytest.mark.parametrize("name", WITH_DIM)
def test_pytorchs_dim_and_keepdim_mean_numpys_axis_and_keepdims(name):
    with_dim, with_axis = WITH_DIM[name]
    out, expected = with_dim(tg.tensor(X)), with_axis(tg.tensor(X))
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out.data, expected.data)


def test_dim_and_axis_together_are_a_type_error_naming_both():
    with pytest.raises(TypeError, match="sum\\(\\) got both dim= and axis="):
        tg.tensor(X).sum(dim=1, axis=1)
    with pytest.raises(TypeError, match="argmax\\(\\) got both keepdim= and keepdims="):
        tg.tensor(X).argmax(1, keepdim=True, keepdims=True)


@pytest.mark.parametrize("name", ["sqrt", "abs", "clamp", "clip", "sin", "cos", "erf", "min",
                                  "amax", "amin", "var", "std", "cumsum", "squeeze",
                                  "unsqueeze", "flatten", "view", "expand", "flip", "pad",
                                  "softmax", "argmax", "argmin", "split", "chunk", "tolist",
                                  "swapaxes"])
def test_each_new_op_is_the_function_and_the_method(name):
    assert getattr(tg.Tensor, name) is getattr(tg, name)


def test_abs_is_also_the_builtin_abs_of_a_tensor():
    x = tg.tensor([-1.0, 2.0], requires_grad=True)
    abs(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [-1.0, 1.0])


@pytest.mark.parametrize("name", CASES)
@given(data=st.data())
def test_jvp_equals_central_differences_along_the_tangent(name, data):
    case = data.draw(CASES[name])
    eps = 1e-6
    tangents = random_like([a.shape for a in case.arrays], seed=5)
    value, jt = tg.jvp(case.ours, case.arrays, tangents)

    def value_of(arrays):
        with tg.no_grad():
            return case.ours(*[tg.tensor(a) for a in arrays]).data
    plus = value_of([a + eps * t for a, t in zip(case.arrays, tangents)])
    minus = value_of([a - eps * t for a, t in zip(case.arrays, tangents)])
    assert jt.shape == value.shape
    np.testing.assert_allclose(jt.data, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-7)


FLOAT32 = {
    "sqrt": lambda x: tg.sqrt(x * x + 1), "abs": tg.abs, "clamp": lambda x: x.clamp(-0.5, 0.5),
    "sin": tg.sin, "cos": tg.cos, "erf": tg.erf, "maximum": lambda x: tg.maximum(x, 0.0),
    "minimum": lambda x: tg.minimum(x, x.T), "min": lambda x: x.min(0), "var": tg.var,
    "std": lambda x: x.std(1), "cumsum": lambda x: x.cumsum(0),
    "squeeze": lambda x: x[:1].squeeze(),
    "flatten": tg.flatten, "expand": lambda x: x[:1].expand(3, -1), "flip": tg.flip,
    "pad": lambda x: x.pad(1), "softmax": lambda x: x.softmax(dim=0),
    "split": lambda x: x.split(2)[0], "conv2d": lambda x: tg.functional.conv2d(
        x.reshape(1, 1, 3, 3), x.reshape(1, 1, 3, 3)[:, :, :2, :2], padding=1),
    "max_pool2d": lambda x: tg.functional.max_pool2d(x.reshape(1, 1, 3, 3), 2, 1),
    "layer_norm": lambda x: tg.functional.layer_norm(x, 3),
    "gelu": tg.functional.gelu,
}


@pytest.mark.parametrize("name", FLOAT32)
def test_float32_stays_float32_in_the_value_and_the_gradient(name):
    x = tg.tensor(np.linspace(-1, 1, 9, dtype=np.float32).reshape(3, 3), requires_grad=True)
    out = FLOAT32[name](x)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad.dtype == np.float32
