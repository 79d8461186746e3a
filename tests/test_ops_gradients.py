"""Every primitive op's backward against central differences, on generated shapes.

Each property builds float64 inputs from a hypothesis-drawn shape and seed, runs the
op, and checks with ``check_backward`` that

* the gradient agrees with central differences (``tg.gradcheck``),
* every gradient has its input's shape and dtype (a VJP sums broadcast axes back),
* no op writes to its inputs or to the gradient it receives (they are read-only).

Inputs are kept where finite differences are meaningful: positive bases for log and
tensor exponents, no values near relu's kink, no near-ties for max (whose tie rule
has its own tests below).

The shapes include 0-d arrays and, in about one draw of four, zero-size ones (a side
of 0) for every op that accepts them. On those, central differences check nothing
(there are no entries to move), but forward and backward still run and every
gradient's shape is checked.
"""
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinygraph as tg
from tinygraph.engine import Op

SEEDS = st.integers(0, 2**32 - 1)


# ---- strategies (test_ops_torch.py uses them too) -----------------------------------
@st.composite
def sometimes_zero(draw, sides):
    """``sides`` (a tuple of sizes), or, in about one draw of four, the same with one of
    them made 0: rare enough that most draws still have values to check."""
    if sides and draw(st.integers(0, 3)) == 3:
        i = draw(st.integers(0, len(sides) - 1))
        sides = sides[:i] + (0,) + sides[i + 1:]
    return sides


def shapes(min_dims=0, max_dims=3, max_side=3, empty=True):
    """Array shapes with sides 1..max_side (size-1 axes included), and with ``empty``
    now and then a side of 0 (a zero-size array)."""
    nonempty = hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                                max_side=max_side)
    return nonempty.flatmap(sometimes_zero) if empty else nonempty


@st.composite
def broadcastable_shapes(draw, num_shapes=2, max_dims=3, empty=True):
    """Shapes that broadcast together: each keeps the trailing axes of one common shape
    and sets some of them to 1, so ranks differ and size-1 axes get stretched (with
    ``empty``, now and then to a side of 0)."""
    full = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=2, max_side=3))
    full = draw(sometimes_zero(full)) if empty else full
    result = []
    for _ in range(num_shapes):
        rank = draw(st.integers(0, len(full)))
        kept = full[len(full) - rank:]
        ones = draw(st.lists(st.booleans(), min_size=rank, max_size=rank))
        result.append(tuple(1 if one else n for n, one in zip(kept, ones)))
    return result


@st.composite
def matmul_shapes(draw):
    """Operand shapes for np.matmul: vectors, matrices, and stacks of matrices whose
    batch axes broadcast against each other; now and then a zero inner or outer
    dimension."""
    n, k, m = draw(sometimes_zero(tuple(draw(st.integers(1, 3)) for _ in range(3))))
    batch_a, batch_b = draw(broadcastable_shapes(max_dims=2, empty=False))
    a_is_vector, b_is_vector = draw(st.booleans()), draw(st.booleans())
    shape_a = (k,) if a_is_vector else batch_a + (n, k)
    shape_b = (k,) if b_is_vector else batch_b + (k, m)
    return shape_a, shape_b


@st.composite
def shapes_and_axis(draw, empty_reductions=True):
    """A shape and a reduction ``axis``: None, an int or a tuple, negatives included (a
    0-d shape takes None, 0 or -1). Unless ``empty_reductions``, no reduced axis has
    size 0 (max has no value there)."""
    shape = draw(shapes())
    ndim = len(shape)
    if ndim == 0:
        return shape, draw(st.sampled_from([None, 0, -1]))
    axis = draw(st.none() | st.integers(-ndim, ndim - 1)
                | hnp.valid_tuple_axes(ndim, min_size=1))
    if not empty_reductions:
        reduced = range(ndim) if axis is None else np.atleast_1d(axis)
        if any(shape[a] == 0 for a in reduced):
            shape = tuple(1 if n == 0 else n for n in shape)
    return shape, axis


