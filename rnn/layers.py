"""Unrolling a cell over time, and the RNN, LSTM and GRU layers built on it.

``unroll`` is the whole idea of this package: a Python loop that applies a cell once
per time step. Every application records ordinary graph nodes, tagged with their time
step (``tg.scope("t=1")``, ``"t=2"``, ...), and the same weight tensors feed every
step, so ``loss.backward()`` on the result is backpropagation through time: each
shared weight's gradient is the sum of one contribution per step.

The layers follow ``torch.nn.RNN`` / ``LSTM`` / ``GRU``: input (T, B, m) (or
(B, T, m) with ``batch_first``, or (T, m) unbatched), ``num_layers`` stacked (layer
l > 0 reads the outputs of layer l - 1), ``bidirectional`` (outputs [fwd_t ; bwd_t]),
initial states (D*num_layers, B, n) defaulting to zero, and ``(output, h_n)`` back
(``(output, (h_n, c_n))`` for the LSTM). Their parameters are named so that PyTorch's
state dict maps onto them by a rename, with no transpose:

    weight_ih_l0 -> l0.W_ax     weight_hh_l0 -> l0.W_aa
    bias_ih_l0   -> l0.b_ax     bias_hh_l0   -> l0.b_aa     *_reverse -> l0_reverse.*

For speed, a layer projects the inputs of all T steps at once (``cell.project``:
x W_ax^T + b_ax for the whole (T, B, m) sequence, one ``tg.linear`` node; the RNN
folds b_aa in too) and runs only the recurrence ``cell.recur`` step by step, each
step reading its slice of that projection. That recurrence is written once
(``_recurrence``) and always run by ``tg.scan``, which decides how: it traces the
step and replays its ops on arrays (the whole recurrence one graph node, the weight
gradients of all steps summed with one matrix product per 1,024 rows), or, under
``tg.unrolled()`` (and in anomaly mode), runs it as the literal per-step graph,
every a<t> a node of its own under ``tg.scope(f"t={t}")`` and named as
``rnn.names`` says: that is what ``rnn.viz`` draws, and what ``retain_grad`` on a
per-step state needs.

Truncated BPTT: carry the state into the next chunk of a long sequence with
``detach_state``, which cuts the graph there, so each backward stays within its chunk::

    state = None
    for xs, ys in chunks:                  # consecutive pieces of one long sequence
        out, state = layer(xs, state)
        loss = F.cross_entropy(head(out).reshape(-1, V), ys.reshape(-1))
        loss.backward(); opt.step(); opt.zero_grad()
        state = rnn.detach_state(state)    # keep the values, drop the history

Without the detach, the second backward reaches the first chunk's freed graph and
raises ``tg.GraphFreedError``; ``retain_graph=True`` would instead silently turn
truncated BPTT into full BPTT over an ever-growing graph.
"""
import contextlib

import numpy as np

import tinygraph as tg
from tinygraph import nn

from .cells import GRUCell, LSTMCell, RNNCell
from .names import state_formats


def _parts(state):
    return state if isinstance(state, tuple) else (state,)


def _rejoin(parts, like):
    return tuple(parts) if isinstance(like, tuple) else parts[0]


def _recurrence(cell, x_proj, state, reverse, keep, names):
    """The layer's one recurrence: ``state = cell.recur(x_proj[t], state)`` for every t
    (t = T down to 1 with ``reverse``), as ``tg.scan``, which traces the step once and
    replays it, or, under ``tg.unrolled()``, runs it as the literal per-step graph, each
    step under ``tg.scope(f"t={t}")`` and its states named by ``names``. Where
    ``keep[t - 1]`` (B,) is False the step is padding: the previous state is carried
    through unchanged for that batch entry.

    Returns the states stacked (one (T, B, n) tensor per part of the state) and, from
    the literal graph, the per-step states in time order (else an empty list).
    """
    padded = keep is not None and not keep.all()
    xs = (x_proj, tg.tensor(keep[:, :, None])) if padded else x_proj
    literal = not tg.accel.replays()
    per_step = []

    def step(state, x_t):
        x_proj_t, keep_t = x_t if padded else (x_t, None)
        new = cell.recur(x_proj_t, state)
        if padded:
            new = _rejoin([tg.where(keep_t, n, p) for n, p in zip(_parts(new), _parts(state))],
                          new)
        if literal:
            per_step.append(new)
        return new

    stacked = _parts(tg.scan(step, state, xs, reverse=reverse, names=names))
    return stacked, per_step[::-1] if reverse else per_step


