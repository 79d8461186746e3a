"""See backward happen: one self-contained HTML page that steps through a real backward
pass of the engine.

    loss = ((x @ W) + b).tanh().sum()
    page = tg.viz.explore(loss)             # runs loss.backward(), as the engine does it
    page.save("backward.html")              # or tg.viz.explore(loss, "backward.html")
    page                                    # in Jupyter: the page, inline

``explore`` runs ``root.backward()`` itself while an engine observer (``engine.observing``,
the core's one hook) writes down each node the walk visits, in the walk's own order, and
what that node's VJP sent to each parent. So the page replays what happened, not a
model of it: at step k it shows the node visited, the gradient that arrived there (the
sum of what its consumers sent), what it sends to each parent, and the running sum at
every leaf that requires grad, which after the last step is that leaf's ``.grad``
(printed at ``SUM_DIGITS`` significant digits; the rest of the numbers at
``DISPLAY_DIGITS``, to keep the page small). Leaves accumulate as in any backward: a
``.grad`` already there is where a running sum starts.

Forward values are those the graph still holds before backward frees it: leaves, the
root, the outputs ops keep for their VJPs (``tanh``, ``exp``) and the inputs their
consumers keep (``matmul``). Run the forward pass inside
``with tg.viz.keep_values() as values:`` and pass ``values=values`` to show every op's
output (that keeps one array per node alive while ``values`` is).

**The document.** The page is a template (``explorer.html``, package data: script and
style inline, no network, works from ``file://``) plus one JSON document, and it
renders whatever the document holds::

    {"version": 1, "title": str, "direction": "TB" | "LR",
     "digits": {"display": 4, "sums": 8},
     "groups": [{"id", "label", "parent": group id or null, "size"}],   # scopes
     "fold": [group ids folded when the page opens],
     "nodes": [{"id", "label", "kind": op|parameter|input|output, "shape", "dtype",
                "group": innermost group id or null, "parents": [node ids]}],
     "runs": [{"label",
               "values": [summary or null, one per node],  # forward values
               "steps": [{"node", "arrived": summary,
                          "sends": [[parent id, summary or null], ...]}],  # engine order
               "sums": [{"leaf": node id, "start": summary or null,  # .grad before
                         "after": [[step, summary], ...]}]}],  # after that step
     "panels": [{"kind": "table" | "strip" | "grid", "title", ...}],
     "start": the run shown when the page opens (optional; 0)}

A summary is ``{"shape", "norm", "min", "max", "heat"?, "rows"?}``; ``heat`` holds
the values (row-major, ``rows`` rows of the last axis, at most 32 x 32) of arrays small
enough to draw as a heatmap. Node ids are positions in ``nodes``, parents first
(``viz.walk``'s order); step k (1-based) is ``steps[k - 1]``, and step 0 is before
backward. Non-finite numbers are the strings "NaN", "Infinity", "-Infinity".

**Extending it** (the rnn explorer builds on this): ``document(root)`` returns the dict
before it becomes a page, and ``Explorer(document)`` makes the page of any document. A
drawing that knows more about its graph adds to the document and leaves the page alone:
more ``runs`` (the same graph computed with other numbers; the page shows a slider
over them, e.g. W_aa scaled to several spectral radii), ``panels`` the page draws
under the graph and fills in as the steps pass (``"table"``: rows of cells, each
``[step, value]``, shown once the replay reaches that step: a shared weight's
Σ_t dL/dW^(t) table, ``{"kind": "table", "title", "columns", "rows": [{"label",
"cells": [[step, value], ...]}]}``; ``"strip"``: bars on a log scale, one per entry of
``"values": [[step, value], ...]`` with ``"labels"``, each drawn once its step is
reached: ‖dL/da<t>‖ for t = 1..T; ``"grid"``: ``"values"``, rows of numbers under
``"rows"`` and ``"columns"`` labels, coloured on a log scale and shown from the start:
the connectivity ‖∂L<t>/∂x<s>‖), its own ``direction`` ("LR": time left to right),
its own ``fold`` and the run it opens on (``start``). A panel may hold, under ``"runs"``, one dict per run whose keys
replace the panel's own while that run is shown. A new kind of panel is one function in
the page's ``PANELS``.
"""
import html
import json
import math
import pathlib

