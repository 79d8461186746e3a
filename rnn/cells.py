"""Recurrent cells: one time step of a recurrent network, written with tinygraph ops.

A cell maps the input x<t> and the previous state a<t-1> to the next state a<t>.
Applying it once per time step (``rnn.unroll``) records the unrolled graph, and
backpropagation through time is ``loss.backward()`` on that graph: nothing here has a
backward of its own.

Shapes follow the notes and PyTorch: a weight is (out, in), so ``W_ax`` is
(hidden, input) and ``W_aa`` is (hidden, hidden). Rows are batch entries: the notes'
column form a<t> = g1(W_ax x<t> + W_aa a<t-1> + b_a) reads, for a batch x_t (B, m)
and a_prev (B, n),

    a_t = g1(x_t @ W_ax.T + a_prev @ W_aa.T + b_a)          (B, n)

Every cell is written in two halves:

- ``project(x)``: the input's share x W_ax^T (+ b_ax), which does not depend on the
  state (so it also takes a whole sequence (T, B, m) at once). ``RNNCell`` folds
  every bias into it (x W_ax^T + b_a), since none of its biases depends on the state;
- ``recur(x_proj, state)``: the rest, the recurrence proper (for ``RNNCell`` one
  ``tg.linear`` node a_prev W_aa^T + x_proj, then g1).

``cell.step(x_t, state)`` is ``recur(project(x_t), state)``: the literal per-step graph
of the notes, with W_ax used at every step. ``cell(x_t, state=None)`` is the same with
a zero state by default.

Each affine piece W x + b of the notes is one ``tg.linear`` node (x W^T + b in rows),
so a step draws as the notes write it, and the engine sums a weight's gradients over
all the time steps that used it in one matrix product.

Initial values are PyTorch's: every weight and bias from U(-1/sqrt(n), 1/sqrt(n)),
drawn from tinygraph's generator (seed it with ``tg.manual_seed``).
"""
import math

import numpy as np

import tinygraph as tg
from tinygraph import nn

NONLINEARITIES = {"tanh": tg.tanh, "relu": tg.relu}


