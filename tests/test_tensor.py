"""Tensor: dtypes, attributes, operators, comparisons, and errors on bad input."""
import operator

import numpy as np
import pytest

import tinygraph as tg


# ---- dtypes --------------------------------------------------------------------------
def test_python_floats_and_ints_mixed_become_float64():
    assert tg.tensor(1.5).dtype == np.float64
    assert tg.tensor([1, 2.5]).dtype == np.float64


def test_float32_data_stays_float32():
    x = tg.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    assert x.dtype == np.float32
    assert tg.tensor([1.0, 2.0], dtype=np.float32).dtype == np.float32


FLOAT32_WITH_NUMBERS = {
    "x + 1": lambda x: x + 1,
    "2.5 + x": lambda x: 2.5 + x,
    "x - 0.5": lambda x: x - 0.5,
    "1 - x": lambda x: 1 - x,
    "x * 3.0": lambda x: x * 3.0,
    "0.1 * x": lambda x: 0.1 * x,
    "x / 7.0": lambda x: x / 7.0,
    "1.0 / x": lambda x: 1.0 / x,
    "x ** 2": lambda x: x ** 2,
    "2.0 ** x": lambda x: 2.0 ** x,
    "where(c, x, 0.0)": lambda x: tg.where(np.array([True, False]), x, 0.0),
}


@pytest.mark.parametrize("expression", FLOAT32_WITH_NUMBERS)
def test_float32_with_a_python_number_stays_float32_forward_and_backward(expression):
    x = tg.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = FLOAT32_WITH_NUMBERS[expression](x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


FLOAT32_OPS = {
    "tanh": tg.tanh, "sigmoid": tg.sigmoid, "relu": tg.relu, "exp": tg.exp,
    "log": tg.log, "neg": tg.neg,
    "sum": lambda h: tg.sum(h, axis=0), "mean": lambda h: tg.mean(h, axis=1),
    "max": lambda h: tg.max(h, axis=1), "log_softmax": tg.log_softmax,
    "reshape": lambda h: tg.reshape(h, (-1,)), "permute": lambda h: tg.permute(h, (1, 0)),
    "getitem": lambda h: h[[0, 0, 1]], "mask": lambda h: h[h > 1.5],
    "concat": lambda h: tg.concat([h, h], axis=1), "stack": lambda h: tg.stack([h, h]),
    "where": lambda h: tg.where(h > 1.5, h, h * 2), "matmul": lambda h: h @ h.T,
    "pow": lambda h: h ** h, "div": lambda h: h / (h + 1),
}


@pytest.mark.parametrize("name", FLOAT32_OPS)
def test_every_op_passes_float32_gradients_on_in_float32(name):
    x = tg.tensor(np.array([[1.0, 2.0, 3.0], [1.5, 0.5, 2.5]], dtype=np.float32),
                  requires_grad=True)
    h = x * 1  # a non-leaf: its hook sees the gradient the op passed on, uncast
    dtypes = []
    h.register_hook(lambda g: dtypes.append(g.dtype))
    out = FLOAT32_OPS[name](h)
    assert out.dtype == np.float32
    out.sum().backward()
    assert dtypes == [np.float32]


def test_integer_data_is_allowed_and_stays_integer():
    t = tg.tensor([1, 2, 3])
    assert t.dtype.kind == "i"
    assert not t.requires_grad


def test_requires_grad_on_integer_data_raises_type_error_naming_the_dtype():
    with pytest.raises(TypeError, match="int64.*float"):
        tg.tensor(np.array([1, 2], dtype=np.int64), requires_grad=True)


def test_setting_requires_grad_later_on_integer_data_also_raises():
    t = tg.tensor([1, 2])
    with pytest.raises(TypeError, match="floating-point"):
        t.requires_grad = True
    assert not t.requires_grad


# ---- attributes ------------------------------------------------------------------------
def test_shape_ndim_dtype_and_size_describe_the_data():
    t = tg.tensor(np.zeros((2, 3, 4)))
    assert (t.shape, t.ndim, t.dtype, t.size) == ((2, 3, 4), 3, np.float64, 24)


def test_item_returns_the_single_element_as_a_python_number():
    value = tg.tensor([[2.5]]).item()
    assert value == 2.5 and type(value) is float


def test_item_on_several_elements_raises_naming_the_shape():
    with pytest.raises(ValueError, match=r"\(2,\)"):
        tg.tensor([1.0, 2.0]).item()


def test_numpy_returns_the_underlying_array():
    data = np.array([1.0, 2.0])
    assert tg.tensor(data).numpy() is data


def test_detach_shares_data_and_cuts_the_graph():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    d = y.detach()
    assert np.shares_memory(d.data, y.data)
    assert d.op is None and d.is_leaf and not d.requires_grad
    assert not (d * 3.0).requires_grad


def test_repr_shows_values_shape_dtype_and_op():
    x = tg.tensor([1.0, 2.0], requires_grad=True, name="x")
    text = repr(x.tanh())
    assert "shape=(2,)" in text and "float64" in text and "op=tanh" in text
    assert "name='x'" in repr(x) and "requires_grad=True" in repr(x)


# ---- operators -----------------------------------------------------------------------------
OPERATORS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.__name__)
@pytest.mark.parametrize("other_kind", ["tensor", "number", "array"])
@pytest.mark.parametrize("tensor_on_left", [True, False])
def test_operators_take_tensors_numbers_and_arrays_on_either_side(op, other_kind,
                                                                  tensor_on_left):
    x = tg.tensor([1.5, 2.0], requires_grad=True)
    other_value = np.array([0.5, 3.0])
    other = {"tensor": tg.tensor(other_value), "number": 2.0, "array": other_value}[other_kind]
    result = op(x, other) if tensor_on_left else op(other, x)
    plain = other if other_kind == "number" else other_value
    expected = op(x.data, plain) if tensor_on_left else op(plain, x.data)
    assert isinstance(result, tg.Tensor)
    np.testing.assert_allclose(result.data, expected, rtol=1e-15)
    result.sum().backward()
    assert x.grad.shape == x.shape


