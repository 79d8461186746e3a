"""Learning tests: small models trained on rnn.data's tasks reach stated accuracies.

These are the slow tests of the suite (a few seconds each): every run trains for a
fixed number of Adam steps with fixed seeds (``tg.manual_seed`` for the weights, a
NumPy seed for the data) and is scored on a fresh batch from another seed, against
the task's chance level. They are marked ``learning``: ``-m "not learning"`` skips
them.
"""
import numpy as np
import pytest

import rnn
import tinygraph as tg
from rnn import data
from tinygraph import functional as F
from tinygraph import nn, optim

pytestmark = pytest.mark.learning

EVAL_SEED = 12345


def train(params, batches, loss_of, steps, lr, max_norm=1.0):
    """``steps`` Adam updates on ``loss_of(*batches())``, with the global gradient
    norm clipped to ``max_norm`` (before the step, where clipping belongs)."""
    params = list(params)
    optimizer = optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = loss_of(*batches())
        optimizer.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(params, max_norm)
        optimizer.step()


def test_elman_rnn_learns_the_delayed_copy():
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    vocab, delay = 4, 3
    model = rnn.ElmanRNN(input_size=vocab, hidden_size=16, output_size=vocab)

    def loss_of(xs, ys):
        logits, _ = model(tg.tensor(xs))
        return F.cross_entropy(logits, ys, ignore_index=data.IGNORE_INDEX)

    train(model.parameters(), lambda: data.copy(12, 32, vocab, delay, rng=rng), loss_of,
          steps=300, lr=1e-2)

    xs, ys = data.copy(12, 500, vocab, delay, rng=EVAL_SEED)
    with tg.no_grad():
        logits, _ = model(tg.tensor(xs))
    labelled = ys != data.IGNORE_INDEX
    accuracy = np.mean(logits.data.argmax(axis=-1)[labelled] == ys[labelled])
    assert accuracy >= 0.95, f"copy accuracy {accuracy:.3f} (chance {1 / vocab})"


def entity_tagger_accuracy(bidirectional):
    """Train an RNN layer + linear head to tag words of ``data.entity``; return the
    accuracy on the ambiguous words ("teddy", "washington") of a fresh batch."""
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    vocab, hidden = len(data.ENTITY_VOCAB), 16
    layer = rnn.RNN(vocab, hidden, bidirectional=bidirectional)
    head = nn.Linear(hidden * (2 if bidirectional else 1), 2)

    def tag_logits(xs):
        out, _ = layer(tg.tensor(xs))
        return head(out)

    train(list(layer.parameters()) + list(head.parameters()),
          lambda: data.entity(10, 32, rng=rng)[:2],
          lambda xs, ys: F.cross_entropy(tag_logits(xs), ys), steps=200, lr=1e-2)

    xs, ys, ambiguous = data.entity(10, 1000, rng=EVAL_SEED)
    with tg.no_grad():
        predicted = tag_logits(xs).data.argmax(axis=-1)
    return np.mean(predicted[ambiguous] == ys[ambiguous])


def test_bidirectional_rnn_tags_words_decided_by_the_next_word():
    bidirectional = entity_tagger_accuracy(bidirectional=True)
    unidirectional = entity_tagger_accuracy(bidirectional=False)
    assert bidirectional >= 0.95, f"bidirectional {bidirectional:.3f}"
    # A left-to-right tagger has not read the deciding word yet: chance is its best.
    assert unidirectional <= 0.6, f"unidirectional {unidirectional:.3f}"


def adding_mse(layer_class, T=20, steps=300):
    """Train ``layer_class(2, 16)`` + a linear head on the adding problem of length T;
    return the MSE on a fresh batch (predicting 1 always gives 1/6)."""
    tg.manual_seed(0)
    rng = np.random.default_rng(0)
    layer, head = layer_class(2, 16), nn.Linear(16, 1)

    def predict(xs):
        out, _ = layer(tg.tensor(xs))
        return head(out[-1])

    train(list(layer.parameters()) + list(head.parameters()),
          lambda: data.adding(T, 32, rng=rng),
          lambda xs, ys: F.mse_loss(predict(xs), ys), steps=steps, lr=5e-2)

    xs, ys = data.adding(T, 1000, rng=EVAL_SEED)
    with tg.no_grad():
        return F.mse_loss(predict(xs), ys).item()


def test_lstm_solves_the_adding_problem_where_a_plain_rnn_struggles():
    lstm, plain = adding_mse(rnn.LSTM), adding_mse(rnn.RNN)
    numbers = f"LSTM MSE {lstm:.4f}, RNN MSE {plain:.4f}, baseline {1 / 6:.4f}"
    assert lstm < 0.05, numbers
    assert lstm < plain, numbers