class Cell(nn.Module):
    """What every cell shares: the weights W_ax (gates*n, m) and W_aa (gates*n, n), the
    optional bias vectors, zero initial states, and the split into project and recur.

    ``gates`` is how many blocks of n rows the weights stack (1 for the Elman cell,
    4 for the LSTM, 3 for the GRU). With ``split_bias`` the cell keeps PyTorch's two
    bias vectors, b_ax added to the input's share and b_aa to the state's; otherwise
    one vector b_a. ``bias=False`` has neither.
    """

    gates = 1
    state_names = ("a",)  # the parts of the state; LSTMCell's is the pair (a, c)

    def __init__(self, input_size, hidden_size, bias=True, split_bias=True,
                 dtype=np.float64):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        bound = 1 / math.sqrt(hidden_size)
        self.W_ax = nn.uniform_parameter((rows, input_size), bound, dtype)
        self.W_aa = nn.uniform_parameter((rows, hidden_size), bound, dtype)
        self.b_a = self.b_ax = self.b_aa = None
        if bias and split_bias:
            self.b_ax = nn.uniform_parameter((rows,), bound, dtype)
            self.b_aa = nn.uniform_parameter((rows,), bound, dtype)
        elif bias:
            self.b_a = nn.uniform_parameter((rows,), bound, dtype)

    # ---- the two halves ------------------------------------------------------------
    def project(self, x):
        """The input's share x W_ax^T (+ b_ax), for x (B, m) or a whole sequence (T, B, m)."""
        self._check_input(x)
        return tg.linear(x, self.W_ax, self.b_ax)

    def _check_input(self, x):
        if x.shape[-1:] != (self.input_size,):
            raise tg.ShapeError(
                f"{type(self).__name__}: input of shape {x.shape} must end in "
                f"input_size = {self.input_size}")
        self.check_dtype(x)

    def check_dtype(self, value, what="input"):
        """Refuse a tensor whose dtype is not the weights' (as PyTorch does), naming both."""
        if value.dtype != self.W_ax.dtype:
            raise TypeError(
                f"{type(self).__name__}: input and weight dtypes differ: the {what} is "
                f"{value.dtype}, the weights are {self.W_ax.dtype}; convert the {what} "
                f"(tg.tensor(array, dtype=np.{self.W_ax.dtype})) or build the model "
                f"with dtype=np.{value.dtype}")

    def _state_share(self, a_prev):
        """a_prev W_aa^T + b_aa (the gated cells keep PyTorch's two biases)."""
        return tg.linear(a_prev, self.W_aa, self.b_aa)

    def recur(self, x_proj, state):
        raise NotImplementedError

    # ---- one step --------------------------------------------------------------------
    def step(self, x_t, state):
        """The next state from x_t (B, m) and the previous state."""
        self.check_dtype(x_t)
        self._check_state(state, x_t.shape[0])
        return self.recur(self.project(x_t), state)

    def forward(self, x_t, state=None):
        """``step(x_t, state)``, with a zero state when none is given (a<0> = 0)."""
        if x_t.ndim != 2:
            raise tg.ShapeError(
                f"{type(self).__name__}: x_t must be (batch, input_size) = "
                f"(B, {self.input_size}), got shape {x_t.shape}")
        if state is None:
            state = self.initial_state(x_t.shape[0], x_t.dtype)
        return self.step(x_t, state)

    def initial_state(self, batch_size, dtype=np.float64):
        """The zero state a<0>, shape (batch_size, n)."""
        return tg.tensor(np.zeros((batch_size, self.hidden_size), dtype=dtype), name="a<0>")

    def _check_state(self, state, batch_size):
        parts = state if isinstance(state, tuple) else (state,)
        for part in parts if isinstance(state, tuple) == (len(self.state_names) > 1) else ():
            self.check_dtype(part, "state")
        # a lone tensor given to an LSTM cell would unpack along its batch axis
        if isinstance(state, tuple) != (len(self.state_names) > 1) or \
                len(parts) != len(self.state_names):
            expected = ("one tensor a_prev" if len(self.state_names) == 1
                        else "the pair (a_prev, c_prev)")
            got = f"a tuple of {len(parts)}" if isinstance(state, tuple) else "one tensor"
            raise TypeError(f"{type(self).__name__}: the state must be {expected}, got {got}")
        for part in parts:
            if part.shape != (batch_size, self.hidden_size):
                raise tg.ShapeError(
                    f"{type(self).__name__}: the state must be (batch, hidden_size) = "
                    f"({batch_size}, {self.hidden_size}), got shape {part.shape}")

    def _gate(self, z, k):
        """The k-th block of n columns of z (gate k of a packed pre-activation)."""
        n = self.hidden_size
        return z[..., k * n:(k + 1) * n]

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(Cell):
    """The Elman cell of the notes: a<t> = g1(W_ax x<t> + W_aa a<t-1> + b_a).

    W_ax (n, m), W_aa (n, n), b_a (n,); g1 is tanh or relu. In batch rows:
    a_t = g1(x_t @ W_ax.T + a_prev @ W_aa.T + b_a), x_t (B, m), a_prev (B, n).

    ``stacked=True`` computes the same thing in the notes' stacked form: one matrix
    W_a = [W_aa | W_ax] (n, n + m) applied to [a<t-1>; x<t>],
    a<t> = g1(W_a [a<t-1>; x<t>] + b_a). The parameters stay W_ax and W_aa (``W_a`` is
    built from them with ``tg.concat`` each step), so both forms train the same weights
    and get the same gradients.

    ``split_bias=True`` keeps PyTorch's two biases b_ax, b_aa (bias_ih, bias_hh) in place
    of b_a = b_ax + b_aa: the layout ``rnn.RNN`` uses so that its state dict matches
    ``torch.nn.RNN``'s name for name.
    """

    def __init__(self, input_size, hidden_size, nonlinearity="tanh", bias=True,
                 stacked=False, split_bias=False, dtype=np.float64):
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', "
                             f"not {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, split_bias, dtype)
        self.nonlinearity, self.stacked = nonlinearity, stacked

    @property
    def W_a(self):
        """The notes' stacked weight W_a = [W_aa | W_ax], (n, n + m), as a graph node."""
        return tg.concat([self.W_aa, self.W_ax], axis=1)

    def project(self, x):
        """x W_ax^T + b_a: the input's share with the bias folded in, since no bias
        depends on the state (with split biases, + b_ax + b_aa)."""
        self._check_input(x)
        bias = self.b_a
        if self.b_ax is not None:  # PyTorch's two vectors, added once rather than per row
            bias = self.b_ax + self.b_aa
        return tg.linear(x, self.W_ax, bias)

    def recur(self, x_proj, a_prev):
        """a_t = g1(a_prev W_aa^T + x_proj), where x_proj = x_t W_ax^T + b_a: in the
        notes' columns, a<t> = g1(W_aa a<t-1> + (W_ax x<t> + b_a))."""
        return NONLINEARITIES[self.nonlinearity](tg.linear(a_prev, self.W_aa, x_proj))

    def step(self, x_t, a_prev):
        if not self.stacked:
            return super().step(x_t, a_prev)
        self._check_input(x_t)
        self._check_state(a_prev, x_t.shape[0])
        z = tg.linear(tg.concat([a_prev, x_t], axis=1), self.W_a, self.b_a)
        for b in (self.b_ax, self.b_aa):  # PyTorch's split biases, when the cell has them
            if b is not None:
                z = z + b
        return NONLINEARITIES[self.nonlinearity](z)

    def extra_repr(self):
        return (f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"
                + (", stacked=True" if self.stacked else ""))


