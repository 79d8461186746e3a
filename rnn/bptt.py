"""Backpropagation through time derived by hand, in plain NumPy, as a reference.

The Elman model of the notes, with a batch of B rows (x<t> is a row of ``xs[t]``):

    z<t> = W_ax x<t> + W_aa a<t-1> + b_a        a<t> = g1(z<t>),  a<0> = 0
    o<t> = W_ya a<t> + b_y                       y^<t> = softmax(o<t>)
    L    = sum over t and batch of -log y^<t>[target]

Backward, from t = T down to 1 (dz<T+1> = 0):

    dL/da<t> = W_ya^T dL/do<t> + W_aa^T dz<t+1>        (the output path + the future)
    dz<t>    = dL/da<t> * g1'(z<t>)
    dL/dW_ax += dz<t> x<t>^T     dL/dW_aa += dz<t> a<t-1>^T    dL/db_a += dz<t>
    dL/dW_ya += dL/do<t> a<t>^T  dL/db_y  += dL/do<t>

Each ``+=`` is one time step's contribution; ``bptt`` returns them one by one as well
as summed. rnn's models get the same numbers from ``loss.backward()`` on the unrolled
graph, with no backward code of their own: the tests assert that, and ``compare``
names the first step where a model's contributions part from these. Everything runs
in float64 and nothing is clipped, as a gradient check must.
"""
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

PARAM_NAMES = ("W_ax", "W_aa", "b_a", "W_ya", "b_y")

# g1 and its derivative g1'(z), written with a = g1(z) where that is cheaper.
_NONLINEARITIES = {
    "tanh": (np.tanh, lambda z, a: 1.0 - a * a),
    "relu": (lambda z: np.maximum(z, 0.0), lambda z, a: (z > 0).astype(z.dtype)),
}

_TIME_LABEL = re.compile(r"t=(\d+)$")


@dataclass
class BPTTResult:
    """What the hand-derived BPTT computed, for a sequence of T steps and B rows.

    ``grads[name]``: dL/d(name), the sum over t of ``per_step[name][t-1]``.
    ``per_step[name]``: (T, *shape of name), step t's contribution at index t-1.
    ``dL_da``: (T, B, n), the total dL/da<t> (output path plus recurrent path).
    ``dL_da0``: (B, n), dL/da<0>, for a learned or carried-over initial state.
    ``loss``: the summed cross-entropy, or None when dL/do<t> was given instead.
    ``states`` (T, B, n) and ``logits`` (T, B, p): the forward pass.
    """

    grads: dict
    per_step: dict
    dL_da: np.ndarray
    dL_da0: np.ndarray
    loss: float | None
    states: np.ndarray
    logits: np.ndarray


@dataclass(frozen=True)
class Mismatch:
    """The first time step, going backward from T, where a model's contribution to a
    parameter's gradient differs from the reference's; ``t`` is 1-based."""

    t: int
    name: str
    max_error: float

    def __str__(self):
        return (f"t={self.t}: step {self.t}'s contribution to dL/d{self.name} differs from "
                f"the hand-derived BPTT by up to {self.max_error:.3g}, while every later "
                f"step agrees. Check what dL/da<{self.t}> receives: W_ya^T dL/do<{self.t}> "
                f"plus W_aa^T dz<{self.t + 1}> from the step after it.")


def weights(model):
    """The five Elman weights as float64 arrays, from a model with attributes
    ``W_ax, W_aa, b_a, W_ya, b_y`` (tensors or arrays) or from a dict of them."""
    params = {}
    for name in PARAM_NAMES:
        try:
            value = model[name] if isinstance(model, Mapping) else getattr(model, name)
        except (KeyError, AttributeError):
            raise KeyError(f"bptt: the model has no weight '{name}'; it needs all of "
                           f"{', '.join(PARAM_NAMES)}") from None
        if value is None:
            raise ValueError(f"bptt: the model's {name} is None; the reference covers "
                             f"the notes' model, which has both biases b_a and b_y")
        value = value.numpy() if hasattr(value, "numpy") else value
        params[name] = np.asarray(value, dtype=np.float64)
    n, m = params["W_ax"].shape
    p = params["W_ya"].shape[0]
    expected = {"W_ax": (n, m), "W_aa": (n, n), "b_a": (n,), "W_ya": (p, n), "b_y": (p,)}
    for name, shape in expected.items():
        if params[name].shape != shape:
            raise ValueError(
                f"bptt: {name} has shape {params[name].shape} but W_ax {(n, m)} and "
                f"W_ya {(p, n)} make it {shape}")
    return params


