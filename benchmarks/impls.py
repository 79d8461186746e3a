"""Every implementation of the workload's step (``workload.py``), behind one interface.

``impl.build(problem)`` does the setup (models, weights copied in, inputs wrapped) and
returns ``step()``: one forward over T steps plus the backward to all five gradients,
returning ``(loss, grads)`` with ``grads`` {name: float64 ndarray} in the workload's
names and shapes. Only ``step()`` is timed.

    numpy-per-step    min-char-rnn's loop with batch rows: the reference every ratio uses
    numpy-batched     the same, with all but the recurrence batched over time
    tinygraph-unroll  rnn.ElmanRNN: the literal per-step graph of the notes
    tinygraph-layers  rnn.RNN + nn.Linear + F.cross_entropy: the fast path
    torch-rnn         torch.nn.RNN (fused C++ loop) + nn.Linear + cross_entropy
    torch-unroll      PyTorch ops step by step, as tinygraph-unroll does them

``check_gradients`` holds each one to the hand-written reference before it is timed.
"""
import importlib.util
from dataclasses import dataclass
from typing import Callable

import numpy as np

import rnn
import tinygraph as tg
from tinygraph import functional as F
from tinygraph import nn

from . import numpy_bptt
from .workload import PARAM_NAMES

GRADIENT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Implementation:
    name: str
    description: str
    build: Callable
    requires: str = None   # an optional module it cannot run without

    def available(self):
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


class GradientMismatch(AssertionError):
    """An implementation's loss or gradient differs from the hand-written reference."""


# ---- NumPy ------------------------------------------------------------------------------
def _numpy(bptt_function):
    def build(problem):
        return lambda: bptt_function(problem.params, problem.xs, problem.targets)
    return build


# ---- tinygraph ----------------------------------------------------------------------------
def _load(tensor, array):
    tensor.data = np.array(array, dtype=np.float64)


def _tinygraph_step(modules, forward, targets, grads_of):
    def step():
        for module in modules:
            module.zero_grad()
        loss = F.cross_entropy(forward(), targets, reduction="sum")
        loss.backward()
        return loss.item(), {name: tensor.grad for name, tensor in grads_of.items()}
    return step


def _build_tinygraph_unroll(problem):
    m, n, p = problem.size.input, problem.size.hidden, problem.size.output
    model = rnn.ElmanRNN(m, n, p)
    for name in PARAM_NAMES:
        _load(getattr(model, name), problem.params[name])
    xs = tg.tensor(problem.xs)
    # The loss needs only the logits; stacking the states too would copy T*B*n numbers.
    return _tinygraph_step([model], lambda: model(xs, stack_states=False)[0], problem.targets,
                           {name: getattr(model, name) for name in PARAM_NAMES})


def _build_tinygraph_layers(problem):
    m, n, p = problem.size.input, problem.size.hidden, problem.size.output
    layer, head = rnn.RNN(m, n), nn.Linear(n, p)
    # PyTorch's layout has two biases; b_ax = b_a and b_aa = 0 is the same model, and
    # each of them gets dL/db_a.
    params = problem.params
    layer.load_torch_state_dict({"weight_ih_l0": params["W_ax"], "weight_hh_l0": params["W_aa"],
                                 "bias_ih_l0": params["b_a"], "bias_hh_l0": np.zeros(n)})
    _load(head.weight, params["W_ya"])
    _load(head.bias, params["b_y"])
    xs = tg.tensor(problem.xs)
    cell = layer.l0
    return _tinygraph_step([layer, head], lambda: head(layer(xs)[0]), problem.targets,
                           {"W_ax": cell.W_ax, "W_aa": cell.W_aa, "b_a": cell.b_ax,
                            "W_ya": head.weight, "b_y": head.bias})


# ---- PyTorch --------------------------------------------------------------------------------
def _torch_step(torch, parameters, forward, targets, grads_of):
    flat_targets = torch.from_numpy(targets.reshape(-1))

    def step():
        for parameter in parameters:
            parameter.grad = None
        logits = forward()
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), flat_targets, reduction="sum")
        loss.backward()
        return loss.item(), {name: t.grad.numpy() for name, t in grads_of.items()}
    return step


