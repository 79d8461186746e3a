"""The accelerator's in-place log_softmax VJP gives the core's gradient, with fewer
large temporaries, and leaves recorded backwards (create_graph) to the core's VJP."""
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import tinygraph as tg
from tinygraph import functional as F, nn, ops
from tinygraph.accel import inplace


def test_every_spelling_of_log_softmax_is_the_in_place_one():
    x = tg.tensor(np.ones((2, 3)), requires_grad=True)
    for out in (tg.log_softmax(x), x.log_softmax(), F.log_softmax(x, axis=-1),
                nn.LogSoftmax(dim=-1)(x), ops.log_softmax(x)):
        assert type(out.op) is inplace.LogSoftmax


shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@given(shapes.flatmap(lambda s: st.tuples(
    hnp.arrays(np.float64, s, elements=st.floats(-5, 5)),
    hnp.arrays(np.float64, s, elements=st.floats(-2, 2)),
    st.integers(-max(len(s), 1), max(len(s), 1) - 1))))
def test_the_in_place_vjp_equals_the_core_vjp(case):
    x, g, axis = case
    out = ops.LogSoftmax().forward(x, axis=axis)
    core, fast = ops.LogSoftmax(), inplace.LogSoftmax()
    core.axis = fast.axis = axis
    np.testing.assert_allclose(fast.backward(g.copy(), out, None),
                               core.backward(g.copy(), out, None), rtol=1e-12, atol=1e-12)


def test_second_derivatives_go_through_the_core_vjp():
    x = tg.tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    tg.gradgradcheck(lambda x: x.log_softmax(axis=1) * x, [x])


def _peak_of_backward(log_softmax):
    logits = tg.tensor(np.random.default_rng(0).standard_normal((4000, 64)),
                       requires_grad=True)
    loss = (log_softmax(logits) * tg.tensor(np.full((4000, 64), 0.5))).sum()
    tracemalloc.start()
    loss.backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_the_in_place_vjp_keeps_fewer_large_temporaries():
    size = 4000 * 64 * 8  # one (4000, 64) float64 array
    fast = _peak_of_backward(lambda x: x.log_softmax())
    core = _peak_of_backward(lambda x: ops.LogSoftmax.apply(x, axis=-1))
    assert core - fast >= size  # at least one whole temporary fewer
