"""rnn.RNN / LSTM / GRU without torch: stacking, directions, variable lengths, scopes,
state dicts, truncated BPTT, and gradients against central differences."""
import contextlib

import numpy as np
import pytest

import rnn
import tinygraph as tg
from test_rnn_cells import gradcheck_module, randn


@pytest.fixture
def rng():
    tg.manual_seed(0)
    return np.random.default_rng(0)


def run_cell(cell, xs, state, times):
    """The state of ``cell`` run over xs[t - 1] for t in ``times`` (plain loop)."""
    states = {}
    for t in times:
        state = cell(xs[t - 1], state)
        states[t] = state
    return [states[t] for t in sorted(states)]


# ---- structure -----------------------------------------------------------------------
def test_layer_cells_and_parameters_use_pytorch_indices():
    layer = rnn.RNN(3, 4, num_layers=2, bidirectional=True)
    assert [(l, s) for l, s, _ in layer.cells()] == [(0, ""), (0, "_reverse"),
                                                     (1, ""), (1, "_reverse")]
    shapes = dict((name, p.shape) for name, p in layer.named_parameters())
    assert shapes["l0.W_ax"] == (4, 3) and shapes["l1_reverse.W_ax"] == (4, 8)
    assert layer.l1.b_aa.name == "l1.b_aa"


def test_one_layer_rnn_is_its_cell_unrolled(rng):
    layer = rnn.RNN(3, 4)
    xs = randn(rng, 5, 2, 3)
    output, h_n = layer(xs)
    states = rnn.unroll(layer.l0, xs)
    np.testing.assert_allclose(output.data, tg.stack(states).data, rtol=1e-14)
    np.testing.assert_allclose(h_n.data, states[-1].data[None], rtol=1e-14)


def test_second_layer_reads_the_first_layers_outputs(rng):
    layer = rnn.GRU(3, 4, num_layers=2)
    xs = randn(rng, 5, 2, 3)
    output, h_n = layer(xs)
    below = rnn.unroll(layer.l0, xs)
    above = rnn.unroll(layer.l1, tg.stack(below))
    np.testing.assert_allclose(output.data, tg.stack(above).data, rtol=1e-13)
    np.testing.assert_allclose(h_n.data[0], below[-1].data, rtol=1e-13)


def test_bidirectional_output_is_forward_beside_reverse(rng):
    layer = rnn.RNN(3, 4, bidirectional=True)
    xs = randn(rng, 5, 2, 3)
    output, h_n = layer(xs)
    zero = layer.l0.initial_state(2)
    forward = run_cell(layer.l0, xs, zero, range(1, 6))
    reverse = run_cell(layer.l0_reverse, xs, zero, range(5, 0, -1))
    expected = np.concatenate([tg.stack(forward).data, tg.stack(reverse).data], axis=2)
    np.testing.assert_allclose(output.data, expected, rtol=1e-13)
    np.testing.assert_allclose(h_n.data[1], reverse[0].data, rtol=1e-13)  # after t = 1


def test_layer_output_shapes_follow_pytorch(rng):
    layer = rnn.LSTM(3, 4, num_layers=3, bidirectional=True, batch_first=True)
    output, (h_n, c_n) = layer(randn(rng, 2, 5, 3))
    assert output.shape == (2, 5, 8)
    assert h_n.shape == c_n.shape == (6, 2, 4)


# ---- scopes and names ------------------------------------------------------------------
def test_unrolled_recurrence_ops_carry_layer_direction_and_time_scopes(rng):
    layer = rnn.RNN(3, 4, num_layers=2, bidirectional=True)
    with tg.unrolled():
        layer(randn(rng, 3, 2, 3))
    for key, states in layer.last_states.items():
        layer_label = f"layer={key[1]}"
        for t, a_t in enumerate(states, start=1):
            direction = ("direction=reverse",) if key.endswith("_reverse") else ()
            assert a_t.op.scope == (layer_label, *direction, f"t={t}")


def test_states_are_named_like_the_notes(rng):
    layer = rnn.LSTM(3, 4, num_layers=2, bidirectional=True)
    layer(randn(rng, 2, 1, 3))
    assert [(a.name, c.name) for a, c in layer.last_states["l1_reverse"]] == [
        ("a←<1>[2]", "c←<1>[2]"), ("a←<2>[2]", "c←<2>[2]")]
    single = rnn.RNN(3, 4)
    single(randn(rng, 2, 1, 3))
    assert [a.name for a in single.last_states["l0"]] == ["a<1>", "a<2>"]


def _ops_named(output, *names):
    return [v for v in tg.engine.toposort(output.op)
            if isinstance(v, tg.engine.Op) and v.name in names]