@st.composite
def permutations_of_axes(draw, min_dims=0):
    """A shape and a permutation of its axes, some written as negative axes."""
    shape = draw(shapes(min_dims=min_dims, max_dims=4))
    ndim = len(shape)
    order = draw(st.permutations(range(ndim)))
    negative = draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    return shape, tuple(a - ndim if neg else a for a, neg in zip(order, negative))


@st.composite
def concat_shapes(draw):
    """Shapes that agree except along ``axis``, and that axis (possibly negative); now
    and then a side of 0, along the axis or across it."""
    base = draw(shapes(min_dims=1, empty=False))
    axis = draw(st.integers(-len(base), len(base) - 1))
    sizes = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    sides = draw(sometimes_zero(base + sizes))
    base, sizes = list(sides[:len(base)]), sides[len(base):]
    result = []
    for size in sizes:
        base[axis] = size
        result.append(tuple(base))
    return result, axis


def requires_grad_flags(count):
    """Which of ``count`` inputs require grad: any pattern with at least one True."""
    return st.lists(st.booleans(), min_size=count, max_size=count).filter(any)


# ---- data -----------------------------------------------------------------------------
def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def positive(seed, shape):
    return np.random.default_rng(seed).uniform(0.5, 2.0, shape)


def away_from_zero(seed, shape):
    """|x| in [0.5, 2]: finite differences never straddle relu's kink or divide by ~0."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def distinct(seed, shape):
    """Values at least 0.1 apart, so no central difference crosses a tie for max."""
    size = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(size).reshape(shape) - size / 2) * 0.1


def leaves(arrays, flags=None):
    flags = [True] * len(arrays) if flags is None else flags
    return [tg.tensor(a, requires_grad=f) for a, f in zip(arrays, flags)]


def check_backward(fn, *inputs):
    """Assert that backward through ``fn(*inputs)`` matches central differences, that
    each gradient has its input's shape and dtype, and that neither the inputs nor the
    incoming gradient are modified (both are made read-only, then compared)."""
    before = [x.data.copy() for x in inputs]
    for x in inputs:
        x.data.setflags(write=False)
    out = fn(*inputs)
    assert out.dtype == np.float64
    grad_out = np.random.default_rng(1).standard_normal(out.shape)
    grad_out.setflags(write=False)
    expected_grad_out = grad_out.copy()
    out.backward(grad_out)
    for x in inputs:
        if x.requires_grad:
            assert x.grad.shape == x.shape
            assert x.grad.dtype == x.dtype
        else:
            assert x.grad is None
    assert tg.gradcheck(fn, inputs)
    for x, data in zip(inputs, before):
        np.testing.assert_array_equal(x.data, data)
    np.testing.assert_array_equal(grad_out, expected_grad_out)


class WrongSquare(Op):
    """x^2 with a wrong VJP (x instead of 2x)."""

    saves_inputs = True

    def forward(self, x):
        return x * x

    def backward(self, g, out, x):
        return g * x


class AddLeavingBroadcastToTheEngine(Op):
    """a + b whose VJP returns g for both: the engine sums broadcast axes back."""

    broadcasts = True

    def forward(self, a, b):
        return a + b

    def backward(self, g, out, a, b):
        return g, g


def test_check_backward_rejects_a_wrong_derivative():
    with pytest.raises(AssertionError):
        check_backward(WrongSquare.apply, tg.tensor([1.0, 2.0], requires_grad=True))


def test_the_engine_sums_a_gradient_back_over_broadcast_axes():
    a, b = leaves([normal(3, (2, 3)), normal(4, (1, 3))])
    check_backward(AddLeavingBroadcastToTheEngine.apply, a, b)
    assert b.grad.shape == (1, 3)


# ---- elementwise, two inputs ------------------------------------------------------
@pytest.mark.parametrize("op", [tg.add, tg.sub, tg.mul], ids=["add", "sub", "mul"])
@given(shape_pair=broadcastable_shapes(), seed=SEEDS, flags=requires_grad_flags(2))
def test_binary_op_gradient_matches_differences_under_broadcasting(op, shape_pair, seed,
                                                                   flags):
    a, b = leaves([normal(seed, shape_pair[0]), normal(seed + 1, shape_pair[1])], flags)
    check_backward(op, a, b)


@given(shape_pair=broadcastable_shapes(), seed=SEEDS, flags=requires_grad_flags(2))
def test_div_gradient_matches_differences_under_broadcasting(shape_pair, seed, flags):
    a, b = leaves([normal(seed, shape_pair[0]), away_from_zero(seed + 1, shape_pair[1])],
                  flags)
    check_backward(tg.div, a, b)


@given(shape=shapes(), seed=SEEDS, exponent=st.sampled_from([0, 1, 2, 3, -1, -2]))
def test_pow_with_integer_exponent_matches_differences_for_any_sign(shape, seed, exponent):
    (x,) = leaves([away_from_zero(seed, shape)])
    check_backward(lambda x: x ** exponent, x)


@given(shape=shapes(), seed=SEEDS, exponent=st.sampled_from([0.5, 1.5, -0.5, 2.7]))
def test_pow_with_fractional_exponent_matches_differences(shape, seed, exponent):
    (x,) = leaves([positive(seed, shape)])
    check_backward(lambda x: x ** exponent, x)


@given(shape_pair=broadcastable_shapes(), seed=SEEDS, flags=requires_grad_flags(2))
def test_pow_with_tensor_exponent_matches_differences_in_base_and_exponent(shape_pair, seed,
                                                                           flags):
    base, exponent = leaves([positive(seed, shape_pair[0]), normal(seed + 1, shape_pair[1])],
                            flags)
    check_backward(tg.pow, base, exponent)


def test_pow_gradients_at_zero_base_follow_the_documented_limits():
    base = tg.tensor([0.0, 0.0, 2.0], requires_grad=True)
    exponent = tg.tensor([0.0, 2.0, 0.0], requires_grad=True)
    (base ** exponent).sum().backward()
    # d(a^b)/da = b a^(b-1) is 0 where b == 0; d(a^b)/db = a^b log a is 0 at a == 0, b >= 0
    np.testing.assert_array_equal(base.grad, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(exponent.grad, [0.0, 0.0, np.log(2.0)])


@given(shape_pair=matmul_shapes(), seed=SEEDS, flags=requires_grad_flags(2))
def test_matmul_gradient_matches_differences_for_vectors_matrices_and_batches(shape_pair,
                                                                              seed, flags):
    a, b = leaves([normal(seed, shape_pair[0]), normal(seed + 1, shape_pair[1])], flags)
    assert tg.matmul(a, b).shape == np.matmul(a.data, b.data).shape
    check_backward(tg.matmul, a, b)


@st.composite
def linear_shapes(draw):
    """Shapes for linear(x, W, b): x (..., in) with 0-2 leading axes, W (out, in), and
    b (out,), the output's own shape, another that broadcasts to it, or none."""
    leading = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    n_in, n_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sides = draw(sometimes_zero(leading + (n_in, n_out)))
    leading, (n_in, n_out) = sides[:-2], sides[-2:]
    bias = draw(st.sampled_from(["none", "vector", "full", "ones"]))
    b_shape = {"none": None, "vector": (n_out,), "full": leading + (n_out,),
               "ones": (1,) * len(leading) + (n_out,)}[bias]
    return leading + (n_in,), (n_out, n_in), b_shape