@pytest.mark.parametrize("tensor_on_left", [True, False])
def test_matmul_operator_takes_an_array_on_either_side(tensor_on_left):
    W = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    v = np.array([1.0, -1.0, 2.0]) if tensor_on_left else np.array([1.0, -1.0])
    result = W @ v if tensor_on_left else v @ W
    assert isinstance(result, tg.Tensor)
    np.testing.assert_array_equal(result.data, W.data @ v if tensor_on_left else v @ W.data)


def test_unary_minus_and_indexing_are_ops():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    assert (-x).op.name == "neg"
    assert x[0].op.name == "getitem"


def test_public_functions_accept_two_plain_operands():
    result = tg.add(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    assert isinstance(result, tg.Tensor)
    np.testing.assert_array_equal(result.data, [4.0, 6.0])
    assert tg.mul(2.0, 3.0).item() == 6.0


# ---- comparisons ---------------------------------------------------------------------------
COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]


@pytest.mark.parametrize("op", COMPARISONS, ids=lambda op: op.__name__)
@pytest.mark.parametrize("other_kind", ["tensor", "number", "array"])
@pytest.mark.parametrize("tensor_on_left", [True, False])
def test_comparisons_return_plain_boolean_arrays(op, other_kind, tensor_on_left):
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    other_value = np.array([3.0, 2.0, 1.0])
    other = {"tensor": tg.tensor(other_value), "number": 2.0, "array": other_value}[other_kind]
    result = op(x, other) if tensor_on_left else op(other, x)
    plain = other if other_kind == "number" else other_value
    assert type(result) is np.ndarray and result.dtype == bool
    expected = op(x.data, plain) if tensor_on_left else op(plain, x.data)
    np.testing.assert_array_equal(result, expected)


def test_tensors_hash_by_identity_so_they_can_key_dicts():
    a, b = tg.tensor([1.0]), tg.tensor([1.0])
    assert len({a: 1, b: 2}) == 2


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("name, shapes", [
    ("add", ((2, 3), (4,))),
    ("mul", ((2, 3), (3, 2))),
    ("matmul", ((2, 3), (4, 5))),
    ("matmul", ((2, 2, 3), (3, 3, 4))),
    ("matmul", ((3,), (2,))),
])
def test_a_shape_mismatch_raises_shape_error_naming_the_op_and_both_shapes(name, shapes):
    a = tg.tensor(np.ones(shapes[0]), requires_grad=True)
    b = tg.tensor(np.ones(shapes[1]), requires_grad=True)
    op = {"add": operator.add, "mul": operator.mul, "matmul": operator.matmul}[name]
    with pytest.raises(tg.ShapeError) as error:
        op(a, b)
    message = str(error.value)
    assert message.startswith(name)
    assert str(shapes[0]) in message and str(shapes[1]) in message


@pytest.mark.parametrize("name, call", [
    ("concat", lambda a, b: tg.concat([a, b], axis=0)),
    ("stack", lambda a, b: tg.stack([a, b])),
    ("reshape", lambda a, b: tg.reshape(a, (4, 4))),
])
def test_shape_ops_given_unfit_shapes_raise_shape_error_naming_the_op(name, call):
    a = tg.tensor(np.ones((2, 3)), requires_grad=True)
    b = tg.tensor(np.ones((2, 4)), requires_grad=True)
    with pytest.raises(tg.ShapeError, match=rf"^{name}: .*\(2, 3\)"):
        call(a, b)


def test_where_with_a_condition_that_does_not_broadcast_raises_shape_error():
    a = tg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(tg.ShapeError, match="^where"):
        tg.where(np.ones(2, dtype=bool), a, a)


def test_tensors_are_unchanged_after_a_shape_error():
    a = tg.tensor(np.ones((2, 3)), requires_grad=True)
    b = tg.tensor(np.ones((4, 5)), requires_grad=True)
    a.grad = np.full((2, 3), 7.0)
    with pytest.raises(tg.ShapeError):
        a @ b
    np.testing.assert_array_equal(a.data, np.ones((2, 3)))
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 7.0))
    assert b.grad is None and a.is_leaf and b.is_leaf


def test_an_out_of_range_index_raises_index_error_naming_getitem():
    x = tg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(IndexError, match="^getitem"):
        x[5]