def test_unrolled_layer_projects_every_input_at_once_and_recurs_one_linear_per_step(rng):
    layer = rnn.RNN(3, 4)
    with tg.unrolled():
        output, _ = layer(randn(rng, 6, 2, 3))
    products = _ops_named(output, "matmul", "linear", "scan")
    assert sorted(v.scope for v in products) == sorted(
        [("layer=0",)] + [("layer=0", f"t={t}") for t in range(1, 7)])
    assert {v.name for v in products} == {"linear"}


def test_layer_projects_every_input_at_once_and_recurs_in_one_scan_node(rng):
    layer = rnn.LSTM(3, 4, num_layers=2, bidirectional=True)
    output, _ = layer(randn(rng, 6, 2, 3))
    nodes = _ops_named(output, "matmul", "linear", "scan")
    cells = [("layer=0",), ("layer=0", "direction=reverse"),
             ("layer=1",), ("layer=1", "direction=reverse")]
    assert sorted((v.name, v.scope) for v in nodes) == sorted(
        [("linear", scope) for scope in cells] + [("scan", scope) for scope in cells])
    assert not _ops_named(output, "tanh", "sigmoid")  # inside the scan nodes


def test_bidirectional_outputs_are_joined_once_whether_replayed_or_unrolled(rng):
    layer = rnn.GRU(3, 4, bidirectional=True)
    xs = randn(rng, 3, 2, 3)
    with tg.unrolled():
        unrolled, _ = layer(xs)
    replayed, _ = layer(xs)
    for output in (unrolled, replayed):  # one recurrence: the same join after it
        (concat,) = _ops_named(output, "concat")
        assert concat.scope == ()
    np.testing.assert_array_equal(unrolled.data, replayed.data)


def test_unrolled_states_are_named_in_their_steps_for_every_part(rng):
    layer = rnn.LSTM(3, 4, num_layers=2, bidirectional=True)
    with tg.unrolled():
        layer(randn(rng, 3, 2, 3))
    a, c = layer.last_states["l1_reverse"][1]
    assert (a.name, c.name) == ("a←<2>[2]", "c←<2>[2]")
    assert a.op.scope == c.op.scope == ("layer=1", "direction=reverse", "t=2")


def test_input_of_another_dtype_than_the_weights_names_both(rng):
    for layer in (rnn.RNN(3, 4), rnn.LSTM(3, 4), rnn.GRU(3, 4, bidirectional=True)):
        with pytest.raises(TypeError, match="input and weight dtypes differ.*float32.*float64"):
            layer(rng.standard_normal((2, 1, 3)).astype(np.float32))
    single = rnn.LSTM(3, 4, dtype=np.float32)
    out, _ = single(rng.standard_normal((2, 1, 3)).astype(np.float32))
    assert out.dtype == np.float32
    h0 = np.zeros((1, 1, 4), np.float64)
    with pytest.raises(TypeError, match="initial state is float64, the weights are float32"):
        single(rng.standard_normal((2, 1, 3)).astype(np.float32), (h0, h0))
    with pytest.raises(TypeError, match="input and weight dtypes differ.*float32.*float64"):
        rnn.RNNCell(3, 4)(tg.tensor(rng.standard_normal((1, 3)).astype(np.float32)))


