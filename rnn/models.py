"""ElmanRNN: the notes' full recurrent model, an Elman cell with an output layer.

    a<t> = g1(W_ax x<t> + W_aa a<t-1> + b_a),   a<0> = 0
    o<t> = W_ya a<t> + b_y,                     y^<t> = g2(o<t>)

The same W_ax, W_aa, b_a, W_ya, b_y serve every time step. The forward pass is the
literal unrolled graph: at each step t, under ``tg.scope(f"t={t}")``, the ops
W_ax x<t> + b_a, W_aa a<t-1> + that, g1, then W_ya a<t> + b_y (each affine map one
``tg.linear`` node, x W^T + b in batch rows).

Architectures, from the same model:
- many-to-many: ``logits, states = model(xs)`` gives o<t> for every step;
- many-to-one: use the last step only, ``logits[-1]`` (B, p);
- one-to-many: ``model.generate(start, steps)`` feeds each sampled output back in.

Teacher forcing: to train a sequence model (a character model, say), the input at
step t is the *true* previous output y<t-1> and the target is y<t>, i.e.
``xs = one_hot(seq[:-1])``, ``targets = seq[1:]``: the model never sees its own
mistakes during training. ``generate`` runs free: its input at step t is its own
sample from step t-1.

The trainer's models (``python -m rnn train``) are ``Elman`` (this model) and
``Stacked`` (an ``rnn.RNN``, ``LSTM`` or ``GRU`` layer with the output layer W_ya, b_y),
built from a configuration dict by ``build_model`` and driven through one interface:
``run(xs, state)`` for per-step logits, ``run_last(xs)`` for many-to-one.
"""
import math

import numpy as np

import tinygraph as tg
from tinygraph import nn

from .cells import RNNCell
from .layers import GRU, LSTM, RNN, unroll

OUTPUTS = ("softmax", "sigmoid", "identity")