import numpy as np

from .engine import GraphFreedError, Op, accumulate, observing, unbroadcast
from .tensor import Tensor

DISPLAY_DIGITS = 4   # significant digits of the numbers the page shows
SUM_DIGITS = 8       # ... and of each leaf's last running sum, which is its .grad
HEAT_MAX = 32        # arrays up to 32 x 32 get a heatmap (1-D up to 32 entries)
FOLD_ABOVE = 150     # graphs with more nodes open with every top-level scope folded
TEMPLATE = pathlib.Path(__file__).with_name("explorer.html")


def explore(root, path=None, grad=None, retain_graph=False, values=None, title=None):
    """Run ``root.backward(grad, retain_graph)`` and return the page that replays it
    (an ``Explorer``: shown inline in Jupyter; ``.save(path)``). With ``path``, the
    page is written there too. ``values``: what ``keep_values()`` kept. See the module
    docstring for what the page shows."""
    if path is not None and not pathlib.Path(path).parent.is_dir():  # before backward runs
        raise FileNotFoundError(f"explore: cannot write {str(path)!r}: the folder "
                                f"{str(pathlib.Path(path).parent)!r} does not exist")
    page = Explorer(document(root, grad, retain_graph, values, title))
    if path is not None:
        page.save(path)
    return page


class Explorer:
    """An explorer page: ``document`` (the JSON-ready dict) and ``html()``, the page."""

    def __init__(self, document):
        self.document = document

    def html(self):
        data = json.dumps(self.document, separators=(",", ":"), allow_nan=False)
        data = data.replace("<", "\\u003c")  # so that no "</script>" ends the block early
        return TEMPLATE.read_text(encoding="utf-8").replace("__TINYGRAPH_DOCUMENT__", data)

    def save(self, path):
        """Write the page to ``path`` (one file, nothing else needed); returns the path."""
        path = pathlib.Path(path)
        path.write_text(self.html(), encoding="utf-8")
        return path

    def _repr_html_(self):
        return (f'<iframe srcdoc="{html.escape(self.html(), quote=True)}" '
                f'style="width:100%;height:640px;border:1px solid #ccc"></iframe>')


# ---- what backward did ------------------------------------------------------------------
class _Steps:
    """An engine observer: each node backward visits, and what it sent to each parent."""

    def __init__(self):
        self.visits = []  # [(node, [(parent, grad or None), ...])] in the walk's order

    def forward(self, op, inputs, options, out):
        pass

    def backward(self, node, grads):
        sends = []
        for parent, grad in zip(node.parents, grads):
            if grad is not None:
                grad = _array(grad)
                shape = parent.out_shape if isinstance(parent, Op) else parent.shape
                grad = unbroadcast(grad, shape, node)  # as the engine sums it back
            sends.append((parent, grad))
        self.visits.append((node, sends))


def _array(grad):
    """A sent gradient as an ndarray: lazy sums (``Scatter``, ``RowSum``) evaluated now,
    before the engine adds to them in place."""
    if isinstance(grad, Tensor):
        grad = grad._data
    if isinstance(grad, (np.ndarray, np.generic)):
        return np.asarray(grad)
    return np.asarray(grad.evaluate())


class _Values(dict):
    """An engine observer keeping each op's output array: ``keep_values()``."""

    def forward(self, op, inputs, options, out):
        self[op] = out._data

    def backward(self, node, grads):
        pass


def keep_values():
    """Inside the block, keep the output of every op run, for ``explore(..., values=)``
    to show every node's forward value, not only those the graph keeps for backward::

        with tg.viz.keep_values() as values:
            loss = model(xs)
        tg.viz.explore(loss, "backward.html", values=values)
    """
    return observing(_Values())


