"""rnn.RNN / LSTM / GRU against torch.nn's layers, in float64: outputs, final states and
the gradients with respect to the input, the initial state and every weight."""
import numpy as np
import pytest

import rnn
import tinygraph as tg

torch = pytest.importorskip("torch")

TOLERANCE = 1e-10
KINDS = {
    "rnn_tanh": (rnn.RNN, torch.nn.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (rnn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "lstm": (rnn.LSTM, torch.nn.LSTM, {}),
    "gru": (rnn.GRU, torch.nn.GRU, {}),
}
M, H, T, B = 3, 4, 5, 3


def build(kind, **options):
    """A torch layer with its random weights, and ours loaded from its state dict."""
    ours_class, torch_class, extra = KINDS[kind]
    torch.manual_seed(0)
    theirs = torch_class(M, H, **options, **extra).double()
    ours = ours_class(M, H, **options, **extra)
    ours.load_torch_state_dict(theirs.state_dict())
    return ours, theirs


def initial_state(kind, rng, layers):
    """h0 (or (h0, c0) for the LSTM) as arrays of shape (layers, B, H)."""
    parts = [rng.standard_normal((layers, B, H)) for _ in range(2 if kind == "lstm" else 1)]
    return tuple(parts) if kind == "lstm" else parts[0]


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def run_both(ours, theirs, x, hx, torch_input=None, **ours_options):
    """Forward both layers, backward a random projection of (output, final states) in
    both; return {what: (ours, theirs)} for outputs, states and every gradient."""
    rng = np.random.default_rng(1)
    x_ours = tg.tensor(x, requires_grad=True)
    x_torch = torch.tensor(x, requires_grad=True)
    hx_ours = hx_torch = None
    if hx is not None:
        hx_ours = tuple(tg.tensor(h, requires_grad=True) for h in as_tuple(hx))
        hx_torch = tuple(torch.tensor(h, requires_grad=True) for h in as_tuple(hx))
    unpack = (lambda s: s) if isinstance(hx, tuple) else (lambda s: s[0])
    out_ours, final_ours = ours(x_ours, None if hx is None else unpack(hx_ours), **ours_options)
    out_torch, final_torch = theirs(x_torch if torch_input is None else torch_input(x_torch),
                                    None if hx is None else unpack(hx_torch))
    if torch_input is not None:
        out_torch, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out_torch, batch_first=theirs.batch_first, total_length=T)
    results = {"output": (out_ours, out_torch)}
    for i, (a, b) in enumerate(zip(as_tuple(final_ours), as_tuple(final_torch))):
        results[f"final state {i}"] = (a, b)

    loss_ours, loss_torch = 0, 0
    for a, b in results.values():
        weights = rng.standard_normal(a.shape)
        loss_ours = loss_ours + (a * weights).sum()
        loss_torch = loss_torch + (b * torch.tensor(weights)).sum()
    loss_ours.backward()
    loss_torch.backward()

    compared = {name: (a.data, b.detach().numpy()) for name, (a, b) in results.items()}
    compared["d input"] = (x_ours.grad, x_torch.grad.numpy())
    if hx is not None:
        for i, (a, b) in enumerate(zip(hx_ours, hx_torch)):
            compared[f"d initial state {i}"] = (a.grad, b.grad.numpy())
    torch_parameters = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        key = rnn.layers._torch_key(name)
        compared[f"d {name} ({key})"] = (p.grad, torch_parameters[key].grad.numpy())
    return compared


def assert_all_close(compared):
    for name, (ours, theirs) in compared.items():
        assert ours.shape == theirs.shape, name
        assert np.max(np.abs(ours - theirs), initial=0.0) <= TOLERANCE, name


@pytest.mark.parametrize("with_h0", [False, True], ids=["zero_h0", "h0"])
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("num_layers", [1, 2], ids=["1layer", "2layers"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_matches_torch(kind, num_layers, bidirectional, batch_first, with_h0):
    ours, theirs = build(kind, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, M) if batch_first else (T, B, M))
    layers = num_layers * (2 if bidirectional else 1)
    hx = initial_state(kind, rng, layers) if with_h0 else None
    assert_all_close(run_both(ours, theirs, x, hx))


@pytest.mark.parametrize("kind", list(KINDS))
def test_unbatched_input_matches_torch(kind):
    ours, theirs = build(kind, num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((T, M))
    out_ours, final_ours = ours(tg.tensor(x))
    out_torch, final_torch = theirs(torch.tensor(x))
    assert out_ours.shape == tuple(out_torch.shape) == (T, 2 * H)
    np.testing.assert_allclose(out_ours.data, out_torch.detach().numpy(), atol=TOLERANCE)
    for a, b in zip(as_tuple(final_ours), as_tuple(final_torch)):
        np.testing.assert_allclose(a.data, b.detach().numpy(), atol=TOLERANCE)


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_first", "batch_first"])
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_variable_lengths_match_pack_padded_sequence(kind, batch_first):
    ours, theirs = build(kind, num_layers=2, bidirectional=True, batch_first=batch_first)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, M) if batch_first else (T, B, M))
    lengths = np.array([3, T, 1])  # unsorted, one full-length, one of a single step
    hx = initial_state(kind, rng, 4)

    def pack(x_torch):
        return torch.nn.utils.rnn.pack_padded_sequence(
            x_torch, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)

    assert_all_close(run_both(ours, theirs, x, hx, torch_input=pack, lengths=lengths))


def test_mask_gives_the_same_as_lengths():
    ours, theirs = build("lstm", num_layers=2, bidirectional=True)
    x = np.random.default_rng(0).standard_normal((T, B, M))
    lengths = np.array([2, T, 4])
    mask = np.arange(T)[:, None] < lengths[None, :]
    by_lengths = run_both(ours, theirs, x, None, lengths=lengths)
    ours.zero_grad()
    by_mask = run_both(ours, theirs, x, None, mask=mask)
    for name in by_lengths:
        np.testing.assert_array_equal(by_mask[name][0], by_lengths[name][0])


@pytest.mark.parametrize("kind", list(KINDS))
def test_to_torch_state_dict_loads_into_torch(kind):
    ours_class, torch_class, extra = KINDS[kind]
    tg.manual_seed(3)
    ours = ours_class(M, H, num_layers=2, bidirectional=True, **extra)
    theirs = torch_class(M, H, num_layers=2, bidirectional=True, **extra).double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.to_torch_state_dict().items()})
    x = np.random.default_rng(0).standard_normal((T, B, M))
    out_ours, _ = ours(tg.tensor(x))
    out_torch, _ = theirs(torch.tensor(x))
    np.testing.assert_allclose(out_ours.data, out_torch.detach().numpy(), atol=TOLERANCE)


def test_state_dict_names_are_a_rename_of_torch_names():
    ours, theirs = build("gru", num_layers=2, bidirectional=True)
    assert list(ours.to_torch_state_dict()) == list(theirs.state_dict())
    for key, value in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.to_torch_state_dict()[key], value.numpy())


@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_without_bias_matches_torch(kind):
    ours, theirs = build(kind, bias=False)
    x = np.random.default_rng(0).standard_normal((T, B, M))
    assert_all_close(run_both(ours, theirs, x, None))