# ---- variable lengths ----------------------------------------------------------------
@pytest.mark.parametrize("layer_class", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_final_state_is_each_sequences_true_last_state(rng, layer_class):
    layer = layer_class(3, 4, num_layers=2, bidirectional=True)
    xs = randn(rng, 5, 3, 3)
    lengths = np.array([2, 5, 3])
    output, final = layer(xs, lengths=lengths)
    final = final if isinstance(final, tuple) else (final,)
    for b, length in enumerate(lengths):
        alone_output, alone_final = layer(xs[:length, b:b + 1])
        alone_final = alone_final if isinstance(alone_final, tuple) else (alone_final,)
        for part, alone in zip(final, alone_final):
            np.testing.assert_allclose(part.data[:, b], alone.data[:, 0], rtol=1e-12)
        np.testing.assert_allclose(output.data[:length, b], alone_output.data[:, 0],
                                   rtol=1e-12)
        assert (output.data[length:, b] == 0).all()


def test_padded_steps_get_no_gradient(rng):
    layer = rnn.RNN(3, 4, bidirectional=True)
    xs = randn(rng, 4, 2, 3)
    output, h_n = layer(xs, lengths=np.array([4, 2]))
    ((output ** 2).sum() + h_n.sum()).backward()
    assert (xs.grad[2:, 1] == 0).all() and (xs.grad[:2, 1] != 0).all()


def test_lengths_must_fit_the_sequence(rng):
    layer = rnn.RNN(3, 4)
    with pytest.raises(ValueError, match=r"1\.\.5"):
        layer(randn(rng, 5, 2, 3), lengths=np.array([6, 2]))
    with pytest.raises(tg.ShapeError, match="lengths"):
        layer(randn(rng, 5, 2, 3), lengths=np.array([5, 2, 1]))


def test_mask_must_have_the_inputs_layout(rng):
    layer = rnn.RNN(3, 4, batch_first=True)
    with pytest.raises(tg.ShapeError, match=r"shape \(2, 5\), got \(5, 2\)"):
        layer(randn(rng, 2, 5, 3), mask=np.ones((5, 2), dtype=bool))


def test_mask_of_an_unbatched_sequence_is_one_flag_per_step(rng):
    layer = rnn.RNN(3, 4)
    x = randn(rng, 5, 3)
    by_mask, h_mask = layer(x, mask=np.arange(5) < 3)
    by_lengths, h_lengths = layer(x, lengths=np.array([3]))
    np.testing.assert_array_equal(by_mask.data, by_lengths.data)
    np.testing.assert_array_equal(h_mask.data, h_lengths.data)
    with pytest.raises(tg.ShapeError, match=r"shape \(5,\), got \(5, 2\)"):
        layer(x, mask=np.ones((5, 2), dtype=bool))


@pytest.mark.parametrize("layer_class", [rnn.LSTM, rnn.GRU])
def test_gated_layer_with_lengths_gradcheck(rng, layer_class):
    layer = layer_class(2, 2, bidirectional=True)

    def run(xs):
        output, final = layer(xs, lengths=np.array([3, 1]))
        return tg.concat([output.reshape(-1), (final[0] if isinstance(final, tuple)
                                               else final).reshape(-1)])

    assert gradcheck_module(layer, run, [randn(rng, 3, 2, 2)])


# ---- inputs ----------------------------------------------------------------------------
def test_layer_names_a_wrong_input_size(rng):
    with pytest.raises(tg.ShapeError, match=r"\(5, 2, 4\)"):
        rnn.RNN(3, 4)(randn(rng, 5, 2, 4))


def test_layer_names_a_wrong_initial_state_shape(rng):
    layer = rnn.RNN(3, 4, num_layers=2)
    with pytest.raises(tg.ShapeError, match=r"\(2, 2, 4\).*\(1, 2, 4\)"):
        layer(randn(rng, 5, 2, 3), randn(rng, 1, 2, 4))


def test_lstm_needs_both_initial_states(rng):
    with pytest.raises(TypeError, match=r"the pair \(h_0, c_0\)"):
        rnn.LSTM(3, 4)(randn(rng, 5, 2, 3), randn(rng, 1, 2, 4))


def test_batch_first_does_not_apply_to_the_states(rng):
    layer = rnn.GRU(3, 4, batch_first=True)
    xs, h0 = randn(rng, 2, 5, 3), randn(rng, 1, 2, 4)
    output, h_n = layer(xs, h0)
    time_first = rnn.GRU(3, 4)
    time_first.load_state_dict(layer.state_dict())
    expected, expected_h_n = time_first(xs.transpose(1, 0, 2), h0)
    np.testing.assert_allclose(output.data, expected.data.transpose(1, 0, 2), rtol=1e-14)
    np.testing.assert_allclose(h_n.data, expected_h_n.data, rtol=1e-14)


# ---- PyTorch names, without torch --------------------------------------------------------
def test_torch_state_dict_round_trips(rng):
    layer = rnn.LSTM(3, 4, num_layers=2, bidirectional=True)
    other = rnn.LSTM(3, 4, num_layers=2, bidirectional=True)
    other.load_torch_state_dict(layer.to_torch_state_dict())
    for (name, p), q in zip(layer.named_parameters(), other.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)
    assert "weight_hh_l1_reverse" in layer.to_torch_state_dict()


def test_loading_a_torch_state_dict_names_missing_keys_and_changes_nothing():
    layer = rnn.RNN(3, 4, num_layers=2)
    before = layer.state_dict()
    state_dict = rnn.RNN(3, 4).to_torch_state_dict()
    with pytest.raises(KeyError, match="missing key 'weight_ih_l1'"):
        layer.load_torch_state_dict(state_dict)
    for name, p in layer.named_parameters():
        np.testing.assert_array_equal(p.data, before[name])


def test_loading_a_torch_state_dict_names_a_wrong_shape():
    layer = rnn.GRU(3, 4)
    state_dict = rnn.RNN(3, 4).to_torch_state_dict()  # 4 rows where the GRU has 12
    with pytest.raises(tg.ShapeError, match=r"'weight_ih_l0' has shape \(4, 3\), expected \(12, 3\)"):
        layer.load_torch_state_dict(state_dict)


# ---- gradients ---------------------------------------------------------------------------
def test_bidirectional_two_layer_rnn_gradcheck(rng):
    layer = rnn.RNN(2, 2, num_layers=2, bidirectional=True)

    def run(xs, h0):
        output, h_n = layer(xs, h0)
        return tg.concat([output.reshape(-1), h_n.reshape(-1)])

    assert gradcheck_module(layer, run, [randn(rng, 3, 2, 2), randn(rng, 4, 2, 2)])


# ---- truncated BPTT --------------------------------------------------------------------
def test_truncated_bptt_equals_fresh_per_chunk_gradients(rng):
    layer = rnn.LSTM(2, 3)
    xs = randn(rng, 6, 2, 2, requires_grad=False)
    state = None
    for start in (0, 3):
        output, state = layer(xs[start:start + 3], state)
        (output ** 2).sum().backward()  # no GraphFreedError on the second chunk
        state = rnn.detach_state(state)
    truncated = {name: p.grad for name, p in layer.named_parameters()}

    layer.zero_grad()
    state = None
    for start in (0, 3):
        fresh = None if state is None else tuple(tg.tensor(s.data.copy()) for s in state)
        output, state = layer(xs[start:start + 3], fresh)
        (output ** 2).sum().backward()
    for name, p in layer.named_parameters():
        np.testing.assert_allclose(truncated[name], p.grad, rtol=1e-14, err_msg=name)


def test_carrying_an_undetached_state_across_backward_raises_graph_freed(rng):
    layer = rnn.RNN(2, 3)
    output, h_n = layer(randn(rng, 3, 2, 2, requires_grad=False))
    output.sum().backward()
    output, _ = layer(randn(rng, 3, 2, 2, requires_grad=False), h_n)
    with pytest.raises(tg.GraphFreedError, match="detach"):
        output.sum().backward()


def test_detach_state_cuts_each_part_and_keeps_values(rng):
    _, state = rnn.LSTM(2, 3)(randn(rng, 3, 2, 2))
    detached = rnn.detach_state(state)
    assert isinstance(detached, tuple) and all(part.is_leaf for part in detached)
    for part, original in zip(detached, state):
        np.testing.assert_array_equal(part.data, original.data)


# ---- the recurrence as one tg.scan node ----------------------------------------------
def _outputs_and_grads(layer, xs, lengths, mode):
    layer.zero_grad()
    with mode:
        output, final = layer(xs, lengths=lengths)
    finals = final if isinstance(final, tuple) else (final,)
    loss = (output * output).sum() + sum((f * 3).sum() for f in finals)
    loss.backward()
    return [output.data, *(f.data for f in finals)] + [p.grad for p in layer.parameters()]


@pytest.mark.parametrize("layer_class", [rnn.RNN, rnn.LSTM, rnn.GRU])
@pytest.mark.parametrize("lengths", [None, np.array([4, 2, 3])])
def test_replayed_layers_equal_the_unrolled_graph(rng, layer_class, lengths):
    layer = layer_class(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    xs = tg.tensor(randn(rng, 3, 4, 3))
    replayed = _outputs_and_grads(layer, xs, lengths, contextlib.nullcontext())
    unrolled = _outputs_and_grads(layer, xs, lengths, tg.unrolled())
    parts = 3 if layer_class is rnn.LSTM else 2  # output, h_n (and c_n)
    assert len(replayed) == len(unrolled) == parts + 16  # 4 cells x 4 parameters
    for got, expected in zip(replayed, unrolled):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def test_replayed_layers_keep_per_step_states_as_named_slices(rng):
    layer = rnn.LSTM(3, 4, num_layers=2)
    output, (h_n, c_n) = layer(randn(rng, 5, 2, 3))
    states = layer.last_states["l1"]
    assert len(states) == 5
    a_3, c_3 = states[2]
    assert (a_3.name, c_3.name) == ("a<3>[2]", "c<3>[2]")
    np.testing.assert_array_equal(a_3.data, output.data[2])
    np.testing.assert_array_equal(states[-1][1].data, c_n.data[1])
    assert [a.name for a, _ in states[1:3]] == ["a<2>[2]", "a<3>[2]"]
    assert [a.name for a, _ in states] == [f"a<{t}>[2]" for t in range(1, 6)]
    with pytest.raises(IndexError):
        states[5]