def forward_values(order, root, kept=None):
    """``{vertex: array}``: the forward values the graph holds before backward frees it,
    and those ``kept`` by ``keep_values()``."""
    values = {}
    for vertex in order:
        if isinstance(vertex, Op):
            if kept and vertex in kept:
                values[vertex] = kept[vertex]
            out, *inputs = vertex.saved or (None,)
            if out is not None:
                values[vertex] = out
            for parent, array in zip(vertex.parents, inputs):
                if array is not None and isinstance(parent, Op):
                    values.setdefault(parent, array)
        else:
            values[vertex] = vertex._data
    values[root._node or root] = root._data
    return values


# ---- the document -----------------------------------------------------------------------
def document(root, grad=None, retain_graph=False, values=None, title=None):
    """Run ``root.backward(grad, retain_graph)`` and describe the graph and the pass as
    the JSON-ready dict the page renders (the module docstring gives its layout)."""
    from .viz import kind_of, scopes, vertex_of, walk  # (viz imports this module)
    if not isinstance(root, Tensor):
        raise TypeError(f"explore() needs the tensor to run backward from, not "
                        f"{type(root).__name__}")
    order, _ = walk([root])
    ids = {vertex: i for i, vertex in enumerate(order)}
    forward = forward_values(order, root, values)
    starts = {leaf: None if leaf.grad is None else np.array(_array(leaf.grad))
              for leaf in order if not isinstance(leaf, Op) and leaf.requires_grad}
    steps = _Steps()
    try:
        with observing(steps):
            root.backward(grad, retain_graph=retain_graph)
    except GraphFreedError as error:
        raise GraphFreedError(f"explore() runs the backward pass itself: call it instead "
                              f"of loss.backward(), not after it. {error}") from None
    groups, group_of = _groups(order, scopes(order))
    rootv = vertex_of(root)
    nodes = [{"id": ids[v], "label": _label(v), "kind": kind_of(v, {rootv}),
              "shape": list(_shape(v)), "dtype": str(_dtype(v)), "group": group_of[v],
              "parents": [ids[p] for p in v.parents] if isinstance(v, Op) else []}
             for v in order]
    seed = np.ones(root.shape) if grad is None else np.asarray(getattr(grad, "_data", grad))
    run = {"label": "backward()", "values": [summary(forward.get(v)) for v in order],
           **_replay(steps.visits, ids, rootv, seed, starts)}
    top = [g["id"] for g in groups if g["parent"] is None]
    return {"version": 1, "title": title or f"backward from {_label(rootv)}",
            "direction": "TB", "digits": {"display": DISPLAY_DIGITS, "sums": SUM_DIGITS},
            "groups": groups, "fold": top if len(nodes) > FOLD_ABOVE else [],
            "nodes": nodes, "runs": [run], "panels": []}


def _replay(visits, ids, rootv, seed, starts):
    """The steps (the gradient arrived at each node: what its consumers sent) and each
    leaf's running sum after every step that added to it: its ``.grad`` from before,
    plus what arrived so far (added up first, as the engine does); the last one, which
    is the new ``.grad``, at ``SUM_DIGITS``, the others at ``DISPLAY_DIGITS``."""
    arrived, out = {rootv: seed}, []
    sums = {leaf: {"leaf": ids[leaf], "start": summary(g, SUM_DIGITS), "after": []}
            for leaf, g in starts.items()}
    if rootv in sums:  # backward from a leaf: the seed is all there is, before any step
        sums[rootv]["after"].append([0, accumulate(starts[rootv], seed)])
    for k, (node, sends) in enumerate(visits):
        step = {"node": ids[node], "arrived": summary(arrived.pop(node, None)), "sends": []}
        for parent, g in sends:
            step["sends"].append([ids[parent], None if g is None else summary(g)])
            if g is not None and (parent in sums or isinstance(parent, Op)):
                arrived[parent] = accumulate(arrived.get(parent), g)
            if g is not None and parent in sums:
                sums[parent]["after"].append([k + 1, accumulate(starts[parent],
                                                                arrived[parent])])
        out.append(step)
    for s in sums.values():  # the last sum is .grad: it gets the digits to compare with
        s["after"] = [[k, summary(g, SUM_DIGITS if i == len(s["after"]) - 1
                              else DISPLAY_DIGITS)] for i, (k, g) in enumerate(s["after"])]
    return {"steps": out, "sums": list(sums.values())}