class ElmanRNN(RNNCell):
    """The notes' model: an ``RNNCell`` (W_ax (n, m), W_aa (n, n), b_a (n,)) plus the
    output layer W_ya (p, n), b_y (p,), with g2 = ``output`` (softmax, sigmoid or
    identity). All five parameters are plain attributes; ``model.step(x_t, a_prev)``
    is one step of the cell, and ``model.output_layer(a_t)`` gives o<t>.

    ``model(xs, a0=None)`` returns ``(logits, states)``: logits o<t> stacked as
    (T, B, p) and states a<t> as (T, B, n). The list [a<1>, ..., a<T>] of the last
    call is kept in ``model.last_states`` (graph nodes: ``retain_grad()`` on them
    shows dL/da<t> after backward).
    """

    def __init__(self, input_size, hidden_size, output_size, nonlinearity="tanh",
                 output="softmax", bias=True, stacked=False, dtype=np.float64):
        if output not in OUTPUTS:
            raise ValueError(f"ElmanRNN: output must be one of {OUTPUTS}, not {output!r}")
        super().__init__(input_size, hidden_size, nonlinearity, bias, stacked,
                         split_bias=False, dtype=dtype)
        self.output_size, self.output = output_size, output
        bound = 1 / math.sqrt(hidden_size)
        self.W_ya = nn.uniform_parameter((output_size, hidden_size), bound, dtype)
        self.b_y = nn.uniform_parameter((output_size,), bound, dtype) if bias else None
        self.last_states = None

    def forward(self, xs, a0=None, stack_states=True):
        """xs (T, B, m) (or a list of T tensors (B, m)), a0 (B, n) or None for zeros.
        Returns (logits (T, B, p), states (T, B, n)), both graph-connected.

        ``stack_states=False`` returns the states as the list [a<1>, ..., a<T>]
        instead: stacking copies them, T*B*n numbers a long sequence may not want.
        """
        self.last_states = None  # let the previous call's graph go before building this one
        states = unroll(self, xs, a0)
        logits = []
        for t, a_t in enumerate(states, start=1):
            with tg.scope(f"t={t}"):
                o_t = self.output_layer(a_t)
            o_t.name = f"o<{t}>"
            logits.append(o_t)
        self.last_states = states
        return tg.stack(logits), (tg.stack(states) if stack_states else states)

    def output_layer(self, a_t):
        """o<t> = W_ya a<t> + b_y, in rows: a_t (B, n) -> (B, p)."""
        return tg.linear(a_t, self.W_ya, self.b_y)

    def output_activation(self, logits):
        """y^ = g2(o) along the last axis: softmax, sigmoid or the identity."""
        if self.output == "softmax":
            return tg.exp(tg.log_softmax(logits, axis=-1))
        if self.output == "sigmoid":
            return tg.sigmoid(logits)
        return logits

    def predict(self, xs, a0=None):
        """y^<t> = g2(o<t>) for every step, (T, B, p)."""
        logits, _ = self(xs, a0)
        return self.output_activation(logits)

    def generate(self, start, steps, temperature=1.0, rng=None, a0=None):
        """One-to-many: sample ``steps`` outputs, feeding each back as the next input.

        ``start`` is x<1>: a class index (or a 1-D array of B indices), one-hot encoded,
        or an input vector (m,) / batch (B, m). At each step y<t> is drawn from
        g2(o<t> / temperature): a class from the softmax (the next input is its
        one-hot vector), 0/1 units from the sigmoid; identity outputs are fed back as
        they are. ``temperature`` -> 0 approaches argmax (0 is exactly greedy);
        above 1 the samples spread out. ``rng``: a seed or ``np.random.Generator``.

        Returns the samples in time order: indices (steps,) or (steps, B) for softmax,
        vectors (steps, p) or (steps, B, p) otherwise. No graph is recorded.
        """
        if self.output_size != self.input_size:
            raise ValueError(
                f"generate feeds each output back as the next input, so it needs "
                f"output_size == input_size, not {self.output_size} and {self.input_size}")
        if temperature < 0:
            raise ValueError(f"generate: temperature must be >= 0, not {temperature}")
        rng = np.random.default_rng(rng)
        start = np.asarray(start)
        single = start.ndim == (0 if start.dtype.kind in "iu" else 1)
        x = self._as_input(start[np.newaxis] if single else start)
        samples = []
        with tg.no_grad():
            a = self.initial_state(x.shape[0], self.W_ax.dtype) if a0 is None else a0
            for _ in range(steps):
                a = self.step(tg.tensor(x), a)
                y = self._sample(self.output_layer(a).data, temperature, rng)
                samples.append(y)
                x = self._as_input(y)
        samples = np.stack(samples)
        return samples[:, 0] if single else samples

    def _as_input(self, y):
        """The next input from a sample: one-hot for class indices, else as it is."""
        if y.dtype.kind in "iu":
            if y.min() < 0 or y.max() >= self.input_size:
                raise ValueError(f"generate: class indices must lie in "
                                 f"[0, {self.input_size}), got {y}")
            return np.eye(self.input_size, dtype=self.W_ax.dtype)[y]
        if y.shape[-1] != self.input_size:
            raise tg.ShapeError(f"generate: an input vector must have input_size = "
                                f"{self.input_size} entries, got shape {y.shape}")
        return y.astype(self.W_ax.dtype)

    def _sample(self, logits, temperature, rng):
        """Draw y<t> from g2(logits / temperature), row by row."""
        if self.output == "identity":
            return logits
        if self.output == "sigmoid":
            if temperature == 0:
                return (logits > 0).astype(logits.dtype)
            p = tg.sigmoid(logits / temperature).data
            return (rng.random(p.shape) < p).astype(logits.dtype)
        if temperature == 0:
            return logits.argmax(axis=-1)
        p = tg.exp(tg.log_softmax(logits / temperature, axis=-1)).data
        u = rng.random((p.shape[0], 1))
        # inverse-CDF sampling, one draw per row; min() guards against rounding at 1
        return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)

    def summary_notes(self):
        m, n, p = self.input_size, self.hidden_size, self.output_size
        weights, biases = n * m + n * n + p * n, n + p
        return [f"the notes' count: n·m + n·n + p·n = {weights} weights, + n + p = "
                f"{weights + biases} with the biases b_a and b_y; torch.nn.RNN({m}, {n}) + "
                f"nn.Linear({n}, {p}) has {weights + biases + n}, because PyTorch keeps "
                f"two bias vectors (bias_ih, bias_hh) where the notes have one b_a"]

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, {self.output_size}, "
                f"nonlinearity={self.nonlinearity!r}, output={self.output!r}")


