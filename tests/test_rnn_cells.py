"""Cells, unroll and the notes' ElmanRNN: formulas, shapes, the unrolled graph, gradients."""
import contextlib
import weakref

import numpy as np
import pytest

import rnn
import tinygraph as tg


@contextlib.contextmanager
def parameters_replaced(module, tensors):
    """Let ``module`` compute with ``tensors`` in place of its parameters (in
    ``named_parameters()`` order) inside the block, so gradcheck can vary them."""
    swapped = []
    for (name, parameter), tensor in zip(module.named_parameters(), tensors):
        *path, attribute = name.split(".")
        owner = module
        for part in path:
            owner = getattr(owner, part)
        swapped.append((owner, attribute, parameter))
        object.__setattr__(owner, attribute, tensor)  # bypasses registration on purpose
    try:
        yield
    finally:
        for owner, attribute, parameter in swapped:
            object.__setattr__(owner, attribute, parameter)


def gradcheck_module(module, run, inputs):
    """Central differences for ``run(*inputs)`` with respect to the inputs and every
    parameter of ``module``."""
    count = len(inputs)

    def fn(*tensors):
        with parameters_replaced(module, tensors[count:]):
            return run(*tensors[:count])

    return tg.gradcheck(fn, [*inputs, *module.parameters()])


def randn(rng, *shape, requires_grad=True):
    return tg.tensor(rng.standard_normal(shape), requires_grad=requires_grad)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


@pytest.fixture
def rng():
    tg.manual_seed(0)
    return np.random.default_rng(0)


# ---- RNNCell -------------------------------------------------------------------------
def test_rnn_cell_has_the_notes_shapes():
    cell = rnn.RNNCell(input_size=10, hidden_size=20)
    shapes = {name: p.shape for name, p in cell.named_parameters()}
    assert shapes == {"W_ax": (20, 10), "W_aa": (20, 20), "b_a": (20,)}


def test_rnn_cell_parameters_are_named_for_drawings():
    cell = rnn.RNNCell(3, 4)
    assert [p.name for p in cell.parameters()] == ["W_ax", "W_aa", "b_a"]


def test_rnn_cell_computes_the_notes_formula(rng):
    cell = rnn.RNNCell(3, 4)
    x_t, a_prev = randn(rng, 2, 3), randn(rng, 2, 4)
    expected = np.tanh(x_t.data @ cell.W_ax.data.T + a_prev.data @ cell.W_aa.data.T
                       + cell.b_a.data)
    np.testing.assert_allclose(cell(x_t, a_prev).data, expected, rtol=1e-14)


def test_rnn_cell_relu_nonlinearity(rng):
    cell = rnn.RNNCell(3, 4, nonlinearity="relu")
    x_t, a_prev = randn(rng, 2, 3), randn(rng, 2, 4)
    z = x_t.data @ cell.W_ax.data.T + a_prev.data @ cell.W_aa.data.T + cell.b_a.data
    np.testing.assert_allclose(cell(x_t, a_prev).data, np.maximum(z, 0), rtol=1e-14)


def test_rnn_cell_state_defaults_to_zero(rng):
    cell = rnn.RNNCell(3, 4)
    x_t = randn(rng, 2, 3)
    zeros = tg.tensor(np.zeros((2, 4)))
    np.testing.assert_array_equal(cell(x_t).data, cell(x_t, zeros).data)


def test_rnn_cell_rejects_an_unknown_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity"):
        rnn.RNNCell(3, 4, nonlinearity="sigmoid")


def test_rnn_cell_names_the_shapes_of_a_wrong_input(rng):
    cell = rnn.RNNCell(3, 4)
    with pytest.raises(tg.ShapeError, match=r"\(2, 5\).*input_size = 3"):
        cell(randn(rng, 2, 5))


def test_rnn_cell_names_the_shapes_of_a_wrong_state(rng):
    cell = rnn.RNNCell(3, 4)
    with pytest.raises(tg.ShapeError, match=r"\(2, 4\).*\(2, 3\)"):
        cell(randn(rng, 2, 3), randn(rng, 2, 3))