class LSTMCell(Cell):
    """The LSTM cell with PyTorch's gate order i, f, g, o and two bias vectors.

    W_ax (4n, m) and W_aa (4n, n) stack the four gates' weights. With
    z = x_t @ W_ax.T + b_ax + a_prev @ W_aa.T + b_aa split into four blocks of n:

        i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)
        c_t = f * c_prev + i * g
        a_t = o * tanh(c_t)

    The state is the pair (a, c), both (B, n); ``cell(x_t, (a_prev, c_prev))`` returns
    (a_t, c_t), as ``torch.nn.LSTMCell`` does.
    """

    gates = 4
    state_names = ("a", "c")

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64):
        super().__init__(input_size, hidden_size, bias, split_bias=True, dtype=dtype)

    def initial_state(self, batch_size, dtype=np.float64):
        """(a<0>, c<0>) = (0, 0), each (batch_size, n)."""
        c0 = tg.tensor(np.zeros((batch_size, self.hidden_size), dtype=dtype), name="c<0>")
        return super().initial_state(batch_size, dtype), c0

    def recur(self, x_proj, state):
        a_prev, c_prev = state
        z = x_proj + self._state_share(a_prev)
        i = tg.sigmoid(self._gate(z, 0))
        f = tg.sigmoid(self._gate(z, 1))
        g = tg.tanh(self._gate(z, 2))
        o = tg.sigmoid(self._gate(z, 3))
        i.name, f.name, g.name, o.name = "i", "f", "g", "o"
        c_t = f * c_prev + i * g
        return o * tg.tanh(c_t), c_t


class GRUCell(Cell):
    """The GRU cell with PyTorch's gate order r, z, n and its reset-after form.

    W_ax (3n, m) and W_aa (3n, n) stack the three gates' weights; b_ax and b_aa must
    stay apart because the reset gate multiplies the state's share including its bias:

        r = sigmoid(W_ir x + b_ir + W_hr a_prev + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz a_prev + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn a_prev + b_hn))
        a_t = (1 - z) * n + z * a_prev
    """

    gates = 3

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64):
        super().__init__(input_size, hidden_size, bias, split_bias=True, dtype=dtype)

    def recur(self, x_proj, a_prev):
        a_share = self._state_share(a_prev)
        r = tg.sigmoid(self._gate(x_proj, 0) + self._gate(a_share, 0))
        z = tg.sigmoid(self._gate(x_proj, 1) + self._gate(a_share, 1))
        n = tg.tanh(self._gate(x_proj, 2) + r * self._gate(a_share, 2))
        r.name, z.name, n.name = "r", "z", "n"
        return (1 - z) * n + z * a_prev