@given(shapes=linear_shapes(), seed=SEEDS, flags=requires_grad_flags(3))
def test_linear_gradient_matches_differences(shapes, seed, flags):
    x_shape, W_shape, b_shape = shapes
    arrays = [normal(seed, x_shape), normal(seed + 1, W_shape)]
    if b_shape is not None:
        arrays.append(normal(seed + 2, b_shape))
    inputs = leaves(arrays, flags[:len(arrays)] if any(flags[:len(arrays)]) else None)
    assert tg.linear(*inputs).shape == x_shape[:-1] + (W_shape[0],)
    check_backward(tg.linear, *inputs)


def test_linear_sums_a_weight_used_at_many_steps_as_one_product():
    rng = np.random.default_rng(0)
    W = tg.tensor(rng.standard_normal((4, 4)) * 0.5, requires_grad=True)
    b = tg.tensor(rng.standard_normal(4), requires_grad=True)

    def unrolled(W, b):
        a = tg.tensor(np.ones((3, 4)))
        for _ in range(6):
            a = tg.linear(a, W, b).tanh()
        return a

    assert tg.gradcheck(unrolled, [W, b])


def test_linear_names_the_feature_mismatch():
    x, W = tg.tensor(np.ones((2, 5))), tg.tensor(np.ones((4, 3)))
    with pytest.raises(tg.ShapeError, match="linear: x has 5 features but W expects 3"):
        tg.linear(x, W)