def test_W_a_is_W_aa_beside_W_ax():
    cell = rnn.RNNCell(3, 4, stacked=True)
    np.testing.assert_array_equal(
        cell.W_a.data, np.hstack([cell.W_aa.data, cell.W_ax.data]))
    assert cell.W_a.shape == (4, 4 + 3)


def test_stacked_form_gives_the_same_state_and_gradients(rng):
    separate = rnn.RNNCell(3, 4)
    stacked = rnn.RNNCell(3, 4, stacked=True)
    stacked.load_state_dict(separate.state_dict())
    xs = randn(rng, 3, 2, 3)
    grads = []
    for cell in (separate, stacked):
        states = rnn.unroll(cell, xs)
        (tg.stack(states) ** 2).sum().backward()
        grads.append({name: p.grad for name, p in cell.named_parameters()})
        grads[-1]["a<3>"] = states[-1].data
    for name in grads[0]:
        np.testing.assert_allclose(grads[1][name], grads[0][name], rtol=1e-12, atol=1e-14)


def test_stacked_form_uses_one_product_on_the_concatenation(rng):
    cell = rnn.RNNCell(3, 4, stacked=True)
    a_t = cell(randn(rng, 2, 3), randn(rng, 2, 4))
    ops = [v.name for v in tg.engine.toposort(a_t.op) if isinstance(v, tg.engine.Op)]
    assert ops.count("linear") == 1 and ops.count("concat") == 2


def test_a_cell_step_draws_the_notes_affine_maps_as_linear_nodes(rng):
    x_t, a_prev = randn(rng, 2, 3), randn(rng, 2, 4)
    a_t = rnn.RNNCell(3, 4)(x_t, a_prev)
    names = sorted(v.name for v in tg.engine.toposort(a_t.op) if isinstance(v, tg.engine.Op))
    # W_ax x<t> + b_a, then W_aa a<t-1> + that, then g1
    assert names == ["linear", "linear", "tanh"]


@pytest.mark.parametrize("options", [{}, {"nonlinearity": "relu"}, {"stacked": True},
                                     {"split_bias": True}, {"bias": False}])
def test_rnn_cell_gradcheck(rng, options):
    cell = rnn.RNNCell(2, 3, **options)
    assert gradcheck_module(cell, cell, [randn(rng, 2, 2), randn(rng, 2, 3)])


# ---- LSTMCell and GRUCell ----------------------------------------------------------------
def test_lstm_cell_uses_pytorch_gate_order_i_f_g_o(rng):
    cell = rnn.LSTMCell(3, 2)
    x, a, c = randn(rng, 4, 3), randn(rng, 4, 2), randn(rng, 4, 2)
    z = (x.data @ cell.W_ax.data.T + cell.b_ax.data + a.data @ cell.W_aa.data.T
         + cell.b_aa.data)
    i, f, g, o = sigmoid(z[:, 0:2]), sigmoid(z[:, 2:4]), np.tanh(z[:, 4:6]), sigmoid(z[:, 6:8])
    c_t = f * c.data + i * g
    a_out, c_out = cell(x, (a, c))
    np.testing.assert_allclose(c_out.data, c_t, rtol=1e-14)
    np.testing.assert_allclose(a_out.data, o * np.tanh(c_t), rtol=1e-14)


def test_gru_cell_applies_the_reset_gate_after_the_matmul(rng):
    cell = rnn.GRUCell(3, 2)
    x, a = randn(rng, 4, 3), randn(rng, 4, 2)
    gx = x.data @ cell.W_ax.data.T + cell.b_ax.data
    ga = a.data @ cell.W_aa.data.T + cell.b_aa.data
    r, z = sigmoid(gx[:, 0:2] + ga[:, 0:2]), sigmoid(gx[:, 2:4] + ga[:, 2:4])
    n = np.tanh(gx[:, 4:6] + r * ga[:, 4:6])
    np.testing.assert_allclose(cell(x, a).data, (1 - z) * n + z * a.data, rtol=1e-14)


def test_gated_cells_stack_their_gates_in_the_weights():
    assert rnn.LSTMCell(10, 20).W_ax.shape == (80, 10)
    assert rnn.GRUCell(10, 20).W_aa.shape == (60, 20)


