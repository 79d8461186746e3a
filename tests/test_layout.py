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
    """Make every new shape choose the F order (True) or the C order (False)."""
    calls = []
    monkeypatch.setattr(layout, "_f_order_faster", {})
    monkeypatch.setattr(layout, "_time_both",
                        lambda x, M_c, M_f: calls.append((x.shape, M_c.shape)) or f_faster)
    return calls


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _Costly:
    """A stand-in for a matrix operand: ``x @ it`` advances the fake clock by ``cost``."""

    __array_ufunc__ = None  # x @ it calls it.__rmatmul__(x)

    def __init__(self, clock, cost):
        self.clock, self.cost, self.uses = clock, cost, 0

    def __rmatmul__(self, x):
        self.clock.now += self.cost
        self.uses += 1
        return x


@pytest.mark.parametrize("cost_c, cost_f, f_faster", [(2.0, 1.0, True), (1.0, 2.0, False)])
def test_the_order_that_took_less_time_is_chosen(monkeypatch, cost_c, cost_f, f_faster):
    clock = _Clock()
    monkeypatch.setattr(layout, "perf_counter", clock)
    M_c, M_f = _Costly(clock, cost_c), _Costly(clock, cost_f)
    assert layout._time_both(np.ones((4, 3)), M_c, M_f) is f_faster
    assert M_c.uses == M_f.uses == 3


def test_a_slow_moment_in_one_run_does_not_decide(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(layout, "perf_counter", clock)

    class Hiccup(_Costly):  # the C order is faster, but its first run was interrupted
        def __rmatmul__(self, x):
            self.clock.now += 50.0 if self.uses == 0 else 0.0
            return super().__rmatmul__(x)

    assert layout._time_both(np.ones((4, 3)), Hiccup(clock, 1.0), _Costly(clock, 2.0)) is False


@pytest.mark.parametrize("f_faster", [True, False])
def test_matmul_gives_x_times_M_with_either_order(monkeypatch, f_faster):
    _forced(monkeypatch, f_faster)
    rng = np.random.default_rng(0)
    x, M = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    got = layout.matmul(x, M, np.asfortranarray(M))
    assert np.allclose(got, x @ M, rtol=0, atol=1e-13)


def test_each_shape_is_measured_once_and_remembered(monkeypatch):
    calls = _forced(monkeypatch, True)
    M = np.ones((3, 2))
    for rows in (4, 4, 5, 4, 5):
        layout.matmul(np.ones((rows, 3)), M, np.asfortranarray(M))
    assert calls == [((4, 3), (3, 2)), ((5, 3), (3, 2))]
    assert layout._f_order_faster == {(4, (3, 2), np.dtype(np.float64)): True,
                                      (5, (3, 2), np.dtype(np.float64)): True}


def test_one_row_always_uses_the_c_order_and_measures_nothing(monkeypatch):
    calls = _forced(monkeypatch, True)
    clock = _Clock()
    M_c, M_f = _Costly(clock, 1.0), _Costly(clock, 1.0)
    layout.matmul(np.ones((1, 3)), M_c, M_f)
    assert (M_c.uses, M_f.uses, calls) == (1, 0, [])


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
    assert calls == [((6, 4), (4, 4))]  # the shared copy was used (one shape: W is square)
    grads = [t.grad for t in inputs]
    for t in inputs:
        t.grad = None
    plain = _Thrice().forward(*inputs)  # not a Module call: no shared copy, no choice
    (plain * plain).sum().backward()
    assert len(calls) == 1
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
    measured, remembered = layout._time_both, dict(layout._f_order_faster)
    layout._time_both = lambda x, M_c, M_f: f_faster  # (no monkeypatch: @given runs many)
    layout._f_order_faster.clear()
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
        layout._time_both = measured
        layout._f_order_faster.clear()
        layout._f_order_faster.update(remembered)
    assert np.allclose(out.data, plain.data, rtol=1e-13, atol=1e-13)
    for got, t in zip(grads, inputs):
        assert got.shape == t.shape
        assert np.allclose(got, t.grad, rtol=1e-12, atol=1e-12)