def _nonlinearity(model, nonlinearity):
    if nonlinearity is None:
        nonlinearity = getattr(model, "nonlinearity", "tanh")
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"bptt: nonlinearity must be one of {sorted(_NONLINEARITIES)}, "
                         f"not {nonlinearity!r}")
    return nonlinearity


def forward(model, xs, a0=None, nonlinearity=None):
    """The forward pass: returns z<t> (T, B, n), a<t> (T, B, n) and o<t> (T, B, p).

    ``xs`` is (T, B, m); ``a0`` is (B, n) and defaults to zeros.
    """
    params = weights(model)
    g1 = _NONLINEARITIES[_nonlinearity(model, nonlinearity)][0]
    xs = np.asarray(xs, dtype=np.float64)
    n, m = params["W_ax"].shape
    if xs.ndim != 3 or xs.shape[2] != m:
        raise ValueError(f"bptt: xs must be (T, B, {m}) for W_ax of shape {(n, m)}, "
                         f"not {xs.shape}")
    T, B, _ = xs.shape
    a_prev = np.zeros((B, n)) if a0 is None else np.asarray(a0, dtype=np.float64)
    if a_prev.shape != (B, n):
        raise ValueError(f"bptt: a0 must be (B, n) = {(B, n)}, not {a_prev.shape}")
    zs, states = np.empty((T, B, n)), np.empty((T, B, n))
    for t in range(T):
        zs[t] = xs[t] @ params["W_ax"].T + a_prev @ params["W_aa"].T + params["b_a"]
        states[t] = a_prev = g1(zs[t])
    logits = states @ params["W_ya"].T + params["b_y"]
    return zs, states, logits


def cross_entropy(logits, targets):
    """Softmax cross-entropy summed over steps and batch, and its dL/do<t>.

    ``logits`` (T, B, p), integer ``targets`` (T, B). dL/do<t> = y^<t> - onehot(y<t>).
    """
    targets = np.asarray(targets)
    if targets.shape != logits.shape[:2] or targets.dtype.kind not in "iu":
        raise ValueError(f"bptt: targets must be integers of shape {logits.shape[:2]}, "
                         f"not {targets.dtype} {targets.shape}")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    loss = -np.take_along_axis(log_probs, targets[..., None], axis=-1).sum()
    return loss, np.exp(log_probs) - np.eye(logits.shape[-1])[targets]


def bptt(model, xs, targets=None, dL_do=None, a0=None, nonlinearity=None):
    """dL/d(every weight) by the hand-derived BPTT equations of this module's docstring.

    ``model``: an ElmanRNN or anything with the five weights (see ``weights``);
    ``xs`` (T, B, m). The loss is either the summed softmax cross-entropy on integer
    ``targets`` (T, B), or any loss whose dL/do<t> is given as ``dL_do`` (T, B, p).
    ``nonlinearity`` ("tanh" or "relu") defaults to the model's own.
    """
    if (targets is None) == (dL_do is None):
        raise ValueError("bptt: give exactly one of targets (T, B) and dL_do (T, B, p)")
    params = weights(model)
    nonlinearity = _nonlinearity(model, nonlinearity)
    g1_prime = _NONLINEARITIES[nonlinearity][1]
    zs, states, logits = forward(params, xs, a0, nonlinearity)
    xs = np.asarray(xs, dtype=np.float64)
    T, B, n = states.shape
    loss = None
    if targets is not None:
        loss, dL_do = cross_entropy(logits, targets)
    dL_do = np.asarray(dL_do, dtype=np.float64)
    if dL_do.shape != logits.shape:
        raise ValueError(f"bptt: dL_do must have the logits' shape {logits.shape}, "
                         f"not {dL_do.shape}")

    a_before = np.concatenate([np.zeros((1, B, n)) if a0 is None else
                               np.asarray(a0, dtype=np.float64)[None], states[:-1]])
    per_step = {name: np.empty((T,) + params[name].shape) for name in PARAM_NAMES}
    dL_da = np.empty((T, B, n))
    dz_next = np.zeros((B, n))
    for t in reversed(range(T)):
        dL_da[t] = dL_do[t] @ params["W_ya"] + dz_next @ params["W_aa"]
        dz = dL_da[t] * g1_prime(zs[t], states[t])
        per_step["W_ax"][t] = dz.T @ xs[t]
        per_step["W_aa"][t] = dz.T @ a_before[t]
        per_step["b_a"][t] = dz.sum(axis=0)
        per_step["W_ya"][t] = dL_do[t].T @ states[t]
        per_step["b_y"][t] = dL_do[t].sum(axis=0)
        dz_next = dz
    grads = {name: steps.sum(axis=0) for name, steps in per_step.items()}
    return BPTTResult(grads=grads, per_step=per_step, dL_da=dL_da,
                      dL_da0=dz_next @ params["W_aa"], loss=loss, states=states,
                      logits=logits)