def test_lstm_cell_state_defaults_to_zero_pair(rng):
    cell = rnn.LSTMCell(3, 2)
    x = randn(rng, 4, 3)
    zeros = tg.tensor(np.zeros((4, 2)))
    for got, want in zip(cell(x), cell(x, (zeros, zeros))):
        np.testing.assert_array_equal(got.data, want.data)


def test_lstm_cell_rejects_one_tensor_as_its_state(rng):
    # with a batch of 2, unpacking (a_prev, c_prev) from one tensor would split its rows
    cell = rnn.LSTMCell(3, 2)
    with pytest.raises(TypeError, match=r"LSTMCell.*pair \(a_prev, c_prev\).*one tensor"):
        cell(randn(rng, 2, 3), randn(rng, 2, 2))


def test_unroll_of_an_lstm_cell_rejects_one_tensor_as_a0(rng):
    with pytest.raises(TypeError, match=r"LSTMCell.*pair"):
        rnn.unroll(rnn.LSTMCell(3, 2), randn(rng, 4, 2, 3), a0=randn(rng, 2, 2))


def test_gru_cell_rejects_a_pair_as_its_state(rng):
    cell = rnn.GRUCell(3, 2)
    with pytest.raises(TypeError, match=r"GRUCell.*one tensor a_prev.*tuple of 2"):
        cell(randn(rng, 2, 3), (randn(rng, 2, 2), randn(rng, 2, 2)))


def test_lstm_cell_gradcheck(rng):
    cell = rnn.LSTMCell(2, 3)

    def run(x, a, c):
        a_t, c_t = cell(x, (a, c))
        return tg.concat([a_t, c_t], axis=1)

    assert gradcheck_module(cell, run, [randn(rng, 2, 2), randn(rng, 2, 3), randn(rng, 2, 3)])


def test_gru_cell_gradcheck(rng):
    cell = rnn.GRUCell(2, 3)
    assert gradcheck_module(cell, cell, [randn(rng, 2, 2), randn(rng, 2, 3)])


# ---- unroll --------------------------------------------------------------------------
def test_unroll_returns_one_named_state_per_step(rng):
    states = rnn.unroll(rnn.RNNCell(3, 4), randn(rng, 5, 2, 3))
    assert [a.name for a in states] == [f"a<{t}>" for t in range(1, 6)]
    assert all(a.shape == (2, 4) for a in states)


def test_unroll_is_the_cell_applied_step_by_step(rng):
    cell = rnn.RNNCell(3, 4)
    xs = randn(rng, 4, 2, 3)
    a = None
    for t, a_t in enumerate(rnn.unroll(cell, xs)):
        a = cell(xs[t], a)
        np.testing.assert_array_equal(a_t.data, a.data)


def test_unroll_accepts_a_list_of_steps(rng):
    cell = rnn.RNNCell(3, 4)
    xs = randn(rng, 4, 2, 3)
    from_list = rnn.unroll(cell, [xs[t] for t in range(4)])
    np.testing.assert_array_equal(from_list[-1].data, rnn.unroll(cell, xs)[-1].data)


def test_unroll_starts_from_a0_when_given(rng):
    cell = rnn.RNNCell(3, 4)
    xs, a0 = randn(rng, 2, 2, 3), randn(rng, 2, 4)
    np.testing.assert_array_equal(rnn.unroll(cell, xs, a0)[0].data, cell(xs[0], a0).data)


def test_unroll_tags_every_step_node_with_its_time_step(rng):
    cell = rnn.RNNCell(3, 4)
    states = rnn.unroll(cell, randn(rng, 3, 2, 3))
    for t, a_t in enumerate(states, start=1):
        assert a_t.op.scope == (f"t={t}",)
    nodes = [v for v in tg.engine.toposort(tg.stack(states).op)
             if isinstance(v, tg.engine.Op) and v.name != "stack"]
    assert {v.scope for v in nodes} == {("t=1",), ("t=2",), ("t=3",)}


