"""The explorer of an unrolled network: ``tg.viz.explore``'s page, told what BPTT is.

    run = rnn.viz.trace(model, xs, targets)      # L = Σ_t L<t>
    page = rnn.viz.explore(run, "explore.html")  # or: python -m rnn explore --out explore.html
    page                                          # in Jupyter: the page, inline

The page is the generic explorer's (``tinygraph/explore.py`` describes its document),
run on the model again with the inputs of ``run``; this module adds to the document:

* **Time left to right** (``direction`` "LR"); a graph of more than ``FOLD_ABOVE``
  nodes opens with every time step folded into one box.
* **A Σ_t table for each parameter**: row t is step t's contribution dL/dW^(t) (its
  norm and its first ``ENTRIES`` entries), shown once the backward pass has sent it
  (the step at which the last node of time step t sent to W); the last row is
  dL/dW = Σ_t dL/dW^(t), which is ``W.grad``. A row "outside the steps" holds what
  came from ops on every step at once that cannot be split by step (zeros: no row).
* **The gradient through time**: one strip per state sequence, ‖dL/da<t>‖ for
  t = 1..T (and ‖dL/dc<t>‖ for an LSTM), each bar drawn once backward has visited
  a<t>, that is once all of dL/da<t> = (from o<t>) + (from a<t+1>) has arrived.
* **A slider over runs**: the model as given, and the same inputs with the recurrent
  weights W_aa scaled to each spectral radius in ``radii``; ρ(W_aa) = max |λ(W_aa)|,
  for a gated cell's (k n, n) stack of gate blocks the largest over its blocks, and
  each run scales every W_aa by one factor. With a<t> = tanh(W_ax x<t> + W_aa a<t-1>
  + b_a), dL/da<t-1> = W_aa^T diag(1 - a<t>²) dL/da<t> + (from o<t-1>), so ρ < 1
  lets the gradient vanish back in time and ρ > 1 lets it grow.
* **Connectivity** (Distill's "memorization in RNNs"): ‖∂L<t>/∂x<s>‖ for every t and
  s, one ``tg.grad`` of each L<t> with respect to the inputs; 0 for s > t unless
  the model reads the sequence backward too. With a ``loss_fn`` there is no L<t>,
  and the one row is ‖∂L/∂x<s>‖.

Every number comes from the engine's own backward passes (``loss.backward()`` and
``tg.grad``); nothing here differentiates by hand.
"""
import pathlib
import re

import numpy as np

import tinygraph as tg
from tinygraph import explore as ex
from tinygraph.engine import Op

from .gradients import Trace, _as_input, _loss, trace
from .graph import step_key

RADII = (0.5, 0.75, 1.0, 1.25, 1.5)  # the spectral radii of W_aa the slider offers
ENTRIES = 16      # a Σ_t table shows each contribution's first 16 entries
FOLD_ABOVE = ex.FOLD_ABOVE
_TIME_LABEL = re.compile(r"t=\d+$")


def explore(run, path=None, radii=RADII, title=None):
    """The explorer page of ``run`` (from ``rnn.viz.trace``), an ``Explorer`` (shown
    inline in Jupyter; ``.save(path)``); with ``path``, written there too. ``radii``:
    the spectral radii of W_aa the slider offers besides the model's own (``()``:
    none). The model's ``.grad`` are afterwards those of the model as given."""
    if path is not None and not pathlib.Path(path).parent.is_dir():
        raise FileNotFoundError(f"explore: cannot write {str(path)!r}: the folder "
                                f"{str(pathlib.Path(path).parent)!r} does not exist")
    page = ex.Explorer(document(run, radii, title))
    if path is not None:
        page.save(path)
    return page


