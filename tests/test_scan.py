"""tg.scan: the replayed loop gives the values and gradients of the plain loop
(``tg.unrolled()``), of central differences and of the hand-written BPTT, releases
each step's saved arrays as its backward runs, and refuses steps it cannot replay."""
import contextlib
import gc
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnn
import tinygraph as tg
from tinygraph.engine import Op


# Steps that between them use most ops, a tuple carry of two shapes, tuple inputs with a
# per-step boolean condition, constants made inside the step, and parts returned as
# they came in. Each is (weight shapes, step maker): the step closes over the weights.
def _elman(W, U, b):
    return lambda a, x: tg.tanh(tg.linear(a, W, b) + tg.linear(x, U))


def _mixed(W, V, scale):
    n = V.shape[0]

    def step(carry, x):
        a, total = carry          # a (B, n), total (B,): two shapes in one carry
        x_t, keep_t = x           # keep_t (B, 1) bool, a new one at every step
        z = tg.linear(x_t, W) + (a @ V.T) * scale
        gates = tg.sigmoid(z[:, : n // 2 + 1])
        new = tg.concat([gates, tg.relu(z[:, n // 2 + 1:])], axis=1) - a / 4
        new = tg.where(keep_t, tg.exp(-new * new) + 1e-3, a)
        total = total + tg.log(new.sum(axis=1)) * 0.5 + tg.mean(new.reshape(-1, n), axis=1)
        return new, total
    return step


def _passthrough(W):
    return lambda carry, x: (carry[0] * 0.9 + tg.linear(x, W), carry[1])


STEPS = {"elman": (lambda m, n: [(n, n), (n, m), (n,)], _elman),
         "mixed": (lambda m, n: [(n, m), (n, n), (n,)], _mixed),
         "passthrough": (lambda m, n: [(n, m)], _passthrough)}


def _problem(kind, rng, steps, batch, m, n):
    """(step maker, weights, init, xs) for one of ``STEPS``."""
    shapes, make = STEPS[kind]
    weights = [tg.tensor(rng.standard_normal(shape) * 0.5, requires_grad=True)
               for shape in shapes(m, n)]
    xs = tg.tensor(rng.standard_normal((steps, batch, m)), requires_grad=True)
    if kind == "elman":
        return make, weights, tg.tensor(rng.standard_normal((batch, n)), requires_grad=True), xs
    init = (tg.tensor(rng.random((batch, n)) + 0.5, requires_grad=True),
            tg.tensor(rng.standard_normal(batch)))
    if kind == "mixed":
        return make, weights, init, (xs, tg.tensor(rng.random((steps, batch, 1)) > 0.3))
    return make, weights, init, xs


def _parts(value):
    return list(value) if isinstance(value, tuple) else [value]


def _run(make, weights, init, xs, reverse, mode):
    leaves = weights + _parts(init) + _parts(xs)
    for t in leaves:
        t.grad = None
    with mode:
        out = tg.scan(make(*weights), init, xs, reverse=reverse)
    parts = _parts(out)
    loss = sum(((p - 0.1) * p).sum() for p in parts) + parts[0][-1].sum() * 2
    loss.backward()
    return [p.data for p in parts] + [t.grad for t in leaves if t.requires_grad]


@given(kind=st.sampled_from(sorted(STEPS)), steps=st.integers(1, 6),
       batch=st.integers(1, 3), m=st.integers(1, 4), n=st.integers(2, 5),
       reverse=st.booleans(), seed=st.integers(0, 2**16))
def test_replay_gives_the_plain_loops_values_and_gradients(kind, steps, batch, m, n,
                                                           reverse, seed):
    problem = _problem(kind, np.random.default_rng(seed), steps, batch, m, n)
    replayed = _run(*problem, reverse, contextlib.nullcontext())
    literal = _run(*problem, reverse, tg.unrolled())
    assert len(replayed) == len(literal)
    for got, expected in zip(replayed, literal):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", sorted(STEPS))
@pytest.mark.parametrize("reverse", [False, True])
def test_scan_gradients_match_central_differences(kind, reverse):
    make, weights, init, xs = _problem(kind, np.random.default_rng(3), 4, 2, 3, 4)
    init_parts, xs_parts = _parts(init), _parts(xs)

    def fn(first, x, *weights):
        carry = (first, *init_parts[1:]) if isinstance(init, tuple) else first
        inputs = (x, *xs_parts[1:]) if isinstance(xs, tuple) else x
        out = _parts(tg.scan(make(*weights), carry, inputs, reverse=reverse))
        return out[0] if len(out) == 1 else out[0].sum(axis=2) + out[1]

    assert tg.gradcheck(fn, [init_parts[0], xs_parts[0], *weights])


def _elman_problem(seed=0, steps=5, batch=2, m=3, n=4):
    return _problem("elman", np.random.default_rng(seed), steps, batch, m, n)


def _scan_nodes(out):
    return [v for v in tg.engine.toposort(out.op) if isinstance(v, Op) and v.name == "scan"]


# ---- modes -----------------------------------------------------------------------------
def test_the_loop_is_one_scan_node_and_unrolled_gives_one_node_per_op_and_step():
    make, weights, init, xs = _elman_problem(steps=5)
    out = tg.scan(make(*weights), init, xs)
    nodes = [v.name for v in tg.engine.toposort(out.op) if isinstance(v, Op)]
    assert nodes.count("scan") == 1 and "tanh" not in nodes
    with tg.unrolled():
        out = tg.scan(make(*weights), init, xs)
    nodes = [v.name for v in tg.engine.toposort(out.op) if isinstance(v, Op)]
    assert "scan" not in nodes and nodes.count("tanh") == 5 and nodes.count("linear") == 10


@pytest.mark.parametrize("mode", [tg.no_grad, tg.detect_anomaly])
def test_no_grad_and_anomaly_mode_run_the_plain_loop(mode):
    make, weights, init, xs = _elman_problem()
    expected = tg.scan(make(*weights), init, xs).data
    with mode():
        assert not tg.accel.replays()
        out = tg.scan(make(*weights), init, xs)
    np.testing.assert_array_equal(out.data, expected)
    if mode is tg.no_grad:
        assert out.op is None
    else:
        assert not _scan_nodes(out)


def test_anomaly_mode_points_at_the_op_inside_the_step():
    W = tg.tensor(np.ones((2, 2)), requires_grad=True)
    xs = tg.tensor(np.array([[[1.0, 2.0]], [[-1.0, 0.0]]]))
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match="log"), \
            np.errstate(invalid="ignore"):
        tg.scan(lambda a, x: tg.log(tg.linear(a, W) + x), tg.tensor(np.zeros((1, 2))), xs)


# ---- the graph's contract ------------------------------------------------------------------
def test_retain_graph_allows_a_second_backward_and_then_the_graph_is_freed():
    make, weights, init, xs = _elman_problem()
    loss = tg.scan(make(*weights), init, xs).sum()
    loss.backward(retain_graph=True)
    first = [w.grad.copy() for w in weights]
    loss.backward()
    for w, g in zip(weights, first):
        np.testing.assert_allclose(w.grad, 2 * g, rtol=1e-13)
    with pytest.raises(tg.GraphFreedError):
        loss.backward()


def test_a_weight_changed_between_forward_and_backward_raises():
    make, weights, init, xs = _elman_problem()
    loss = tg.scan(make(*weights), init, xs).sum()
    weights[0].data = weights[0].data * 2
    with pytest.raises(tg.ModifiedError):
        loss.backward()


def test_tensors_computed_outside_the_step_get_their_gradient_through_it():
    rng = np.random.default_rng(1)
    W = tg.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    xs = tg.tensor(rng.standard_normal((4, 1, 3)))
    results = []
    for mode in (contextlib.nullcontext(), tg.unrolled()):
        W.grad = None
        W_half = W * 0.5  # a node, not a leaf: the step uses it at every step
        with mode:
            out = tg.scan(lambda a, x: tg.tanh(a @ W_half + x), tg.tensor(np.zeros((1, 3))), xs)
        out.sum().backward()
        results.append(W.grad)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-13)
    assert np.abs(results[0]).sum() > 0


class _Probe(Op):
    """Passes its input through, keeping a big array the way a node keeps what its
    backward needs; its backward checks which of the other probes' arrays are gone."""
    saved_refs = []
    gone_when_run = []

    def forward(self, x):
        self.kept = np.ones(10_000)
        self.index = len(self.saved_refs)
        self.saved_refs.append(weakref.ref(self.kept))
        return x

    def backward(self, g, out, x):
        gc.collect()
        self.gone_when_run.append([ref() is None for ref in self.saved_refs])
        return g


def test_each_steps_saved_arrays_are_released_as_backward_passes_it(monkeypatch):
    monkeypatch.setattr(_Probe, "saved_refs", [])
    monkeypatch.setattr(_Probe, "gone_when_run", [])
    W = tg.tensor(np.eye(2) * 0.5, requires_grad=True)
    out = tg.scan(lambda a, x: _Probe.apply(tg.linear(a, W) + x), tg.tensor(np.ones((1, 2))),
                  tg.tensor(np.ones((4, 1, 2))))
    refs = _Probe.saved_refs[2:]  # the two runs of the trace come first
    assert len(refs) == 4 and all(ref() is not None for ref in refs)
    out.sum().backward()
    # Backward visits steps 3, 2, 1, 0: by the time step t runs, steps after it are gone.
    seen = [gone[2:] for gone in _Probe.gone_when_run]
    assert seen == [[False, False, False, False], [False, False, False, True],
                    [False, False, True, True], [False, True, True, True]]
    gc.collect()
    assert all(ref() is None for ref in refs)


def test_record_contributions_sees_the_scan_node_send_the_weights_summed_gradient():
    make, weights, init, xs = _elman_problem()
    out = tg.scan(make(*weights), init, xs)
    with tg.record_contributions() as recorded:
        out.sum().backward()
    (node, grad), = recorded[weights[0]]
    assert node.name == "scan"
    np.testing.assert_array_equal(grad, weights[0].grad)


# ---- what cannot be replayed ------------------------------------------------------------------
def test_detach_inside_a_traced_step_raises_and_works_unrolled():
    W = tg.tensor(np.eye(2), requires_grad=True)
    init, xs = tg.tensor(np.ones((1, 2))), tg.tensor(np.ones((3, 1, 2)))

    def step(a, x):
        return tg.linear(a.detach(), W) + x
    with pytest.raises(RuntimeError, match="detach"):
        tg.scan(step, init, xs)
    with tg.unrolled():
        assert tg.scan(step, init, xs).shape == (3, 1, 2)


_E = tg.tensor(np.random.default_rng(0).standard_normal((10, 3)), requires_grad=True)


@pytest.mark.parametrize("step, tokens, a0", [
    (lambda a, token: a + _E[token], [[1], [4], [7]], (1, 3)),      # (T, B) ids
    (lambda a, token: a + _E[token], [[4], [4], [7]], (1, 3)),      # equal at steps 0, 1
    (lambda a, token: a + _E[token], [1, 4, 7], (3,)),              # (T,): 0-d per step
    (lambda a, token: a + _E[token + 1], [[1], [4], [7]], (1, 3)),  # computed in the step
])
def test_a_per_step_index_given_as_an_op_parameter_raises(step, tokens, a0):
    tokens = tg.tensor(np.array(tokens))
    with pytest.raises(ValueError, match="'getitem' a per-step value as its parameter 'index'"):
        tg.scan(step, tg.tensor(np.zeros(a0)), tokens)
    with tg.unrolled():
        out = tg.scan(step, tg.tensor(np.zeros(a0)), tokens)
    assert out.shape == (3, *a0)


@pytest.mark.parametrize("step", [
    lambda a, x: a + tg.where(x.data > 0, x, 0.0),       # a comparison's array
    lambda a, x: a * x.data,                             # NumPy on .data
    lambda a, x: a + tg.tensor(x.data),                  # a tensor made from a value
    lambda a, x: a + x.sum().item(),                     # a Python number
    lambda a, x: a + tg.tensor(a.data * 2),              # from the carry
], ids=["comparison", "data", "tensor", "item", "carry"])
def test_per_step_values_that_bypass_the_ops_raise(step):
    xs = tg.tensor(np.random.default_rng(1).standard_normal((4, 1, 3)), requires_grad=True)
    init = tg.tensor(np.ones((1, 3)))
    with pytest.raises(ValueError, match="not the output of an op|read the values of a per"):
        tg.scan(step, init, xs)
    with tg.unrolled():
        assert tg.scan(step, init, xs).shape == (4, 1, 3)


def test_a_random_draw_inside_a_traced_step_raises():
    tg.manual_seed(0)  # (64 entries: two steps' masks are equal with probability 2**-64)
    step = lambda a, x: a + tg.functional.dropout(x, 0.5)  # noqa: E731
    init, xs = tg.tensor(np.zeros((1, 64))), tg.tensor(np.ones((4, 1, 64)))
    with pytest.raises(ValueError, match="random draw"):
        tg.scan(step, init, xs)
    with tg.unrolled():
        assert tg.scan(step, init, xs).shape == (4, 1, 64)


def test_values_read_in_python_are_refused_even_when_equal_at_the_traced_steps():
    xs = np.ones((5, 2, 3))
    xs[3:, 1] = 0  # padding from step 3: the mask is all True at steps 0 and 1
    W = tg.tensor(np.eye(3) * 0.5, requires_grad=True)

    def step(a, x):
        keep = x.sum(axis=-1, keepdims=True) != 0
        return tg.where(keep, tg.tanh(tg.linear(a, W) + x), a)
    with pytest.raises(ValueError, match="read the values of a per-step tensor"):
        tg.scan(step, tg.tensor(np.zeros((2, 3))), tg.tensor(xs))
    keep = tg.tensor(np.abs(xs).sum(axis=-1, keepdims=True) != 0)  # the mask as an input
    passed = tg.scan(lambda a, x: tg.where(x[1], tg.tanh(tg.linear(a, W) + x[0]), a),
                     tg.tensor(np.zeros((2, 3))), (tg.tensor(xs), keep))
    with tg.unrolled():
        looped = tg.scan(step, tg.tensor(np.zeros((2, 3))), tg.tensor(xs))
    np.testing.assert_array_equal(passed.data, looped.data)


def test_assigning_data_inside_a_traced_step_raises():
    memory = tg.tensor(np.zeros(3))

    def step(a, x):
        memory.data = memory.data + 1
        return a + x * memory
    with pytest.raises(RuntimeError, match="assigning .data inside a step"):
        tg.scan(step, tg.tensor(np.zeros(3)), tg.tensor(np.ones((4, 3))))


def test_a_tensor_kept_from_inside_the_step_cannot_be_backpropagated():
    W = tg.tensor(np.eye(3), requires_grad=True)
    kept = []

    def step(a, x):
        h = tg.tanh(tg.linear(a, W) + x)
        kept.append(h @ W)  # collected on the side: the trace runs twice, not per step
        return h
    tg.scan(step, tg.tensor(np.zeros((1, 3))), tg.tensor(np.ones((4, 1, 3))))
    assert len(kept) == 2
    with pytest.raises(tg.GraphFreedError, match="only the carry leaves a scan"):
        tg.stack(kept).sum().backward()


def test_a_step_that_needs_no_gradient_gives_a_constant():
    W = tg.tensor(np.eye(2), requires_grad=True)

    def step(a, x):
        with tg.no_grad():
            return tg.tanh(tg.linear(a, W) + x)
    out = tg.scan(step, tg.tensor(np.ones((1, 2))), tg.tensor(np.ones((3, 1, 2))))
    assert not out.requires_grad


def test_ops_that_need_no_gradient_keep_nothing_as_in_the_loop():
    W = tg.tensor(np.eye(4) * 0.5, requires_grad=True)
    xs = tg.tensor(np.random.default_rng(3).standard_normal((6, 2, 4)))
    step = lambda a, x: tg.linear(a, W) * tg.sigmoid(tg.tanh(x) * 2.0)  # noqa: E731
    replayed = tg.graph_stats(tg.scan(step, tg.tensor(np.ones((2, 4))), xs).sum())
    with tg.unrolled():
        unrolled = tg.graph_stats(tg.scan(step, tg.tensor(np.ones((2, 4))), xs).sum())
    assert replayed.saved_bytes == unrolled.saved_bytes


@pytest.mark.parametrize("step", [
    lambda a, x: a @ tg.tensor(np.eye(3) * 0.5).T + x,                   # a view of it
    lambda a, x: a * tg.tensor(np.arange(3.0)).reshape(1, 3) + x,
    lambda a, x: a * tg.tensor(np.ones((1, 3)))[0] + x,
    lambda a, x: a + x * tg.tensor(np.array([np.nan, 1.0, 1.0]))[1:].sum(),  # NaN, equal
], ids=["transpose", "reshape", "slice", "nan"])
def test_ops_on_constants_made_inside_the_step_are_fine(step):
    xs = tg.tensor(np.random.default_rng(2).standard_normal((4, 1, 3)), requires_grad=True)
    replayed = tg.scan(step, tg.tensor(np.zeros((1, 3))), xs)
    with tg.unrolled():
        literal = tg.scan(step, tg.tensor(np.zeros((1, 3))), xs)
    np.testing.assert_array_equal(replayed.data, literal.data)


def test_a_scan_inside_a_step_is_replayed_too():
    inner = rnn.GRU(3, 4)
    W = tg.tensor(np.random.default_rng(5).standard_normal((4, 4)) * 0.3, requires_grad=True)
    sentences = tg.tensor(np.random.default_rng(6).standard_normal((3, 5, 2, 3)))

    def step(a, words):  # one sentence per outer step, read by the inner layer
        _, h_n = inner(words)
        return tg.tanh(tg.linear(a, W) + h_n[0])
    results = []
    for mode in (contextlib.nullcontext(), tg.unrolled()):
        inner.zero_grad()
        W.grad = None
        with mode:
            out = tg.scan(step, tg.tensor(np.zeros((2, 4))), sentences)
        out.sum().backward()
        results.append([out.data, W.grad] + [p.grad for p in inner.parameters()])
    for got, expected in zip(*results):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_a_constant_made_inside_the_step_is_fine():
    W = tg.tensor(np.eye(3) * 0.5, requires_grad=True)
    xs = tg.tensor(np.random.default_rng(2).standard_normal((4, 1, 3)))
    step = lambda a, x: (1 - tg.tanh(a @ W)) * 0.5 + x  # noqa: E731 (1 and 0.5: new each call)
    replayed = tg.scan(step, tg.tensor(np.zeros((1, 3))), xs)
    with tg.unrolled():
        literal = tg.scan(step, tg.tensor(np.zeros((1, 3))), xs)
    np.testing.assert_array_equal(replayed.data, literal.data)


def test_no_grad_inside_the_step_stops_the_gradient_as_in_the_loop():
    rng = np.random.default_rng(4)
    W = tg.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    xs = tg.tensor(rng.standard_normal((4, 2, 3)))

    def step(a, x):
        h = tg.linear(a, W) + x
        with tg.no_grad():
            scale = tg.sigmoid(h)  # a constant as far as the gradient goes
        return tg.tanh(h * scale)
    grads = []
    for mode in (contextlib.nullcontext(), tg.unrolled()):
        W.grad = None
        with mode:
            tg.scan(step, tg.tensor(np.ones((2, 3))), xs).sum().backward()
        grads.append(W.grad)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-13)


@pytest.mark.parametrize("call", ["retain_grad", "register_hook"])
def test_hooks_inside_a_traced_step_raise(call):
    W = tg.tensor(np.eye(2), requires_grad=True)

    def step(a, x):
        h = tg.linear(a, W) + x
        h.retain_grad() if call == "retain_grad" else h.register_hook(print)
        return h
    with pytest.raises(RuntimeError, match=rf"{call}\(\) inside a step"):
        tg.scan(step, tg.tensor(np.ones((1, 2))), tg.tensor(np.ones((3, 1, 2))))


def test_inputs_the_step_never_uses_get_no_gradient():
    xs = tg.tensor(np.ones((3, 1, 2)), requires_grad=True)
    W = tg.tensor(np.eye(2), requires_grad=True)
    tg.scan(lambda a, x: tg.linear(a, W), tg.tensor(np.ones((1, 2))), xs).sum().backward()
    assert xs.grad is None and W.grad is not None


def test_after_backward_the_scan_node_keeps_nothing():
    layer = rnn.RNN(3, 64)
    out, h_n = layer(np.random.default_rng(0).standard_normal((5, 2, 3)))
    node, = _scan_nodes(out)
    held = weakref.ref(node.program)  # the Program: its externals
    out.sum().backward()
    gc.collect()
    assert node.saved is None and node.tapes is None and held() is None


def test_the_first_step_multiplies_as_the_loop_does_bit_for_bit():
    """The loop's first step uses W_aa for the first time in the Module call (the
    plain W.T), later steps the shared copy of W^T; for one row those round
    differently, and the replay follows the loop."""
    layer = rnn.RNN(5, 40)
    xs = np.random.default_rng(6).standard_normal((4, 1, 5))
    h0 = np.random.default_rng(7).standard_normal((1, 1, 40))
    replayed, _ = layer(xs, h0)
    with tg.unrolled():
        literal, _ = layer(xs, h0)
    np.testing.assert_array_equal(replayed.data, literal.data)


def test_a_step_whose_ops_change_from_call_to_call_raises():
    W = tg.tensor(np.eye(2), requires_grad=True)
    calls = []

    def step(a, x):
        calls.append(1)
        return tg.tanh(a @ W + x) if len(calls) % 2 else tg.relu(a @ W + x)
    with pytest.raises(ValueError, match="different ops"):
        tg.scan(step, tg.tensor(np.ones((1, 2))), tg.tensor(np.ones((3, 1, 2))))


@pytest.mark.parametrize("step, init, xs, error, match", [
    (lambda a, x: a.sum(), np.zeros(2), None, TypeError, "init must be a tensor"),
    (lambda a, x: a.sum(), None, None, tg.ShapeError, "carry like init"),
    (lambda a, x: (a, a), None, None, tg.ShapeError, "carry like init"),
    (lambda a, x: a, None, tg.tensor(np.zeros((0, 2))), ValueError, "no time steps"),
    (lambda a, x: a, None, (tg.tensor(np.zeros((3, 2))), tg.tensor(np.zeros((2, 2)))),
     tg.ShapeError, "same number of time steps"),
    (lambda a, x: a, (tg.tensor(np.zeros(2)), tg.tensor(np.zeros(2, dtype=np.float32))),
     None, TypeError, "share one dtype"),
])
def test_bad_arguments_get_errors_that_name_the_problem(step, init, xs, error, match):
    init = tg.tensor(np.zeros((1, 2)), requires_grad=True) if init is None else init
    xs = tg.tensor(np.ones((3, 1, 2))) if xs is None else xs
    with pytest.raises(error, match=match):
        tg.scan(step, init, xs)


def test_graph_stats_count_the_arrays_every_replayed_step_keeps():
    layer = rnn.LSTM(3, 4, num_layers=2)
    xs = np.random.default_rng(0).standard_normal((5, 2, 3))
    replayed = tg.graph_stats(layer(xs)[0].sum())
    with tg.unrolled():
        unrolled = tg.graph_stats(layer(xs)[0].sum())
    assert replayed.nodes < unrolled.nodes / 10
    assert replayed.saved_arrays == unrolled.saved_arrays
    # The LSTM's stacked carry holds c<t> beside a<t>, and the second layer's projection
    # keeps a view of it: the first layer's c<t> (T x B x n) stays alive with it.
    assert replayed.saved_bytes == unrolled.saved_bytes + 5 * 2 * 4 * 8


@pytest.mark.parametrize("layer_class", [rnn.RNN, rnn.LSTM])
def test_a_replayed_layer_peaks_at_no_more_memory_than_the_unrolled_graph(layer_class):
    import tracemalloc
    layer = layer_class(16, 64)
    xs = tg.tensor(np.random.default_rng(0).standard_normal((200, 8, 16)))

    def peak(mode):
        layer.zero_grad()
        gc.collect()
        tracemalloc.start()
        try:
            with mode:
                output, _ = layer(xs)
            (output * output).sum().backward()
            del output
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    peak(contextlib.nullcontext())  # first calls: the layout's probes, caches
    replayed, unrolled = peak(contextlib.nullcontext()), peak(tg.unrolled())
    states = 200 * 8 * 64 * 8  # bytes of one (T, B, n) float64 array
    # The scan returns every part of the carry stacked; the unrolled layer stacks only
    # a<t>, so the LSTM's stacked c<t> is one (T, B, n) more.
    extra = states * (len(layer.cell_class.state_names) - 1)
    assert replayed <= unrolled + extra + states / 4, (replayed / states, unrolled / states)


def test_a_recorded_backward_through_a_scan_says_to_unroll_and_works_unrolled():
    make, weights, init, xs = _elman_problem()
    out = tg.scan(make(*weights), init, xs)
    with pytest.raises(RuntimeError, match="tg.unrolled"):
        tg.grad(out.sum(), [weights[0]], create_graph=True)
    with tg.unrolled():
        out = tg.scan(make(*weights), init, xs)
    (g,) = tg.grad(out.sum(), [weights[0]], create_graph=True)
    assert g.requires_grad