def _build_torch_rnn(problem):
    import torch
    m, n, p = problem.size.input, problem.size.hidden, problem.size.output
    layer = torch.nn.RNN(m, n, dtype=torch.float64)
    head = torch.nn.Linear(n, p, dtype=torch.float64)
    params = {name: torch.from_numpy(value) for name, value in problem.params.items()}
    with torch.no_grad():
        layer.weight_ih_l0.copy_(params["W_ax"])
        layer.weight_hh_l0.copy_(params["W_aa"])
        layer.bias_ih_l0.copy_(params["b_a"])
        layer.bias_hh_l0.zero_()
        head.weight.copy_(params["W_ya"])
        head.bias.copy_(params["b_y"])
    xs = torch.from_numpy(problem.xs)
    return _torch_step(torch, list(layer.parameters()) + list(head.parameters()),
                       lambda: head(layer(xs)[0]), problem.targets,
                       {"W_ax": layer.weight_ih_l0, "W_aa": layer.weight_hh_l0,
                        "b_a": layer.bias_ih_l0, "W_ya": head.weight, "b_y": head.bias})


def _build_torch_unroll(problem):
    import torch
    weights = {name: torch.tensor(value, requires_grad=True)
               for name, value in problem.params.items()}
    W_ax, W_aa, b_a, W_ya, b_y = (weights[name] for name in PARAM_NAMES)
    xs = torch.from_numpy(problem.xs)

    def forward():
        a_t = torch.zeros(xs.shape[1], W_aa.shape[0], dtype=torch.float64)
        logits = []
        for x_t in xs:
            a_t = torch.tanh(x_t @ W_ax.T + a_t @ W_aa.T + b_a)
            logits.append(a_t @ W_ya.T + b_y)
        return torch.stack(logits)

    return _torch_step(torch, list(weights.values()), forward, problem.targets, weights)


IMPLEMENTATIONS = [
    Implementation("numpy-per-step", "hand-written NumPy BPTT, one step at a time "
                   "(the reference)", _numpy(numpy_bptt.per_step)),
    Implementation("numpy-batched", "hand-written NumPy BPTT, all but the recurrence "
                   "batched over time", _numpy(numpy_bptt.batched)),
    Implementation("tinygraph-unroll", "rnn.ElmanRNN: the notes' per-step graph "
                   "(teaching unroll)", _build_tinygraph_unroll),
    Implementation("tinygraph-layers", "rnn.RNN + nn.Linear + F.cross_entropy "
                   "(fast path)", _build_tinygraph_layers),
    Implementation("torch-rnn", "torch.nn.RNN (fused C++) + nn.Linear",
                   _build_torch_rnn, requires="torch"),
    Implementation("torch-unroll", "PyTorch ops step by step", _build_torch_unroll,
                   requires="torch"),
]
BY_NAME = {impl.name: impl for impl in IMPLEMENTATIONS}
REFERENCE = BY_NAME["numpy-per-step"]


def relative_errors(result, reference):
    """{'loss' and each parameter name: max |got - expected| / max |expected|}."""
    (loss, grads), (ref_loss, ref_grads) = result, reference
    errors = {"loss": abs(loss - ref_loss) / max(abs(ref_loss), np.finfo(float).tiny)}
    for name in PARAM_NAMES:
        expected = ref_grads[name]
        scale = max(np.abs(expected).max(), np.finfo(float).tiny)
        errors[name] = float(np.abs(np.asarray(grads[name]) - expected).max() / scale)
    return errors


def check_gradients(impl_name, result, reference, tolerance=GRADIENT_TOLERANCE):
    """Raise ``GradientMismatch`` unless ``result`` = (loss, grads) matches ``reference``
    to ``tolerance`` relative to the largest reference entry; returns the errors."""
    errors = relative_errors(result, reference)
    bad = {name: error for name, error in errors.items() if not error <= tolerance}
    if bad:
        listed = ", ".join(f"{name} {error:.3g}" for name, error in bad.items())
        raise GradientMismatch(f"{impl_name} differs from the hand-written NumPy BPTT "
                               f"beyond {tolerance:g} (relative): {listed}")
    return errors
