"""Gradients summed lazily: a weight's many uses as one product (the accelerator's
RowSum), and indexing's sparse gradient (the core's Scatter), give what eager sums give."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph import ops
from tinygraph.accel.rowsum import RowSum
from tinygraph.ops import Scatter


def _unrolled(W, b, steps=7):
    a = tg.tensor(np.linspace(-1, 1, 12).reshape(3, 4))
    for _ in range(steps):
        a = tg.linear(a, W, b).tanh()
    assert type(a.op.parents[0]).__module__ == "tinygraph.accel.rowsum"
    return a.sum()


def _leaves(seed=0):
    rng = np.random.default_rng(seed)
    return (tg.tensor(rng.standard_normal((4, 4)) * 0.5, requires_grad=True),
            tg.tensor(rng.standard_normal(4), requires_grad=True))


def _eager_grads():
    """The same unroll with matmul and add: every use's gradient built and added at once."""
    W, b = _leaves()
    a = tg.tensor(np.linspace(-1, 1, 12).reshape(3, 4))
    for _ in range(7):
        a = (a @ W.T + b).tanh()
    a.sum().backward()
    return W.grad, b.grad


@pytest.mark.parametrize("max_rows", [1, 4, 5, 1024])
def test_row_sums_equal_eager_sums_whatever_the_flush_size(monkeypatch, max_rows):
    monkeypatch.setattr(RowSum, "MAX_ROWS", max_rows)
    W, b = _leaves()
    _unrolled(W, b).backward()
    W_expected, b_expected = _eager_grads()
    np.testing.assert_allclose(W.grad, W_expected, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(b.grad, b_expected, rtol=1e-13, atol=1e-14)


def test_a_weight_used_by_linear_and_by_another_op_mixes_both_kinds_of_gradient():
    W, b = _leaves()
    loss = _unrolled(W, b, steps=3) + (W * W).sum()
    loss.backward()
    W2, b2 = _leaves()
    a = tg.tensor(np.linspace(-1, 1, 12).reshape(3, 4))
    for _ in range(3):
        a = (a @ W2.T + b2).tanh()
    (a.sum() + (W2 * W2).sum()).backward()
    np.testing.assert_allclose(W.grad, W2.grad, rtol=1e-13)


def test_row_sum_of_kinds_that_do_not_match_falls_back_to_arrays():
    G, X = np.ones((2, 3)), np.arange(8.0).reshape(2, 4)
    weight_grad, column_sums = RowSum(G, X), RowSum(np.ones((2, 4)))
    for total in (weight_grad + np.ones((3, 4)), np.ones((3, 4)) + RowSum(G, X)):
        assert isinstance(total, np.ndarray)
        np.testing.assert_array_equal(total, G.T @ X + 1)
    np.testing.assert_array_equal(column_sums.evaluate(), [2, 2, 2, 2])


def test_a_recorded_backward_uses_the_cores_vjps_inside_a_module_call():
    W, b = _leaves()
    (gW,) = tg.grad(_unrolled(W, b, steps=3), [W], create_graph=True)
    W2, b2 = _leaves()
    a = tg.tensor(np.linspace(-1, 1, 12).reshape(3, 4))
    for _ in range(3):
        a = ops.Linear.apply(a, W2, b2).tanh()  # the core's op
    (gW2,) = tg.grad(a.sum(), [W2], create_graph=True)
    np.testing.assert_allclose(gW.data, gW2.data, rtol=1e-13)
    assert gW.requires_grad


def test_scatter_pieces_add_up_overlaps_and_repeats():
    one = Scatter((4,), np.float64, slice(0, 2), np.array([1.0, 2.0]))
    two = Scatter((4,), np.float64, np.array([1, 1, 3]), np.array([10.0, 10.0, 5.0]))
    np.testing.assert_array_equal((one + two).evaluate(), [1.0, 22.0, 0.0, 5.0])
    np.testing.assert_array_equal(np.ones(4) + Scatter((4,), np.float64, 3, np.array(2.0)),
                                  [1.0, 1.0, 1.0, 3.0])


def test_slicing_every_step_of_a_sequence_gives_each_its_gradient():
    xs = tg.tensor(np.random.default_rng(1).standard_normal((50, 2, 3)), requires_grad=True)
    loss = xs[0].sum()
    for t in range(1, 50):
        loss = loss + (xs[t] * t).sum()
    loss.backward()
    np.testing.assert_array_equal(xs.grad, np.broadcast_to(
        np.maximum(np.arange(50), 1)[:, None, None], (50, 2, 3)))


def _rows_of(shape, indices, seed=0):
    """(the Scatter of x[i] for i in indices, evaluated; the same summed by hand)."""
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(shape[1:]) for _ in indices]
    expected = np.zeros(shape)
    for i, g in zip(indices, grads):
        expected[i] += g
    total = Scatter(shape, np.float64, indices[0], grads[0])
    for i, g in zip(indices[1:], grads[1:]):
        total = total + Scatter(shape, np.float64, i, g)
    return total.evaluate(), expected


@pytest.mark.parametrize("indices", [[2, 1, 0], [0, -2, 2], [-1, -2, -3],
                                     [np.int64(1), 0, np.int32(2)], [0, 0, 1], [0, -3, 2],
                                     [1, 2], [True, 0, 1], [0, slice(0, 2), 1],
                                     [slice(None), 0, 2, 0], [1, -2, slice(1, None)]])
def test_scatter_of_rows_adds_them_up_with_zeros_elsewhere(indices):
    got, expected = _rows_of((3, 2), indices)
    np.testing.assert_array_equal(got, expected)