class _Steps:
    """The per-step states of a layer and direction: ``states[t - 1]`` is a<t> (a pair
    (a<t>, c<t>) for the LSTM). From the literal graph (under ``tg.unrolled()``) these
    are its nodes; from a replay, slices of the stacked states, named alike, made at
    each access, so ``retain_grad()`` on one shows nothing."""

    def __init__(self, stacked, per_step, formats):
        self.stacked, self.per_step, self.formats = stacked, per_step, formats

    def __len__(self):
        return len(self.stacked[0])

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        t = range(1, len(self) + 1)[index]  # IndexError past either end
        if self.per_step:
            return self.per_step[t - 1]
        parts = [part[t - 1] for part in self.stacked]
        for part, name in zip(parts, self.formats):
            part.name = name.format(t=t)
        return tuple(parts) if len(parts) > 1 else parts[0]


def unroll(cell, xs, a0=None):
    """Apply ``cell`` once per time step: a<t> = cell(x<t>, a<t-1>) for t = 1..T.

    xs is a (T, B, m) tensor or a sequence of T tensors (B, m); a0 is a<0> (B, n),
    zero by default (for an LSTM cell, the pair (a<0>, c<0>)). Returns the list
    [a<1>, ..., a<T>] of graph nodes (pairs (a<t>, c<t>) for an LSTM cell), named
    "a<t>" (see ``rnn.names``) and built under ``tg.scope(f"t={t}")``, so
    ``a_t.retain_grad()`` shows dL/da<t> after ``loss.backward()``. This is the
    literal loop always (a cell's user asks for its per-step nodes); the layers run
    theirs through ``tg.scan``.
    """
    if isinstance(xs, tg.Tensor) and xs.ndim != 3:
        raise tg.ShapeError(f"unroll: xs must be (T, B, input_size), got shape {xs.shape}")
    if len(xs) == 0:
        raise ValueError("unroll: xs holds no time steps")
    batch, dtype = (xs.shape[1], xs.dtype) if isinstance(xs, tg.Tensor) else \
        (xs[0].shape[0], xs[0].dtype)
    state = cell.initial_state(batch, dtype) if a0 is None else a0
    formats = state_formats(cell.state_names)
    states = []
    for t in range(1, len(xs) + 1):
        with tg.scope(f"t={t}"):
            state = cell.step(xs[t - 1], state)
        for part, name in zip(_parts(state), formats):
            part.name = name.format(t=t)
        states.append(state)
    return states


def detach_state(state):
    """The state's values cut from the graph: a tensor, or a tuple such as an LSTM's
    (h, c), detached part by part. For truncated BPTT (see the module docstring)."""
    if state is None:
        return None
    return _rejoin([part.detach() for part in _parts(state)], state)


_TORCH_NAMES = {"W_ax": "weight_ih", "W_aa": "weight_hh", "b_ax": "bias_ih",
                "b_aa": "bias_hh"}


def _torch_key(name):
    """'l1_reverse.W_ax' -> 'weight_ih_l1_reverse'."""
    cell, parameter = name.split(".")
    return f"{_TORCH_NAMES[parameter]}_{cell}"


def _as_array(value):
    """A NumPy array from an ndarray, a tinygraph tensor or a torch tensor (without
    importing torch)."""
    if isinstance(value, tg.Tensor):
        return value.data
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


