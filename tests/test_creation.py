"""Constructors: tensors from a shape or from another tensor, as PyTorch's."""
import numpy as np
import pytest

import tinygraph as tg

try:
    import torch
except ImportError:
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

SHAPED = [tg.zeros, tg.ones, tg.empty, tg.randn, tg.rand]


@pytest.mark.parametrize("make", SHAPED, ids=[f.__name__ for f in SHAPED])
def test_a_shape_is_separate_ints_or_one_tuple_and_float64_by_default(make):
    assert make(2, 3).shape == make((2, 3)).shape == make([2, 3]).shape == (2, 3)
    assert make().shape == () and make(0, 4).shape == (0, 4)
    assert make(2).dtype == np.float64 and make(2, dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize("make", SHAPED, ids=[f.__name__ for f in SHAPED])
def test_requires_grad_and_name_are_taken_as_tg_tensor_takes_them(make):
    x = make(2, 2, requires_grad=True, name="W")
    assert x.requires_grad and x.is_leaf and x.name == "W"
    (x * x).sum().backward()
    assert x.grad.shape == (2, 2)


def test_zeros_ones_and_full_hold_their_values():
    np.testing.assert_array_equal(tg.zeros(2, 3).data, np.zeros((2, 3)))
    np.testing.assert_array_equal(tg.ones(3).data, np.ones(3))
    np.testing.assert_array_equal(tg.full((2, 2), 7.5).data, np.full((2, 2), 7.5))
    assert tg.full(3, 1.0).shape == (3,)


@needs_torch
@pytest.mark.parametrize("args", [(5,), (1, 4), (0.0, 1.0, 0.25), (2, 11, 3), (3, 0, -1)])
def test_arange_gives_torchs_values_and_kind_of_dtype(args):
    ours, theirs = tg.arange(*args), torch.arange(*args, dtype=torch.get_default_dtype()
                                                  if any(isinstance(a, float) for a in args)
                                                  else None)
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-7)
    assert ours.dtype == float64_for_float(theirs.numpy().dtype)


def float64_for_float(dtype):
    """torch's dtype with its default float (float32) read as tinygraph's, float64."""
    return np.dtype(np.float64) if dtype.kind == "f" else dtype


@needs_torch
@pytest.mark.parametrize("value", [3, 2.5, True])
def test_full_takes_the_kind_of_its_dtype_from_the_value_as_torch(value):
    assert tg.full((2,), value).dtype == float64_for_float(torch.full((2,), value).numpy().dtype)


def test_linspace_and_eye_as_numpy():
    np.testing.assert_array_equal(tg.linspace(0, 1, 5).data, np.linspace(0, 1, 5))
    np.testing.assert_array_equal(tg.eye(3).data, np.eye(3))
    assert tg.eye(2, 4).shape == (2, 4)


def test_randn_and_rand_repeat_after_manual_seed_and_differ_without_it():
    tg.manual_seed(5)
    a, u = tg.randn(4, 3), tg.rand(4, 3)
    tg.manual_seed(5)
    b, v = tg.randn(4, 3), tg.rand(4, 3)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(u.data, v.data)
    assert not np.array_equal(tg.randn(4, 3).data, a.data)


def test_randn_is_standard_normal_and_rand_uniform_on_the_unit_interval():
    tg.manual_seed(0)
    z, u = tg.randn(20000).data, tg.rand(20000).data
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01


def test_randint_draws_integers_in_the_half_open_range():
    tg.manual_seed(1)
    x = tg.randint(2, 5, size=(1000,))
    assert x.dtype == np.int64 and set(np.unique(x.data)) == {2, 3, 4}
    assert tg.randint(3, size=4).data.max() < 3


LIKE = [(tg.zeros_like, 0.0), (tg.ones_like, 1.0), (tg.empty_like, None),
        (tg.randn_like, None), (tg.rand_like, None)]


@pytest.mark.parametrize("like, value", LIKE, ids=[f.__name__ for f, _ in LIKE])
def test_like_constructors_take_the_shape_and_dtype_of_a_tensor_or_an_array(like, value):
    x = tg.tensor(np.zeros((2, 3), np.float32))
    for source in (x, x.data):
        made = like(source)
        assert made.shape == (2, 3) and made.dtype == np.float32
        if value is not None:
            assert (made.data == value).all()
    assert like(x, dtype=np.float64, requires_grad=True).requires_grad
    assert tg.full_like(x, 4.0).dtype == np.float32 and (tg.full_like(x, 4.0).data == 4).all()


def test_from_numpy_shares_memory_both_ways_as_torch():
    array = np.zeros(3)
    x = tg.from_numpy(array)
    array[0] = 5.0
    assert x.data[0] == 5.0 and x.data is array
    x.data[1] = 2.0
    assert array[1] == 2.0
    assert tg.from_numpy(np.zeros(2, np.float32)).dtype == np.float32


def test_from_numpy_of_something_else_is_a_type_error_that_points_to_tg_tensor():
    with pytest.raises(TypeError, match="from_numpy expects an np.ndarray, not list"):
        tg.from_numpy([1.0, 2.0])


def test_an_integer_tensor_cannot_require_grad_and_a_negative_size_is_an_error():
    with pytest.raises(TypeError, match="only floating-point tensors can require grad"):
        tg.arange(3, requires_grad=True)
    with pytest.raises(ValueError, match="a shape is made of ints >= 0"):
        tg.zeros(2, -1)
    with pytest.raises(ValueError, match="arange: step must not be 0"):
        tg.arange(0, 3, 0)
