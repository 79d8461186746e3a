"""The workload every implementation runs: an Elman RNN, its sizes, its data.

    a<t> = tanh(W_ax x<t> + W_aa a<t-1> + b_a),  a<0> = 0
    o<t> = W_ya a<t> + b_y
    L    = softmax cross-entropy of o<t> against the target, summed over t and batch

One *step* is the forward pass over T time steps plus the backward pass to all five
gradients. Rows are batch entries, so x<t> is a row of ``xs[t]`` (B, m) and the
weights keep the notes' shapes: W_ax (n, m), W_aa (n, n), b_a (n,), W_ya (p, n),
b_y (p,). Everything is float64 and drawn from one seed, so every implementation
starts from identical weights and data.
"""
from dataclasses import dataclass

import numpy as np

PARAM_NAMES = ("W_ax", "W_aa", "b_a", "W_ya", "b_y")


@dataclass(frozen=True)
class Size:
    """One workload size: batch B, input m, hidden n, output p, T time steps."""

    name: str
    batch: int
    input: int
    hidden: int
    output: int
    steps: int
    one_hot: bool = False   # inputs are one-hot characters (min-char-rnn) or dense

    def __str__(self):
        kind = " one-hot" if self.one_hot else ""
        return (f"{self.name}: B={self.batch}, m={self.input}{kind}, n={self.hidden}, "
                f"p={self.output}, T={self.steps}")


SIZES = {
    "S": Size("S", batch=1, input=65, hidden=100, output=65, steps=25, one_hot=True),
    "M": Size("M", batch=32, input=64, hidden=256, output=64, steps=50),
    "L": Size("L", batch=16, input=32, hidden=128, output=32, steps=1000),
}

# A size small enough for tests: every implementation's gradients checked in milliseconds.
TINY = Size("tiny", batch=3, input=5, hidden=4, output=6, steps=7)


@dataclass(frozen=True)
class Problem:
    """Weights ``params`` {name: array}, inputs ``xs`` (T, B, m), int ``targets`` (T, B)."""

    size: Size
    params: dict
    xs: np.ndarray
    targets: np.ndarray


def make_problem(size, seed=0):
    """The problem at ``size``: weights from PyTorch's U(-1/sqrt(n), 1/sqrt(n)), inputs
    one-hot characters (with the next character as target, as min-char-rnn trains)
    or N(0, 1) vectors with random target classes."""
    rng = np.random.default_rng(seed)
    T, B, m, n, p = size.steps, size.batch, size.input, size.hidden, size.output
    bound = 1 / np.sqrt(n)
    shapes = {"W_ax": (n, m), "W_aa": (n, n), "b_a": (n,), "W_ya": (p, n), "b_y": (p,)}
    params = {name: rng.uniform(-bound, bound, shape) for name, shape in shapes.items()}
    if size.one_hot:
        chars = rng.integers(0, m, size=(T + 1, B))
        xs, targets = np.eye(m)[chars[:-1]], chars[1:] % p
    else:
        xs, targets = rng.standard_normal((T, B, m)), rng.integers(0, p, size=(T, B))
    return Problem(size, params, xs, targets)