def _groups(order, scope):
    """Groups, one per scope path (ids in order of first appearance), and each
    vertex's innermost group id (None outside every scope)."""
    paths, groups, group_of = {}, [], {}
    for vertex in order:
        path = tuple(scope[vertex])
        for depth in range(1, len(path) + 1):
            prefix = path[:depth]
            if prefix not in paths:
                paths[prefix] = len(groups)
                groups.append({"id": len(groups), "label": str(prefix[-1]),
                               "parent": paths[prefix[:-1]] if depth > 1 else None,
                               "size": 0})
            groups[paths[prefix]]["size"] += 1
        group_of[vertex] = paths[path] if path else None
    return groups, group_of


def summary(array, digits=DISPLAY_DIGITS):
    """What the page shows of an array: shape, norm, min, max, and its values (``heat``)
    when it fits a 32 x 32 heatmap; numbers rounded to ``digits`` significant digits."""
    if array is None:
        return None
    array = np.asarray(array, dtype=np.float64)
    if not array.size:
        return {"shape": list(array.shape), "norm": 0.0, "min": None, "max": None}
    rows = array.reshape(-1, array.shape[-1]) if array.ndim > 1 else array.reshape(1, -1)
    heat = rows.shape[0] <= HEAT_MAX and rows.shape[1] <= HEAT_MAX  # (N-d: rows of the last axis)
    numbers = rounded(np.concatenate([[np.linalg.norm(array), array.min(), array.max()],
                                       rows.ravel() if heat else []]), digits)
    out = {"shape": list(array.shape), "norm": numbers[0], "min": numbers[1],
           "max": numbers[2]}
    if heat:
        out["heat"], out["rows"] = numbers[3:], rows.shape[0]
    return out


def rounded(values, digits):
    """The entries of a 1-D array at ``digits`` significant digits, as a list; inf and
    nan as "Infinity", "-Infinity", "NaN" (JSON has no such numbers; the page reads
    the strings back with Number()). The sums' digits are Python's own formatting
    (the page prints them to compare with .grad); fewer are rounded in bulk."""
    size = np.abs(values[values != 0])
    if digits > DISPLAY_DIGITS or not (np.isfinite(values).all() and
                                       ((size > 1e-250) & (size < 1e250)).all()):
        return [float(f"{v:.{digits}g}") if math.isfinite(v) else
                "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"
                for v in values.tolist()]
    with np.errstate(divide="ignore"):
        exponent = np.floor(np.log10(np.abs(values)))
    shift = np.where(values == 0, 0, digits - 1 - exponent)
    up, down = 10.0 ** np.maximum(shift, 0), 10.0 ** np.maximum(-shift, 0)
    return (np.round(values * up / down) / up * down).tolist()  # (powers of ten: exact)


def _label(vertex):
    """A node's title: the tensor's name (``name = op`` for an op's output), the op,
    an unnamed one-element constant's value, or "(unnamed)"."""
    if isinstance(vertex, Op):
        tensor = vertex.output()
        name = vertex.out_name if tensor is None else tensor.name
        return vertex.name if name is None else f"{name} = {vertex.name}"
    if vertex.name is not None:
        return str(vertex.name)
    if vertex.size == 1 and not vertex.requires_grad:
        return format(float(vertex._data.ravel()[0]), ".4g")
    return "(unnamed)"


def _shape(vertex):
    return vertex.out_shape if isinstance(vertex, Op) else vertex.shape


def _dtype(vertex):
    return vertex.out_dtype if isinstance(vertex, Op) else vertex.dtype