# ---- elementwise, one input ---------------------------------------------------------
UNARY = [
    ("neg", tg.neg, normal),
    ("exp", tg.exp, normal),
    ("log", tg.log, positive),
    ("tanh", tg.tanh, normal),
    ("sigmoid", lambda x: tg.sigmoid(3 * x), normal),
    ("relu", tg.relu, away_from_zero),
]


@pytest.mark.parametrize("name, op, data", UNARY, ids=[u[0] for u in UNARY])
@given(shape=shapes(), seed=SEEDS)
def test_unary_op_gradient_matches_differences(name, op, data, shape, seed):
    (x,) = leaves([data(seed, shape)])
    check_backward(op, x)


def test_sigmoid_of_large_inputs_is_finite_and_correct_without_overflow_warnings():
    x = tg.tensor([-1000.0, -30.0, 0.0, 30.0, 1000.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "overflow encountered in exp"
        y = tg.sigmoid(x)
        y.sum().backward()
    # 1 / (1 + e^30) in a form that keeps full relative precision
    tiny = np.exp(-30.0) / (1 + np.exp(-30.0))
    np.testing.assert_allclose(y.data, [0.0, tiny, 0.5, 1 - tiny, 1.0], rtol=1e-15,
                               atol=1e-300)
    np.testing.assert_allclose(x.grad, [0.0, tiny * (1 - tiny), 0.25, tiny * (1 - tiny), 0.0],
                               rtol=1e-12, atol=1e-300)


def test_relu_passes_no_gradient_at_zero_or_below():
    x = tg.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    tg.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 1.0])


# ---- reductions ---------------------------------------------------------------------
@pytest.mark.parametrize("op", [tg.sum, tg.mean], ids=["sum", "mean"])
@given(shape_axis=shapes_and_axis(), keepdims=st.booleans(), seed=SEEDS)
def test_sum_and_mean_gradients_match_differences_for_every_axis(op, shape_axis, keepdims,
                                                                 seed):
    shape, axis = shape_axis
    (x,) = leaves([normal(seed, shape)])
    out = op(x, axis=axis, keepdims=keepdims)
    reference = np.sum if op is tg.sum else np.mean
    # np.mean refuses axis 0 of a 0-d array, which np.sum and torch take (it reduces nothing)
    np_axis = None if x.ndim == 0 else axis
    np.testing.assert_allclose(out.data, reference(x.data, axis=np_axis, keepdims=keepdims))
    check_backward(lambda x: op(x, axis=axis, keepdims=keepdims), x)


@given(shape_axis=shapes_and_axis(empty_reductions=False), keepdims=st.booleans(),
       seed=SEEDS)
