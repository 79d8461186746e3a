"""Parameter counts: the notes' worked example, our modules' own parameters, PyTorch's."""
import itertools

import pytest

import rnn

CONFIGURATIONS = list(itertools.product(["rnn", "lstm", "gru"], [1, 2, 3], [False, True],
                                        [True, False]))
LAYERS = {"rnn": rnn.RNN, "lstm": rnn.LSTM, "gru": rnn.GRU}


def test_the_notes_example_shapes():
    count = rnn.count_parameters("elman", input_size=10, hidden_size=20, output_size=5)
    assert count.shapes["W_ax"] == (20, 10)
    assert count.shapes["W_aa"] == (20, 20)
    assert count.shapes["W_ya"] == (5, 20)


def test_the_notes_example_totals():
    count = rnn.count_parameters("elman", 10, 20, 5)
    assert (count.weights, count.biases, count.total) == (700, 25, 725)
    assert rnn.count_parameters("elman", 10, 20, 5, bias=False).total == 700


def test_pytorch_layout_counts_one_more_bias_vector():
    notes = rnn.count_parameters("elman", 10, 20, 5).total
    pytorch = rnn.count_parameters("rnn", 10, 20, 5).total
    assert (notes, pytorch) == (725, 745)


@pytest.mark.parametrize("kind, expected", [("lstm", 2560), ("gru", 1920)])
def test_gated_cells_count_their_gate_blocks(kind, expected):
    assert rnn.count_parameters(kind, 10, 20).total == expected


def test_stacked_and_bidirectional_counts():
    assert rnn.count_parameters("rnn", 10, 20, num_layers=2).total == 640 + 840
    bidirectional = rnn.count_parameters("rnn", 10, 20, 5, bidirectional=True)
    assert bidirectional.shapes["W_ya"] == (5, 40)
    assert bidirectional.total == 2 * 640 + 205


def test_elman_count_matches_the_model():
    model = rnn.ElmanRNN(10, 20, 5)
    count = rnn.count_parameters("elman", 10, 20, 5)
    assert count.shapes == {name: p.shape for name, p in model.named_parameters()}
    assert count.total == model.num_parameters()


@pytest.mark.parametrize("kind, num_layers, bidirectional, bias", CONFIGURATIONS)
def test_layer_count_matches_the_layer(kind, num_layers, bidirectional, bias):
    layer = LAYERS[kind](3, 4, num_layers=num_layers, bidirectional=bidirectional, bias=bias)
    count = rnn.count_parameters(kind, 3, 4, num_layers=num_layers,
                                 bidirectional=bidirectional, bias=bias)
    assert count.shapes == {name: p.shape for name, p in layer.named_parameters()}


@pytest.mark.parametrize("kind, num_layers, bidirectional, bias", CONFIGURATIONS)
def test_count_matches_pytorch(kind, num_layers, bidirectional, bias):
    torch = pytest.importorskip("torch")
    torch_class = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    directions = 2 if bidirectional else 1
    modules = [torch_class(10, 20, num_layers=num_layers, bidirectional=bidirectional,
                           bias=bias),
               torch.nn.Linear(directions * 20, 5, bias=bias)]
    expected = sum(p.numel() for module in modules for p in module.parameters())
    count = rnn.count_parameters(kind, 10, 20, 5, num_layers=num_layers,
                                 bidirectional=bidirectional, bias=bias)
    assert count.total == expected


def test_count_table_lists_every_parameter_and_the_total():
    text = str(rnn.count_parameters("elman", 10, 20, 5))
    for row in ("W_ax", "(20, 10)", "W_ya", "(5, 20)", "725"):
        assert row in text


def test_elman_summary_explains_the_difference_from_pytorch():
    summary = rnn.ElmanRNN(10, 20, 5).summary()
    assert "725" in summary and "745" in summary and "bias_hh" in summary


def test_count_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        rnn.count_parameters("transformer", 10, 20)


def test_elman_count_needs_an_output_size():
    with pytest.raises(ValueError, match="output_size"):
        rnn.count_parameters("elman", 10, 20)