def test_shared_weight_gets_one_gradient_contribution_per_step(rng):
    cell = rnn.RNNCell(3, 4)
    states = rnn.unroll(cell, randn(rng, 5, 2, 3))
    with tg.record_contributions() as contributions:
        tg.stack(states).sum().backward()
    scopes = [node.scope for node, _ in contributions[cell.W_ax]]
    assert sorted(scopes) == [(f"t={t}",) for t in range(1, 6)]
    np.testing.assert_allclose(sum(g for _, g in contributions[cell.W_aa]),
                               cell.W_aa.grad, rtol=1e-14)


def test_retained_state_gradients_follow_the_bptt_recurrence(rng):
    """dL/da<t> = W_aa^T ((1 - a<t+1>^2) * dL/da<t+1>) + dL/da<t> directly, in rows."""
    cell = rnn.RNNCell(3, 4)
    states = rnn.unroll(cell, randn(rng, 4, 2, 3))
    for a_t in states:
        a_t.retain_grad()
    weights = rng.standard_normal((4, 2, 4))
    (tg.stack(states) * weights).sum().backward()
    for t in range(3):
        a_next = states[t + 1].data
        expected = weights[t] + ((1 - a_next ** 2) * states[t + 1].grad) @ cell.W_aa.data
        np.testing.assert_allclose(states[t].grad, expected, rtol=1e-12)


def test_unroll_of_an_lstm_cell_returns_named_pairs(rng):
    states = rnn.unroll(rnn.LSTMCell(3, 2), randn(rng, 3, 2, 3))
    assert [(a.name, c.name) for a, c in states] == [
        ("a<1>", "c<1>"), ("a<2>", "c<2>"), ("a<3>", "c<3>")]


def test_unroll_rejects_a_sequence_without_a_batch_axis(rng):
    with pytest.raises(tg.ShapeError, match=r"\(T, B, input_size\)"):
        rnn.unroll(rnn.RNNCell(3, 4), randn(rng, 5, 3))


def test_a_5000_step_unroll_runs_backward(rng):
    cell = rnn.RNNCell(2, 3)
    states = rnn.unroll(cell, randn(rng, 5000, 1, 2, requires_grad=False))
    states[-1].sum().backward()
    assert np.isfinite(cell.W_aa.grad).all() and np.abs(cell.W_aa.grad).sum() > 0


# ---- ElmanRNN ------------------------------------------------------------------------
def test_elman_rnn_has_the_five_parameters_of_the_notes():
    model = rnn.ElmanRNN(input_size=10, hidden_size=20, output_size=5)
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes == {"W_ax": (20, 10), "W_aa": (20, 20), "b_a": (20,),
                      "W_ya": (5, 20), "b_y": (5,)}
    assert model.num_parameters() == 725


def test_elman_rnn_returns_logits_and_states_over_time(rng):
    model = rnn.ElmanRNN(3, 4, 2)
    xs = randn(rng, 5, 2, 3)
    logits, states = model(xs)
    assert logits.shape == (5, 2, 2) and states.shape == (5, 2, 4)
    np.testing.assert_allclose(
        logits.data, states.data @ model.W_ya.data.T + model.b_y.data, rtol=1e-14)
    np.testing.assert_array_equal(states.data[-1], rnn.unroll(model, xs)[-1].data)


def test_elman_rnn_can_return_its_states_unstacked(rng):
    model = rnn.ElmanRNN(3, 4, 2)
    xs = randn(rng, 5, 2, 3)
    stacked_logits, stacked = model(xs)
    logits, states = model(xs, stack_states=False)
    assert isinstance(states, list) and len(states) == 5
    np.testing.assert_array_equal(np.stack([a.data for a in states]), stacked.data)
    np.testing.assert_array_equal(logits.data, stacked_logits.data)


def test_elman_rnn_lets_the_previous_graph_go_when_called_again(rng):
    model = rnn.ElmanRNN(3, 4, 2)
    model(randn(rng, 4, 2, 3))
    first = weakref.ref(model.last_states[0])
    model(randn(rng, 4, 2, 3))
    assert first() is None


def test_elman_rnn_keeps_the_per_step_states(rng):
    model = rnn.ElmanRNN(3, 4, 2)
    logits, _ = model(randn(rng, 3, 2, 3))
    for a_t in model.last_states:
        a_t.retain_grad()
    logits[-1].sum().backward()  # many-to-one: the loss reads the last step only
    assert [a.name for a in model.last_states] == ["a<1>", "a<2>", "a<3>"]
    assert all(a.grad is not None and np.abs(a.grad).sum() > 0 for a in model.last_states)