def test_max_gradient_matches_differences_without_ties(shape_axis, keepdims, seed):
    shape, axis = shape_axis
    (x,) = leaves([distinct(seed, shape)])
    out = tg.max(x, axis=axis, keepdims=keepdims)
    np.testing.assert_array_equal(out.data, np.max(x.data, axis=axis, keepdims=keepdims))
    check_backward(lambda x: tg.max(x, axis=axis, keepdims=keepdims), x)


def test_max_splits_the_gradient_equally_among_tied_maxima():
    x = tg.tensor([1.0, 3.0, 3.0, 2.0, 3.0], requires_grad=True)
    (tg.max(x) * 6.0).backward()
    np.testing.assert_allclose(x.grad, [0.0, 2.0, 2.0, 0.0, 2.0], rtol=1e-15)


def test_max_over_an_axis_splits_each_slice_gradient_among_its_own_ties():
    x = tg.tensor([[5.0, 5.0, 1.0], [1.0, 2.0, 0.0]], requires_grad=True)
    tg.max(x, axis=1).backward(np.array([2.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [[1.0, 1.0, 0.0], [0.0, 3.0, 0.0]])


@given(shape_axis=shapes_and_axis(empty_reductions=False), keepdims=st.booleans(),
       seed=SEEDS)
def test_max_gives_each_of_k_tied_maxima_g_over_k(shape_axis, keepdims, seed):
    shape, axis = shape_axis
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.integers(0, 3, shape).astype(np.float64), requires_grad=True)
    out = tg.max(x, axis=axis, keepdims=keepdims)
    g = rng.uniform(1.0, 2.0, out.shape)
    out.backward(g)
    # g with the reduced axes put back as size 1 (the same elements in the same order)
    is_max = x.data == np.max(x.data, axis=axis, keepdims=True)
    k = np.sum(is_max, axis=axis, keepdims=True)
    g_kept = g.reshape(k.shape)
    np.testing.assert_allclose(x.grad, np.where(is_max, g_kept / k, 0.0), rtol=1e-15)


# ---- shape and indexing ---------------------------------------------------------------
@st.composite
def reshapes(draw):
    """A shape and a new shape of the same size (reversed, flat, with -1, or with 1s)."""
    shape = draw(shapes())
    size = int(np.prod(shape))
    new_shape = draw(st.sampled_from([shape[::-1], (-1,), (1,) + shape + (1,), (size, 1)]))
    return shape, new_shape


@given(shapes_pair=reshapes(), seed=SEEDS)
def test_reshape_gradient_matches_differences(shapes_pair, seed):
    shape, new_shape = shapes_pair
    (x,) = leaves([normal(seed, shape)])
    check_backward(lambda x: tg.reshape(x, new_shape), x)


@given(shape_axes=permutations_of_axes(), seed=SEEDS)
def test_permute_gradient_matches_differences_including_negative_axes(shape_axes, seed):
    shape, axes = shape_axes
    (x,) = leaves([normal(seed, shape)])
    assert tg.permute(x, axes).shape == np.transpose(x.data, axes).shape
    check_backward(lambda x: tg.permute(x, axes), x)


@given(shape=shapes(max_dims=4), seed=SEEDS)
def test_transpose_without_axes_reverses_them_and_its_gradient_matches(shape, seed):
    (x,) = leaves([normal(seed, shape)])
    assert x.T.shape == shape[::-1]
    check_backward(lambda x: tg.transpose(x), x)


@st.composite
def basic_indexing(draw):
    shape = draw(shapes())
    return shape, draw(hnp.basic_indices(shape, allow_newaxis=True))


@given(shape_index=basic_indexing(), seed=SEEDS)
def test_getitem_with_ints_slices_newaxis_and_ellipsis_matches_differences(shape_index,
                                                                          seed):
    shape, index = shape_index
    (x,) = leaves([normal(seed, shape)])
    check_backward(lambda x: x[index], x)


@given(shape=shapes(min_dims=1, empty=False), seed=SEEDS, count=st.integers(1, 5),
       on_last_axis=st.booleans())
def test_getitem_with_repeated_integer_indices_matches_differences(shape, seed, count,
                                                                  on_last_axis):
    n = shape[-1] if on_last_axis else shape[0]
    picks = np.random.default_rng(seed).integers(-n, n, count)
    picks = np.append(picks, picks[0])  # at least one place is picked twice
    index = (Ellipsis, picks) if on_last_axis else picks
    (x,) = leaves([normal(seed, shape)])
    check_backward(lambda x: x[index], x)


def test_getitem_with_repeated_indices_accumulates_one_gradient_per_pick():
    x = tg.tensor([10.0, 20.0, 30.0], requires_grad=True)
    x[[0, 2, 0, 0]].backward(np.array([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(x.grad, [8.0, 0.0, 2.0])


@given(shape=shapes(min_dims=1), seed=SEEDS, whole=st.booleans())
def test_getitem_with_boolean_mask_matches_differences(shape, seed, whole):
    rng = np.random.default_rng(seed)
    mask = rng.random(shape if whole else shape[:1]) < 0.5
    (x,) = leaves([normal(seed, shape)])
    check_backward(lambda x: x[mask], x)


@given(shapes_axis=concat_shapes(), seed=SEEDS, data=st.data())
def test_concat_gradient_matches_differences(shapes_axis, seed, data):
    input_shapes, axis = shapes_axis
    flags = data.draw(requires_grad_flags(len(input_shapes)))
    inputs = leaves([normal(seed + i, s) for i, s in enumerate(input_shapes)], flags)
    check_backward(lambda *xs: tg.concat(list(xs), axis=axis), *inputs)


@given(shape=shapes(), count=st.integers(1, 3), seed=SEEDS, data=st.data())
def test_stack_gradient_matches_differences(shape, count, seed, data):
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    flags = data.draw(requires_grad_flags(count))
    inputs = leaves([normal(seed + i, shape) for i in range(count)], flags)
    check_backward(lambda *xs: tg.stack(list(xs), axis=axis), *inputs)


@given(three_shapes=broadcastable_shapes(num_shapes=3), seed=SEEDS,
       flags=requires_grad_flags(2))
def test_where_gradient_matches_differences_with_three_way_broadcasting(three_shapes, seed,
                                                                        flags):
    shape_condition, shape_a, shape_b = three_shapes
    condition = np.random.default_rng(seed).random(shape_condition) < 0.5
    a, b = leaves([normal(seed + 1, shape_a), normal(seed + 2, shape_b)], flags)
    check_backward(lambda a, b: tg.where(condition, a, b), a, b)


@given(shape=shapes(), seed=SEEDS, data=st.data())
def test_log_softmax_gradient_matches_differences_along_any_axis(shape, seed, data):
    sides = max(len(shape), 1)  # a 0-d tensor takes axis 0 or -1
    axis = data.draw(st.integers(-sides, sides - 1))
    (x,) = leaves([3 * normal(seed, shape)])
    check_backward(lambda x: tg.log_softmax(x, axis=axis), x)


def test_log_softmax_of_logits_of_plus_minus_1000_is_finite_and_exact():
    x = tg.tensor([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, -1000.0]], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = tg.log_softmax(x, axis=1)
        out.backward(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    np.testing.assert_allclose(out.data, [[0.0, -2000.0, -1000.0], [-np.log(3.0)] * 3],
                               rtol=1e-15)
    # dL/dx = g - softmax(x) sum(g): softmax rows are (1, 0, 0) and (1/3, 1/3, 1/3)
    np.testing.assert_allclose(x.grad, [[0.0, 0.0, 0.0], [-1 / 3, 2 / 3, -1 / 3]],
                               rtol=1e-15, atol=1e-300)