def document(run, radii=RADII, title=None):
    """The explorer's document of ``run``, with the Σ_t tables, the strips, the runs at
    each radius and the connectivity grid (the module docstring says what they show)."""
    if not isinstance(run, Trace) or run.inputs is None:
        raise TypeError(f"rnn.viz.explore needs a run from rnn.viz.trace(model, xs, "
                        f"targets), not {type(run).__name__}")
    radii = [float(r) for r in radii]
    if any(not np.isfinite(r) or r < 0 for r in radii):
        raise ValueError(f"rnn.viz.explore: radii must be finite and >= 0, got {radii}")
    recurrent = recurrent_weights(run.model)
    own = max((spectral_radius(W.data) for _, W in recurrent), default=None)
    if radii and not recurrent:
        radii = []  # (a model without W_aa: the slider has nothing to scale)
    if radii and not own:
        raise ValueError("rnn.viz.explore: W_aa has spectral radius 0, so it cannot be "
                         "scaled to another; pass radii=() to show the model as it is")
    originals = [W.data for _, W in recurrent]
    scaled = []
    try:
        for r in radii:
            for (_, W), original in zip(recurrent, originals):
                W.data = original * (r / own)
            scaled.append((r, f"ρ(W_aa) = {r:g}", _run(run)))
    finally:
        for (_, W), original in zip(recurrent, originals):
            W.data = original
    mine = _run(run)  # last: the model keeps the .grad of its own weights
    label = "the model as given" if own is None else f"ρ(W_aa) = {own:.3g}, the model's own"
    runs = sorted(scaled + [(own or 0.0, label, mine)], key=lambda r: r[0])
    doc = mine["doc"]
    doc["runs"] = [dict(r["doc"]["runs"][0], label=label, radius=radius)
                   for radius, label, r in runs]
    doc["start"] = [r for _, _, r in runs].index(mine)
    doc["direction"] = "LR"
    doc["title"] = title or (f"{type(run.model).__name__}: backward through "
                             f"T = {max(mine['trace'].graph.times, default=0)} steps")
    groups = doc["groups"]
    steps = [g["id"] for g in groups if _TIME_LABEL.match(g["label"])
             and not any(_TIME_LABEL.match(groups[a]["label"]) for a in _above(g, groups))]
    doc["fold"] = steps if len(doc["nodes"]) > FOLD_ABOVE else []
    doc["panels"] = _panels([r for _, _, r in runs], doc["start"])
    return doc


def recurrent_weights(model):
    """[(name, W_aa)]: the model's recurrent weights, every parameter named W_aa."""
    if not hasattr(model, "named_parameters"):
        return []
    return [(name, W) for name, W in model.named_parameters()
            if name.rsplit(".", 1)[-1] == "W_aa"]


def spectral_radius(W_aa):
    """max |λ| of the (n, n) W_aa; of a gated cell's (k n, n) stack of gate blocks, the
    largest over its blocks."""
    n = W_aa.shape[1]
    if W_aa.ndim != 2 or W_aa.shape[0] % max(n, 1):
        raise ValueError(f"spectral_radius: W_aa must be (k n, n), got {W_aa.shape}")
    blocks = W_aa.reshape(-1, n, n)
    return float(max((np.abs(np.linalg.eigvals(block)).max() for block in blocks),
                     default=0.0)) if n else 0.0


def connectivity(model, xs, targets=None, loss_fn=None, a0=None):
    """(T_L, T) ‖∂L<t>/∂x<s>‖ (the Frobenius norm over the batch and the input), one
    ``tg.grad`` of each step's loss L<t> (from ``targets`` as in ``trace``) with
    respect to the inputs; with ``loss_fn`` the one row ‖∂L/∂x<s>‖."""
    x = tg.tensor(np.array(_as_input(xs).data), requires_grad=True)
    output = model(x) if a0 is None else model(x, a0)
    first = output if isinstance(output, tg.Tensor) else output[0]
    T = x.shape[0]
    if loss_fn is not None:
        losses = [_loss(first, None, loss_fn)]
    else:
        targets = None if targets is None else np.asarray(getattr(targets, "data", targets))
        losses = [_loss(first[t:t + 1], None if targets is None else targets[t:t + 1], None)
                  for t in range(first.shape[0])]
    rows = []
    for L_t in losses:
        (g,) = tg.grad(L_t, [x], retain_graph=True, allow_unused=True)
        g = np.zeros(x.shape) if g is None else g.data
        rows.append(np.sqrt((g.reshape(T, -1) ** 2).sum(axis=1)))
    return np.array(rows).reshape(len(losses), T)


# ---- one run ------------------------------------------------------------------------
def _run(run):
    """The model run again on ``run``'s inputs: the explorer's document of its backward
    pass, the new trace, its step-by-step gradients and its connectivity."""
    docs = []
    fresh = trace(run.model, **run.inputs, backward=lambda loss: docs.append(ex.document(loss)))
    return {"doc": docs[0], "trace": fresh, "gradients": fresh.gradients(),
            "connectivity": connectivity(run.model, **run.inputs)}


def _above(group, groups):
    while group["parent"] is not None:
        yield group["parent"]
        group = groups[group["parent"]]


def _numbers(values, digits=ex.DISPLAY_DIGITS):
    return ex.rounded(np.asarray(values, dtype=np.float64).ravel(), digits)