def time_step(node):
    """The 1-based time step named by a "t=<k>" label in ``node.scope``, or None."""
    for label in reversed(getattr(node, "scope", ()) or ()):
        match = _TIME_LABEL.match(str(label))
        if match:
            return int(match.group(1))
    return None


def contributions_per_step(contributions, params, T):
    """Group what ``tg.record_contributions()`` recorded into per-step arrays.

    ``contributions``: {leaf tensor: [(node, grad), ...]}; ``params``: a model or a
    dict giving the five weight tensors by name. Returns {name: (T, *shape)}, each
    step's contributions summed (a weight used twice in one step sends two). A weight
    that received nothing (it was detached, or does not require grad) gets zeros.
    """
    per_step = {}
    for name in PARAM_NAMES:
        leaf = params[name] if isinstance(params, Mapping) else getattr(params, name)
        steps = np.zeros((T,) + tuple(leaf.shape))
        received = next((pairs for key, pairs in contributions.items() if key is leaf), [])
        for node, grad in received:
            t = time_step(node)
            if t is None or not 1 <= t <= T:
                raise ValueError(
                    f"bptt: a contribution to {name} came from '{node.name}' with scope "
                    f"{node.scope}, which names no time step t=1..{T}; per-step "
                    f"comparison needs every use of {name} inside a 't=<k>' scope")
            steps[t - 1] += grad
        per_step[name] = steps
    return per_step


def compare(candidate, reference, params=None, atol=1e-8, rtol=1e-6):
    """The first step, going backward from t = T, where ``candidate``'s per-step
    contributions differ from ``reference``'s (a ``BPTTResult``), or None.

    ``candidate`` is another ``BPTTResult``, a dict {name: (T, ...) array}, or the
    dict of ``tg.record_contributions()`` together with ``params`` (the model, or a
    dict of its weight tensors). Backward order is the order a bug spreads in: a term
    missing from dL/da<k> spoils step k and, through dz<k>, every step before it, so
    the step named is the one where the error entered. Entries differ when
    |got - expected| > atol + rtol |expected|.
    """
    T = next(iter(reference.per_step.values())).shape[0]
    if isinstance(candidate, BPTTResult):
        per_step = candidate.per_step
    elif all(isinstance(key, str) for key in candidate):
        per_step = candidate
    else:
        if params is None:
            raise ValueError("bptt.compare: recorded contributions are keyed by tensor; "
                             "pass params= (the model) to say which tensor is which weight")
        per_step = contributions_per_step(candidate, params, T)
    for name in PARAM_NAMES:
        got, expected = np.shape(per_step[name]), reference.per_step[name].shape
        if got != expected:
            raise ValueError(f"bptt.compare: per-step {name} has shape {got}, the "
                             f"reference {expected}")
    for t in range(T, 0, -1):
        for name in PARAM_NAMES:
            expected = reference.per_step[name][t - 1]
            error = np.abs(np.asarray(per_step[name][t - 1]) - expected)
            if np.any(error > atol + rtol * np.abs(expected)):
                return Mismatch(t=t, name=name, max_error=float(error.max()))
    return None
