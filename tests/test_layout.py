"""tinygraph.layout: the memory order of a shared weight, chosen by measuring once.

No test here depends on the real clock: a fake one stands in for the perf_counter
that layout times with, so every test is deterministic.
"""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygraph as tg
from tinygraph import layout, nn


def _forced(monkeypatch, f_faster):
    """Make ``f_order_faster`` answer ``f_faster`` for every shape, and record the
    (rows, shape) it is asked about."""
    calls = []
    monkeypatch.setattr(layout, "f_order_faster",
                        lambda rows, shape, dtype: calls.append((rows, shape)) or f_faster)
    return calls


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Costly:
    """A stand-in for a matrix operand: ``x @ it`` advances the fake clock by ``cost``
    and returns x + ``offset`` (so two stand-ins can give equal or unequal products)."""

    __array_ufunc__ = None  # x @ it calls it.__rmatmul__(x)

    def __init__(self, clock, cost, offset=0.0):
        self.clock, self.cost, self.offset, self.uses = clock, cost, offset, 0

    def __rmatmul__(self, x):
        self.clock.now += self.cost
        self.uses += 1
        return x + self.offset


@pytest.fixture
def clock(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(layout, "perf_counter", clock)
    return clock


@pytest.mark.parametrize("cost_c, cost_f, f_wins", [
    (2.0, 1.0, True),    # clearly faster
    (1.0, 0.9, True),    # just within the margin
    (1.0, 0.95, False),  # a near tie decides nothing
    (1.0, 2.0, False)])
def test_the_f_order_wins_only_when_clearly_faster(clock, cost_c, cost_f, f_wins):
    M_c, M_f = _Costly(clock, cost_c), _Costly(clock, cost_f)
    assert layout._measure(np.ones((4, 3)), M_c, M_f) is f_wins
    assert M_c.uses == M_f.uses == layout.RUNS


def test_the_f_order_loses_when_its_product_has_other_bits_however_fast(clock):
    M_c, M_f = _Costly(clock, 10.0), _Costly(clock, 1.0, offset=1e-16 * 4)
    assert layout._measure(np.ones((4, 3)), M_c, M_f) is False


def test_a_slow_moment_in_one_run_does_not_decide(clock):
    class Hiccup(_Costly):  # the C order is faster, but its first run was interrupted
        def __rmatmul__(self, x):
            self.clock.now += 50.0 if self.uses == 0 else 0.0
            return super().__rmatmul__(x)

    assert layout._measure(np.ones((4, 3)), Hiccup(clock, 1.0), _Costly(clock, 2.0)) is False


def test_each_shape_is_measured_once_on_seeded_operands_and_remembered(monkeypatch):
    monkeypatch.setattr(layout, "_f_order_wins", {})
    probes = []
    monkeypatch.setattr(layout, "_measure", lambda x, M_c, M_f: probes.append(
        (x.copy(), M_c.copy(), M_f.flags.f_contiguous, np.array_equal(M_c, M_f))) or True)
    for rows in (4, 4, 5, 4, 5):
        assert layout.f_order_faster(rows, (64, 64), np.dtype(np.float32))
    assert [x.shape for x, *_ in probes] == [(4, 64), (5, 64)]
    x, M_c, f_contiguous, same = probes[0]
    assert (x.dtype, M_c.dtype, M_c.shape, f_contiguous, same) == (
        np.float32, np.float32, (64, 64), True, True)
    again = layout._probe(4, (64, 64), np.dtype(np.float32))
    assert np.array_equal(again[0], x) and np.array_equal(again[1], M_c)  # seeded
    assert sorted(layout._f_order_wins) == [(4, (64, 64), np.float32), (5, (64, 64), np.float32)]


@pytest.mark.parametrize("rows, shape", [
    (1, (128, 128)),                   # one row: the orders round differently
    (16, (32, 64)),                    # a small matrix: the order hardly matters
    (layout.MAX_ROWS + 1, (128, 128))])  # many rows: M is packed once for all of them
def test_some_products_take_the_c_order_without_measuring(monkeypatch, rows, shape):
    monkeypatch.setattr(layout, "_f_order_wins", {})
    monkeypatch.setattr(layout, "_measure", lambda *operands: pytest.fail("measured"))
    assert layout.f_order_faster(rows, shape, np.dtype(np.float64)) is False
    assert layout._f_order_wins == {}


@pytest.mark.parametrize("f_faster", [True, False])
def test_matmul_multiplies_by_the_operand_of_the_chosen_order(monkeypatch, f_faster):
    calls = _forced(monkeypatch, f_faster)
    rng = np.random.default_rng(0)
    x, M = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    other = np.asfortranarray(2 * M)  # a different matrix, to see which one was used
    expected = x @ (other if f_faster else M)
    np.testing.assert_array_equal(layout.matmul(x, M, other), expected)
    assert calls == [(5, (7, 3))]


@pytest.mark.parametrize("M_c, M_f", [
    (np.ones((7, 3), order="F"), np.ones((7, 3), order="F")),  # no C-order operand
    (np.ones((7, 3)), np.ones((7, 3))),                        # no F-order operand
    (np.ones((7, 3), dtype=np.float32), np.ones((7, 3), dtype=np.float32, order="F"))])
def test_matmul_asks_nothing_when_the_operands_are_not_what_it_compares(
        monkeypatch, M_c, M_f):
    calls = _forced(monkeypatch, True)
    np.testing.assert_array_equal(layout.matmul(np.ones((5, 7)), M_c, M_f), np.full((5, 3), 7))
    assert calls == []


class _Thrice(nn.Module):
    """tanh(tanh(tanh(x W^T + b) W^T + b) W^T + b): one weight used three times in one
    Module call, so its uses share a copy of W^T."""

    def forward(self, x, W, b):
        for _ in range(3):
            x = tg.linear(x, W, b).tanh()
        return x


def _weights(seed):
    rng = np.random.default_rng(seed)
    return (tg.tensor(rng.standard_normal((6, 4)), requires_grad=True),
            nn.Parameter(rng.standard_normal((4, 4)) / 2), nn.Parameter(rng.standard_normal(4)))


@pytest.mark.parametrize("f_faster", [True, False])
def test_a_shared_weight_gets_the_same_values_and_gradients_in_either_order(
        monkeypatch, f_faster):
    calls = _forced(monkeypatch, f_faster)
    inputs = _weights(2)
    out = _Thrice()(*inputs)
    (out * out).sum().backward()
    assert calls and set(calls) == {(6, (4, 4))}  # the shared copy was used
    grads = [t.grad for t in inputs]
    for t in inputs:
        t.grad = None
    asked = len(calls)
    plain = _Thrice().forward(*inputs)  # not a Module call: no shared copy, no choice
    (plain * plain).sum().backward()
    assert len(calls) == asked
    assert np.allclose(out.data, plain.data, rtol=0, atol=1e-14)
    for got, t in zip(grads, inputs):
        assert np.allclose(got, t.grad, rtol=0, atol=1e-13)


@pytest.mark.parametrize("f_faster", [True, False])
def test_gradcheck_passes_through_a_shared_weight_in_either_order(monkeypatch, f_faster):
    calls = _forced(monkeypatch, f_faster)
    assert tg.gradcheck(_Thrice(), _weights(3))
    assert calls


class _TwoWeights(nn.Module):
    """x W1^T W1^T W2^T (+ b): two weights, one of them used twice, with any shapes."""

    def forward(self, x, W1, W2, b):
        return tg.linear(tg.linear(tg.linear(x, W1), W1), W2, b)


@settings(max_examples=40)
@given(lead=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4),
       n=st.integers(1, 5), p=st.integers(1, 5), f_faster=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_shared_weights_of_any_shape_match_the_plain_forward_and_backward(
        lead, n, p, f_faster, seed):
    """x is (..., n), W1 (n, n) is shared, W2 (p, n) is used once; every row count,
    one row included, in either order."""
    measured = layout.f_order_faster
    layout.f_order_faster = lambda rows, shape, dtype: f_faster  # (@given: no monkeypatch)
    try:
        rng = np.random.default_rng(seed)
        inputs = [tg.tensor(rng.standard_normal(shape), requires_grad=True)
                  for shape in (lead + (n,), (n, n), (p, n), (p,))]
        out = _TwoWeights()(*inputs)
        (out * out).sum().backward()
        grads = [t.grad for t in inputs]
        for t in inputs:
            t.grad = None
        plain = _TwoWeights().forward(*inputs)
        (plain * plain).sum().backward()
    finally:
        layout.f_order_faster = measured
    assert np.allclose(out.data, plain.data, rtol=1e-13, atol=1e-13)
    for got, t in zip(grads, inputs):
        assert got.shape == t.shape
        assert np.allclose(got, t.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("f_faster", [True, False])
def test_a_node_keeps_the_shared_copy_only_where_its_backward_multiplies_by_it(
        monkeypatch, f_faster):
    _forced(monkeypatch, f_faster)
    out = _Thrice()(*_weights(4))
    third_linear = out.op.parents[0]  # out = tanh(linear(...)), W's third use
    assert (third_linear.saved[2] is not None) is f_faster  # saved: rows, W, W_T, ...