def _arrivals(r):
    """{parameter name: ({t: the backward step at which step t's contribution had all
    arrived}, the step of the last addition to its .grad)}."""
    order, names = r["trace"].graph.order, r["trace"].names()
    out = {}
    for k, step in enumerate(r["doc"]["runs"][0]["steps"], start=1):
        key = step_key(order[step["node"]].scope) if isinstance(order[step["node"]], Op) else None
        for parent, sent in step["sends"]:
            leaf = order[parent]
            if sent is None or isinstance(leaf, Op) or id(leaf) not in names:
                continue
            times, _ = out.setdefault(names[id(leaf)], ({}, 0))
            if key is not None:
                times[key[1]] = k
            out[names[id(leaf)]] = (times, k)
    return out


def _table(name, g, arrivals, T):
    """One parameter's Σ_t table for one run: rows t = 1..T, the outside part, Σ_t."""
    contributions, total = g.contributions[name], g.grads[name]
    times, last = arrivals.get(name, ({}, 0))
    rows = [{"label": f"t={t}", "cells": [[times.get(t, last), v] for v in _numbers(
        [np.linalg.norm(c), *c.ravel()[:ENTRIES]])]} for t, c in enumerate(contributions, 1)]
    if np.any(g.outside[name]):
        rest = g.outside[name]
        rows.append({"label": "outside the steps", "cells": [[last, v] for v in _numbers(
            [np.linalg.norm(rest), *rest.ravel()[:ENTRIES]])]})
    if total is not None:
        rows.append({"label": "Σ_t = .grad", "cells": [[last, v] for v in _numbers(
            [np.linalg.norm(total), *total.ravel()[:ENTRIES]], ex.SUM_DIGITS)]})
    return {"rows": rows}


def _entry_names(name, shape):
    short = name.rsplit(".", 1)[-1]
    return [f"{short}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)][:ENTRIES]


def _strips(r, T):
    """{series: {"labels", "values"}}: ‖dL/da<t>‖ for t = 1..T, each at the step that
    visits a<t> (0 for a state backward never reaches)."""
    graph, norms = r["trace"].graph, r["gradients"].state_norms
    visit = {step["node"]: k for k, step in enumerate(r["doc"]["runs"][0]["steps"], start=1)}
    ids = {v: i for i, v in enumerate(graph.order)}
    when = {}
    for (lane, t), states in graph.states.items():
        for state in states:
            when[graph.series(state, lane), t] = visit.get(ids[state], 0)
    return {series: {"labels": [series.replace("<t>", f"<{t}>") for t in range(1, T + 1)],
                     "values": [[when.get((series, t), 0), v]
                                for t, v in enumerate(_numbers(values), start=1)]}
            for series, values in norms.items()}


def _panels(runs, start):
    """The panels, each with one dict per run ("runs") replacing its numbers, and
    those of run ``start`` as its own."""
    first = runs[start]
    T = max(first["trace"].graph.times, default=0)
    arrivals = [_arrivals(r) for r in runs]
    panels = []
    for series in first["gradients"].state_norms:
        per_run = [_strips(r, T)[series] for r in runs]
        panels.append({"kind": "strip", "title": f"‖dL/d{series}‖, t = 1..{T} (log scale)",
                       **per_run[start], "runs": per_run})
    labels = (["L"] if first["trace"].inputs["loss_fn"] is not None else
              [f"L<{t}>" for t in range(1, first["connectivity"].shape[0] + 1)])
    panels.append({"kind": "grid", "title": "connectivity ‖∂L<t>/∂x<s>‖ (rows t, "
                   "columns s; log colour)", "rows": labels,
                   "columns": [f"x<{s}>" for s in range(1, T + 1)],
                   "values": [_numbers(row) for row in first["connectivity"]],
                   "runs": [{"values": [_numbers(row) for row in r["connectivity"]]}
                            for r in runs]})
    grads = first["gradients"].grads
    for name in sorted(grads, key=list(first["trace"].names().values()).index):
        total = grads[name]
        if total is None:
            continue
        size = int(np.prod(total.shape))
        per_run = [_table(name, r["gradients"], a, T) for r, a in zip(runs, arrivals)]
        panels.append({"kind": "table", "title": f"dL/d{name} = Σ_t dL/d{name}^(t)"
                       + (f" (norm and the first {ENTRIES} of {size:,} entries)"
                          if size > ENTRIES else ""),
                       "columns": ["‖·‖", *_entry_names(name, total.shape)],
                       **per_run[start], "runs": per_run})
    return panels