class _RecurrentLayer(nn.Module):
    """The machinery RNN, LSTM and GRU share; each subclass says which cell it stacks."""

    cell_class = None
    state_names = ("a",)

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, bidirectional=False, dtype=np.float64, **cell_options):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"{type(self).__name__}: num_layers must be at least 1, "
                             f"not {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.directions = ("", "_reverse") if bidirectional else ("",)
        self.last_states = None
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else len(self.directions) * hidden_size
            for suffix in self.directions:
                cell = self.cell_class(layer_input, hidden_size, bias=bias, dtype=dtype,
                                       **cell_options)
                for name, p in cell.named_parameters():
                    p.name = f"l{layer}{suffix}.{name}"  # as in the state dict
                setattr(self, f"l{layer}{suffix}", cell)

    def cells(self):
        """(layer, direction suffix, cell) for every cell, in PyTorch's order."""
        return [(layer, suffix, getattr(self, f"l{layer}{suffix}"))
                for layer in range(self.num_layers) for suffix in self.directions]

    # ---- forward -----------------------------------------------------------------------
    def forward(self, x, hx=None, lengths=None, mask=None):
        """Run every layer and direction over the sequence x.

        x: (T, B, m), or (B, T, m) with batch_first, or (T, m) unbatched.
        hx: the initial state (D*num_layers, B, n), zero when None (for the LSTM the
        pair (h_0, c_0)); batch_first does not apply to it, as in PyTorch.
        lengths (B,) or mask (same layout as x without its last axis, True on real
        steps): for a batch of sequences of different lengths, padded at the end.
        Padded steps do not change the state (it is carried through), their outputs
        are 0 as after ``pad_packed_sequence``, h_n holds each sequence's state after
        its true last step, and the reverse direction of a sequence of length L starts
        at its step L. Keep padded steps out of the loss too: ``F.cross_entropy``'s
        ``ignore_index`` on padded targets, or multiply per-step losses by the mask.

        Returns (output, h_n): output (T, B, D*n) in x's layout, [fwd_t ; bwd_t] when
        bidirectional; h_n (D*num_layers, B, n), the last state of every layer and
        direction (the reverse direction's is its state at t = 1). The per-step states
        stay in ``layer.last_states``: {"l0": [a<1>, ..., a<T>], "l0_reverse": [...]},
        in time order, each (B, n) (pairs (a<t>, c<t>) for the LSTM): graph nodes
        under ``tg.unrolled()``, otherwise slices of the scan node's stacked states.
        """
        if not isinstance(x, tg.Tensor):
            x = tg.tensor(x)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise tg.ShapeError(
                f"{type(self).__name__}: input must be (T, B, input_size) "
                f"{'(batch_first: (B, T, input_size)) ' if self.batch_first else ''}"
                f"or (T, input_size) with input_size = {self.input_size}, "
                f"got shape {x.shape}")
        self.l0.check_dtype(x)
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(x.shape[0], 1, self.input_size)
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        steps, batch = x.shape[:2]
        keep = self._keep_mask(lengths, mask, steps, batch, unbatched)
        initial = iter(self._initial_states(hx, batch, x.dtype, unbatched))

        layer_input, finals, self.last_states = x, [], {}
        for layer in range(self.num_layers):
            hidden = []  # per direction, the states a<1>..a<T> stacked (T, B, n)
            for suffix in self.directions:
                cell = getattr(self, f"l{layer}{suffix}")
                formats = state_formats(self.state_names, layer if self.num_layers > 1
                                        else None, self.bidirectional, bool(suffix))
                with tg.scope(f"layer={layer}"), self._direction_scope(suffix):
                    x_proj = cell.project(layer_input)  # every step's input share at once
                    stacked, per_step = _recurrence(cell, x_proj, next(initial),
                                                    bool(suffix), keep, formats)
                states = self.last_states[f"l{layer}{suffix}"] = _Steps(stacked, per_step,
                                                                        formats)
                hidden.append(stacked[0])
                finals.append(states[0] if suffix else states[-1])  # the last one run
            layer_input = hidden[0] if len(hidden) == 1 else tg.concat(hidden, axis=2)

        output = layer_input
        if keep is not None and not keep.all():
            output = output * keep[:, :, None].astype(output.dtype)
        if unbatched:
            output = output.reshape(steps, output.shape[-1])
        elif self.batch_first:
            output = output.transpose(1, 0, 2)
        return output, self._final_state(finals, unbatched)

    @staticmethod
    def _direction_scope(suffix):
        return tg.scope("direction=reverse") if suffix else contextlib.nullcontext()

    def _keep_mask(self, lengths, mask, steps, batch, unbatched):
        """The (T, B) boolean array of real (not padded) steps, or None."""
        name = type(self).__name__
        if lengths is not None and mask is not None:
            raise ValueError(f"{name}: give lengths or mask, not both")
        if lengths is not None:
            lengths = np.asarray(_as_array(lengths))
            if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
                raise tg.ShapeError(f"{name}: lengths must be {batch} integers (one per "
                                    f"sequence), got {lengths.dtype} of shape {lengths.shape}")
            if lengths.min() < 1 or lengths.max() > steps:
                raise ValueError(f"{name}: lengths must lie in 1..{steps} (the number of "
                                 f"time steps), got values from {lengths.min()} to "
                                 f"{lengths.max()}")
            return np.arange(steps)[:, None] < lengths[None, :]
        if mask is not None:
            mask = np.asarray(_as_array(mask), dtype=bool)
            expected = ((steps,) if unbatched else (batch, steps) if self.batch_first
                        else (steps, batch))
            if mask.shape != expected:  # the user's layout, before any transpose
                raise tg.ShapeError(f"{name}: mask must have shape {expected}, "
                                    f"got {mask.shape}")
            return mask.reshape(steps, 1) if unbatched else mask.T if self.batch_first \
                else mask
        return None

    def _initial_states(self, hx, batch, dtype, unbatched):
        """One initial state per cell (in ``cells()`` order) from hx."""
        cells = [cell for _, _, cell in self.cells()]
        if hx is None:
            return [cell.initial_state(batch, dtype) for cell in cells]
        parts = _parts(hx)
        if len(parts) != len(self.state_names):
            expected = "the pair (h_0, c_0)" if len(self.state_names) == 2 else "one tensor h_0"
            raise TypeError(f"{type(self).__name__}: the initial state must be {expected}, "
                            f"got {len(parts)} tensor(s)")
        expected = (len(cells), batch, self.hidden_size)
        shaped = []
        for part in parts:
            part = part if isinstance(part, tg.Tensor) else tg.tensor(part)
            cells[0].check_dtype(part, "initial state")
            if unbatched and part.ndim == 2:
                part = part.reshape(len(cells), 1, self.hidden_size)
            if part.shape != expected:
                raise tg.ShapeError(
                    f"{type(self).__name__}: the initial state must be (D*num_layers, B, "
                    f"hidden_size) = {expected}, got shape {part.shape}")
            shaped.append(part)
        return [_rejoin([part[k] for part in shaped], hx) for k in range(len(cells))]

    def _final_state(self, finals, unbatched):
        parts = [tg.stack([_parts(s)[i] for s in finals]) for i in range(len(self.state_names))]
        if unbatched:
            parts = [p.reshape(len(finals), self.hidden_size) for p in parts]
        return _rejoin(parts, finals[0])

    # ---- PyTorch's names -------------------------------------------------------------
    def to_torch_state_dict(self):
        """{PyTorch name: ndarray copy}, e.g. 'weight_ih_l0'. For a torch module:
        ``module.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})``."""
        return {_torch_key(name): p.data.copy() for name, p in self.named_parameters()}

    def load_torch_state_dict(self, state_dict):
        """Copy weights from a ``torch.nn.RNN/LSTM/GRU`` state dict (torch tensors or
        ndarrays): a rename (weight_ih_l0 -> l0.W_ax, ...), no transpose.

        Every key and shape is checked before anything is written: a missing,
        unexpected or misshapen entry raises a KeyError or ShapeError naming it (in
        PyTorch's names) and leaves the layer unchanged.
        """
        own = {_torch_key(name): p for name, p in self.named_parameters()}
        missing = [key for key in own if key not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        if missing or unexpected:
            raise KeyError(
                f"{type(self).__name__}.load_torch_state_dict: "
                + "; ".join([f"missing key '{k}'" for k in missing]
                            + [f"unexpected key '{k}'" for k in unexpected])
                + " (check num_layers, bidirectional, bias and the layer type)")
        arrays = {key: _as_array(value) for key, value in state_dict.items()}
        wrong = [f"'{key}' has shape {arrays[key].shape}, expected {p.shape}"
                 for key, p in own.items() if arrays[key].shape != p.shape]
        if wrong:
            raise tg.ShapeError(f"{type(self).__name__}.load_torch_state_dict: "
                                + "; ".join(wrong))
        ours = {name: arrays[_torch_key(name)] for name, _ in self.named_parameters()}
        self.load_state_dict(ours)

    def summary_notes(self):
        if not self.bias:
            return []
        n = self.hidden_size
        return [f"PyTorch's layout: two bias vectors per layer and direction, b_ax "
                f"(bias_ih) and b_aa (bias_hh), where the notes' single b_a = b_ax + b_aa; "
                f"that is {self.cell_class.gates * n} more parameters per cell than the "
                f"notes count"]

    def extra_repr(self):
        options = [f"{self.input_size}, {self.hidden_size}"]
        for key, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                             ("bidirectional", False)):
            if getattr(self, key) != default:
                options.append(f"{key}={getattr(self, key)}")
        return ", ".join(options)


class RNN(_RecurrentLayer):
    """Elman layers as ``torch.nn.RNN``: a_t = g1(x_t W_ax^T + b_ax + a_prev W_aa^T + b_aa),
    g1 = tanh or relu, per layer and direction; see ``_RecurrentLayer.forward``."""

    cell_class = RNNCell

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh",
                 bias=True, batch_first=False, bidirectional=False, dtype=np.float64):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first,
                         bidirectional, dtype, nonlinearity=nonlinearity, split_bias=True)
        self.nonlinearity = nonlinearity

    def extra_repr(self):
        extra = "" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity!r}"
        return super().extra_repr() + extra


class LSTM(_RecurrentLayer):
    """LSTM layers as ``torch.nn.LSTM`` (gate order i, f, g, o; see ``LSTMCell``).
    The state is the pair (h, c): pass ``hx=(h_0, c_0)``; returns (output, (h_n, c_n))."""

    cell_class = LSTMCell
    state_names = ("a", "c")


class GRU(_RecurrentLayer):
    """GRU layers as ``torch.nn.GRU`` (gate order r, z, n, reset after the matmul;
    see ``GRUCell``)."""

    cell_class = GRUCell
