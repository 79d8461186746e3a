"""Every primitive op's forward and gradient against PyTorch's, in float64, to 1e-10.

Skipped as a whole when torch is not installed. The shapes and data come from the
same strategies as the central-difference tests (test_ops_gradients.py).
"""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygraph as tg
from test_ops_gradients import (SEEDS, away_from_zero, broadcastable_shapes, concat_shapes,
                                linear_shapes, matmul_shapes, normal, permutations_of_axes,
                                positive, requires_grad_flags, shapes, shapes_and_axis)

torch = pytest.importorskip("torch")

TOLERANCE = dict(rtol=1e-10, atol=1e-12)


def compare_with_torch(op, torch_op, arrays, flags=None):
    """Run ``op`` on tinygraph tensors and ``torch_op`` on torch tensors made from the
    same float64 arrays; assert equal outputs, then backpropagate the same random
    gradient through both and assert equal input gradients."""
    flags = [True] * len(arrays) if flags is None else flags
    ours = [tg.tensor(a, requires_grad=f) for a, f in zip(arrays, flags)]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=f)
              for a, f in zip(arrays, flags)]
    out, expected = op(*ours), torch_op(*theirs)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TOLERANCE)
    grad_out = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(grad_out)
    expected.backward(torch.from_numpy(grad_out))
    for x, t in zip(ours, theirs):
        if t.requires_grad:
            np.testing.assert_allclose(x.grad, t.grad.numpy(), **TOLERANCE)


def torch_dims(axis, ndim):
    """A tinygraph/NumPy axis as torch's dim (torch reads dim=() as every axis)."""
    return tuple(range(ndim)) if axis is None else axis


# ---- elementwise -------------------------------------------------------------------------
BINARY = [
    ("add", tg.add, torch.add, normal),
    ("sub", tg.sub, torch.sub, normal),
    ("mul", tg.mul, torch.mul, normal),
    ("div", tg.div, torch.div, away_from_zero),
]


@pytest.mark.parametrize("name, op, torch_op, denominator", BINARY, ids=[b[0] for b in BINARY])
@given(shape_pair=broadcastable_shapes(), seed=SEEDS, flags=requires_grad_flags(2))
def test_binary_op_equals_torch_under_broadcasting(name, op, torch_op, denominator,
                                                   shape_pair, seed, flags):
    arrays = [normal(seed, shape_pair[0]), denominator(seed + 1, shape_pair[1])]
    compare_with_torch(op, torch_op, arrays, flags)


@given(shape_pair=broadcastable_shapes(), seed=SEEDS, flags=requires_grad_flags(2))
def test_pow_with_tensor_exponent_equals_torch(shape_pair, seed, flags):
    arrays = [positive(seed, shape_pair[0]), normal(seed + 1, shape_pair[1])]
    compare_with_torch(tg.pow, torch.pow, arrays, flags)


@given(shape=shapes(), seed=SEEDS, exponent=st.sampled_from([0, 2, 3, -1, 0.5, 2.7]))
def test_pow_with_number_exponent_equals_torch(shape, seed, exponent):
    compare_with_torch(lambda x: x ** exponent, lambda x: x ** exponent,
                       [positive(seed, shape)])


def test_pow_at_zero_base_equals_torch():
    arrays = [np.array([0.0, 0.0, 2.0, 0.0]), np.array([0.0, 2.0, 0.0, 0.5])]
    compare_with_torch(tg.pow, torch.pow, arrays)


@given(shape_pair=matmul_shapes(), seed=SEEDS, flags=requires_grad_flags(2))
def test_matmul_equals_torch_for_vectors_matrices_and_batches(shape_pair, seed, flags):
    arrays = [normal(seed, shape_pair[0]), normal(seed + 1, shape_pair[1])]
    compare_with_torch(tg.matmul, torch.matmul, arrays, flags)


# torch's F.linear takes only a 1-D bias (a wider one fails in its backward)
@given(shapes=linear_shapes().filter(lambda s: s[2] is None or len(s[2]) == 1), seed=SEEDS)
def test_linear_equals_torch_functional_linear(shapes, seed):
    x_shape, W_shape, b_shape = shapes
    arrays = [normal(seed, x_shape), normal(seed + 1, W_shape)]
    if b_shape is not None:
        arrays.append(normal(seed + 2, b_shape))
    compare_with_torch(tg.linear, torch.nn.functional.linear, arrays)


UNARY = [
    ("neg", tg.neg, torch.neg, normal),
    ("exp", tg.exp, torch.exp, normal),
    ("log", tg.log, torch.log, positive),
    ("tanh", tg.tanh, torch.tanh, normal),
    ("sigmoid", lambda x: tg.sigmoid(8 * x), lambda x: torch.sigmoid(8 * x), normal),
    ("relu", tg.relu, torch.relu, normal),
]


@pytest.mark.parametrize("name, op, torch_op, data", UNARY, ids=[u[0] for u in UNARY])
@given(shape=shapes(), seed=SEEDS)
def test_unary_op_equals_torch(name, op, torch_op, data, shape, seed):
    compare_with_torch(op, torch_op, [data(seed, shape)])


def test_sigmoid_of_large_inputs_equals_torch():
    compare_with_torch(tg.sigmoid, torch.sigmoid, [np.array([-1000.0, -40.0, 40.0, 1000.0])])


# ---- reductions ------------------------------------------------------------------------
@pytest.mark.parametrize("ours, theirs", [(tg.sum, torch.sum), (tg.mean, torch.mean)],
                         ids=["sum", "mean"])
