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
"""
import math

import numpy as np

import tinygraph as tg
from tinygraph import nn

from .cells import RNNCell
from .layers import unroll

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