# ---- the trainer's models -----------------------------------------------------------------
class Elman(ElmanRNN):
    """The notes' ElmanRNN, with the interface the trainer drives every model through."""

    def run(self, xs, state=None):
        """Per-step logits o<t> (T, B, p) and the last state a<T> (B, n)."""
        logits, _ = self(xs, state, stack_states=False)
        return logits, self.last_states[-1]

    def run_last(self, xs):
        """Many-to-one: o<T> = W_ya a<T> + b_y, (B, p)."""
        logits, _ = self.run(xs)
        return logits[-1]


class Stacked(nn.Module):
    """A PyTorch-style recurrent layer (rnn.RNN, LSTM or GRU: stacked, bidirectional)
    with the output layer o<t> = W_ya a<t> + b_y on its D*n outputs."""

    LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}

    def __init__(self, kind, input_size, hidden_size, output_size, num_layers=1,
                 bidirectional=False):
        super().__init__()
        self.layers = self.LAYERS[kind](input_size, hidden_size, num_layers=num_layers,
                                        bidirectional=bidirectional)
        width = (2 if bidirectional else 1) * hidden_size
        bound = 1 / math.sqrt(width)
        self.W_ya = nn.uniform_parameter((output_size, width), bound)
        self.b_y = nn.uniform_parameter((output_size,), bound)

    def forward(self, xs, state=None):
        """(logits (T, B, p), h_n): the layer's outputs through the output layer."""
        out, h_n = self.layers(xs, state)
        return tg.linear(out, self.W_ya, self.b_y), h_n

    def run(self, xs, state=None):
        return self(xs, state)

    def run_last(self, xs):
        """Many-to-one from the last layer's final states. For a bidirectional layer
        these are [a→<T> ; a←<1>]: out[-1] would hold a←<T>, which has read x<T> only."""
        _, h_n = self.layers(xs)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n
        directions = 2 if self.layers.bidirectional else 1
        last = h_n[-1] if directions == 1 else tg.concat([h_n[-2], h_n[-1]], axis=1)
        return tg.linear(last, self.W_ya, self.b_y)


MODELS = ("elman", "rnn", "lstm", "gru")


def build_model(config):
    """The model a configuration dict describes: its "model" (one of ``MODELS``),
    "input_size" m, "hidden" n, "output_size" p, "layers" and "bidirectional"."""
    kind = config["model"]
    sizes = (config["input_size"], config["hidden"], config["output_size"])
    if kind == "elman":
        return Elman(*sizes)
    return Stacked(kind, *sizes, num_layers=config["layers"],
                   bidirectional=config["bidirectional"])


def describe(config):
    """The model of a configuration in a few words: "LSTM(m=4, n=16, p=4, 2 layers)"."""
    kind = {"elman": "ElmanRNN", "rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[config["model"]]
    extra = ""
    if config["model"] != "elman":
        extra = (f", {config['layers']} layer{'s' if config['layers'] > 1 else ''}"
                 + (", bidirectional" if config["bidirectional"] else ""))
    return (f"{kind}(m={config['input_size']}, n={config['hidden']}, "
            f"p={config['output_size']}{extra})")


def generate_text(model, vocab, prefix, length, temperature, rng):
    """``prefix`` followed by ``length`` characters sampled one at a time from
    softmax(o<t> / temperature) (argmax at temperature 0), each fed back as x<t+1>.

    ``model`` is one of the trainer's models on one-hot characters of ``vocab`` (a list
    of V characters); every character of ``prefix`` (at least one) must be in it.
    """
    index = {c: i for i, c in enumerate(vocab)}
    eye = np.eye(len(vocab))
    ids = [index[c] for c in prefix]
    with tg.no_grad():
        logits, state = model.run(tg.tensor(eye[ids][:, None, :]))
        for _ in range(length):
            o = logits.data[-1, 0]
            if temperature == 0:
                next_id = int(o.argmax())
            else:
                p = np.exp((o - o.max()) / temperature)
                next_id = int(rng.choice(len(vocab), p=p / p.sum()))
            ids.append(next_id)
            logits, state = model.run(tg.tensor(eye[[next_id]][:, None, :]), state)
    return "".join(vocab[i] for i in ids)