def test_elman_rnn_unroll_is_the_literal_per_step_graph(rng):
    model = rnn.ElmanRNN(3, 4, 2)
    logits, _ = model(randn(rng, 3, 2, 3))
    with tg.record_contributions() as contributions:
        logits.sum().backward()
    for p in (model.W_ax, model.W_aa, model.b_a, model.W_ya, model.b_y):
        steps = sorted(node.scope for node, _ in contributions[p])
        assert steps == [("t=1",), ("t=2",), ("t=3",)], p.name


def test_elman_rnn_gradcheck(rng):
    model = rnn.ElmanRNN(2, 3, 2)
    assert gradcheck_module(model, lambda xs, a0: model(xs, a0)[0],
                            [randn(rng, 3, 2, 2), randn(rng, 2, 3)])


def test_elman_rnn_predict_applies_softmax_per_step(rng):
    model = rnn.ElmanRNN(3, 4, 5)
    y_hat = model.predict(randn(rng, 3, 2, 3)).data
    np.testing.assert_allclose(y_hat.sum(axis=-1), 1.0, rtol=1e-14)
    assert (y_hat > 0).all()


def test_elman_rnn_sigmoid_output_activation(rng):
    model = rnn.ElmanRNN(3, 4, 2, output="sigmoid")
    xs = randn(rng, 3, 2, 3)
    logits, _ = model(xs)
    np.testing.assert_allclose(model.predict(xs).data, sigmoid(logits.data), rtol=1e-14)


def test_elman_rnn_rejects_an_unknown_output():
    with pytest.raises(ValueError, match="output"):
        rnn.ElmanRNN(3, 4, 2, output="tanh")


def test_generate_at_temperature_zero_is_greedy(rng):
    model = rnn.ElmanRNN(5, 8, 5)
    samples = model.generate(start=2, steps=6, temperature=0)
    x, a = np.eye(5)[[2]], None
    for index in samples:
        a = model(tg.tensor(x[None]), a)[1][-1]
        assert index == np.argmax(a.data @ model.W_ya.data.T + model.b_y.data)
        x = np.eye(5)[[index]]


def test_generate_at_low_temperature_approaches_argmax(rng):
    model = rnn.ElmanRNN(5, 8, 5)
    greedy = model.generate(start=[0, 1, 2], steps=8, temperature=0)
    cold = model.generate(start=[0, 1, 2], steps=8, temperature=1e-4, rng=0)
    np.testing.assert_array_equal(cold, greedy)


def test_generate_is_reproducible_from_a_seed(rng):
    model = rnn.ElmanRNN(5, 8, 5)
    first, second = (model.generate(1, 20, rng=7) for _ in range(2))
    np.testing.assert_array_equal(first, second)
    assert first.shape == (20,) and ((0 <= first) & (first < 5)).all()


def test_generate_samples_follow_the_softmax(rng):
    model = rnn.ElmanRNN(3, 4, 3)
    starts = np.zeros(4000, dtype=int)
    first = model.generate(starts, 1, rng=0)[0]
    logits = model.output_layer(model(tg.tensor(np.eye(3)[[0]][None]))[1][-1]).data[0]
    p = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(np.bincount(first, minlength=3) / 4000, p, atol=0.03)


def test_generate_feeds_identity_outputs_back(rng):
    model = rnn.ElmanRNN(2, 3, 2, output="identity")
    samples = model.generate(np.array([0.5, -0.5]), 3)
    x, a = tg.tensor(np.array([[[0.5, -0.5]]])), None
    for y in samples:
        logits, states = model(x, a)
        np.testing.assert_allclose(y, logits.data[0, 0], rtol=1e-14)
        x, a = tg.tensor(logits.data), states[-1]


def test_generate_needs_outputs_that_can_be_inputs():
    with pytest.raises(ValueError, match="output_size == input_size"):
        rnn.ElmanRNN(3, 4, 2).generate(0, 5)