@given(shape_axis=shapes_and_axis(), keepdims=st.booleans(), seed=SEEDS)
def test_sum_and_mean_equal_torch_for_every_axis(ours, theirs, shape_axis, keepdims, seed):
    shape, axis = shape_axis
    compare_with_torch(lambda x: ours(x, axis, keepdims),
                       lambda x: theirs(x, torch_dims(axis, len(shape)), keepdims),
                       [normal(seed, shape)])


@given(shape_axis=shapes_and_axis(empty_reductions=False), keepdims=st.booleans(),
       seed=SEEDS)
def test_max_equals_torch_amax_with_ties_split_evenly(shape_axis, keepdims, seed):
    shape, axis = shape_axis
    values = np.random.default_rng(seed).integers(0, 3, shape).astype(np.float64)  # ties
    compare_with_torch(lambda x: tg.max(x, axis, keepdims),
                       lambda x: torch.amax(x, torch_dims(axis, len(shape)), keepdims),
                       [values])


# ---- shape and indexing -------------------------------------------------------------------
@given(shape=shapes(), seed=SEEDS, data=st.data())
def test_reshape_equals_torch(shape, seed, data):
    new_shape = data.draw(st.sampled_from([shape[::-1], (-1,), (1,) + shape + (1,)]))
    compare_with_torch(lambda x: tg.reshape(x, new_shape), lambda x: x.reshape(new_shape),
                       [normal(seed, shape)])


@given(shape_axes=permutations_of_axes(), seed=SEEDS)
def test_permute_equals_torch_including_negative_axes(shape_axes, seed):
    shape, axes = shape_axes
    compare_with_torch(lambda x: tg.permute(x, axes), lambda x: x.permute(axes),
                       [normal(seed, shape)])


@st.composite
def forward_basic_indexing(draw):
    """A shape and a basic index torch also accepts (torch has no negative steps)."""
    shape = draw(shapes())
    index = draw(hnp.basic_indices(shape, allow_newaxis=True))
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, slice) and p.step is not None and p.step < 0 for p in parts):
        index = tuple(slice(p.start, p.stop) if isinstance(p, slice) else p for p in parts)
    return shape, index


@given(shape_index=forward_basic_indexing(), seed=SEEDS)
def test_getitem_with_basic_indices_equals_torch(shape_index, seed):
    shape, index = shape_index
    compare_with_torch(lambda x: x[index], lambda x: x[index], [normal(seed, shape)])


@given(shape=shapes(min_dims=1, empty=False), seed=SEEDS, count=st.integers(1, 5))
def test_getitem_with_repeated_integer_indices_equals_torch(shape, seed, count):
    picks = np.random.default_rng(seed).integers(-shape[0], shape[0], count)
    picks = np.append(picks, picks[0])
    compare_with_torch(lambda x: x[picks], lambda x: x[torch.from_numpy(picks)],
                       [normal(seed, shape)])


@given(shape=shapes(min_dims=1), seed=SEEDS)
def test_getitem_with_boolean_mask_equals_torch(shape, seed):
    mask = np.random.default_rng(seed).random(shape) < 0.5
    compare_with_torch(lambda x: x[mask], lambda x: x[torch.from_numpy(mask)],
                       [normal(seed, shape)])


@given(shapes_axis=concat_shapes(), seed=SEEDS, data=st.data())
def test_concat_equals_torch_cat(shapes_axis, seed, data):
    input_shapes, axis = shapes_axis
    flags = data.draw(requires_grad_flags(len(input_shapes)))
    compare_with_torch(lambda *xs: tg.concat(xs, axis=axis),
                       lambda *xs: torch.cat(xs, dim=axis),
                       [normal(seed + i, s) for i, s in enumerate(input_shapes)], flags)


@given(shape=shapes(), count=st.integers(1, 3), seed=SEEDS, data=st.data())
def test_stack_equals_torch(shape, count, seed, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    flags = data.draw(requires_grad_flags(count))
    compare_with_torch(lambda *xs: tg.stack(xs, axis=axis),
                       lambda *xs: torch.stack(xs, dim=axis),
                       [normal(seed + i, shape) for i in range(count)], flags)


@given(three_shapes=broadcastable_shapes(num_shapes=3), seed=SEEDS,
       flags=requires_grad_flags(2))
def test_where_equals_torch_with_three_way_broadcasting(three_shapes, seed, flags):
    shape_condition, shape_a, shape_b = three_shapes
    condition = np.asarray(np.random.default_rng(seed).random(shape_condition) < 0.5)
    compare_with_torch(lambda a, b: tg.where(condition, a, b),
                       lambda a, b: torch.where(torch.from_numpy(condition), a, b),
                       [normal(seed + 1, shape_a), normal(seed + 2, shape_b)], flags)


@given(shape=shapes(), seed=SEEDS, data=st.data())
def test_log_softmax_equals_torch_along_any_axis(shape, seed, data):
    sides = max(len(shape), 1)  # a 0-d tensor takes axis 0 or -1
    axis = data.draw(st.integers(-sides, sides - 1))
    compare_with_torch(lambda x: tg.log_softmax(x, axis), lambda x: torch.log_softmax(x, axis),
                       [5 * normal(seed, shape)])


def test_log_softmax_of_logits_of_plus_minus_1000_equals_torch():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]])
    compare_with_torch(lambda x: tg.log_softmax(x, 1), lambda x: torch.log_softmax(x, 1),
                       [logits])
