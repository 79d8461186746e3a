"""Draw any recorded tinygraph computation as a Graphviz figure.

    import numpy as np, tinygraph as tg
    x = tg.tensor(np.random.randn(3, 4), name="x")
    W = tg.tensor(np.random.randn(4, 5), requires_grad=True, name="W")
    b = tg.tensor(np.zeros(5), requires_grad=True, name="b")
    loss = ((x @ W) + b).tanh().sum()
    loss.name = "loss"
    dot = tg.viz.to_dot(loss)                 # graphviz.Digraph; dot.source is the DOT text
    loss.backward()
    tg.viz.render(tg.viz.to_dot(loss, grads=True), "loss.svg")      # or .png, .pdf, .dot
    tg.viz.draw(loss, view="backward")        # in Jupyter: the backward order, numbered

What is drawn is the graph the engine actually recorded, walked from the roots
without recursion (a 100,000-step unroll draws as well as it backpropagates):

* **One node per op application**, standing for the op *and* the tensor it made:
  it shows the op, the output's name (when it has one) and shape, and the dtype when
  it is not float64. Every tensor is therefore exactly one node, however many ops
  consume it; a tensor used k times says "used ×k" and has k out-edges.
* **Leaves** are the tensors no recorded op made: parameters (leaves that require
  grad, and any ``nn.Parameter``) and other leaves (inputs like ``x<t>``, constants;
  an unnamed one-element constant shows its value). The **outputs** are the roots
  passed in. The four kinds are coloured apart.
* **Scopes** (``with tg.scope("t=1"):``) become nested clusters. A leaf sits in the
  innermost scope that all of its consumers share, so ``x<t>`` lands in its step while
  a weight shared by every step stays outside them.
* ``grads=True``, after ``backward()``: each node carries the norm of its gradient,
  and nodes and edges are coloured on a log scale fixed for the figure (``LogScale``);
  the number stays in the label, so colour is never the only cue. A node whose
  gradient was not computed or not kept says "grad not computed" rather than showing
  zeros (a non-leaf keeps its gradient only after ``retain_grad()``). To see every
  node's gradient, build the graph inside ``with tg.viz.keep_grads():``.
* ``view="backward"``: the same layout (same nodes, same positions) with the edges
  reversed as gradient edges, and each node numbered in the order ``backward`` visits
  it (``engine.toposort``, root first).

Node ids come from the walk's order, never from ``id()``, and parents keep their
input order, so the same program gives byte-identical DOT every time. Every user
string (names, op names, scope labels) is escaped for Graphviz's HTML-like labels.

``import tinygraph`` does not need the ``graphviz`` Python package; building a
figure does, and without it raises ModuleNotFoundError saying ``pip install
graphviz``. ``to_dot`` needs no Graphviz binary. ``render``, ``pipe`` and Jupyter's
display of ``draw(...)`` need ``dot``; without it they raise ``GraphvizNotFound``
(``render`` writes the ``.dot`` file anyway) and Jupyter shows the DOT source and how
to install Graphviz instead of a traceback.

``explore(loss, "backward.html")`` (from ``explore.py``, which needs no graphviz) is
the interactive counterpart: one self-contained page that replays the backward pass
step by step.

The pieces below the top-level functions (``walk``, ``grad_of``, ``escape``,
``table_label``, ``LogScale``, ``STYLES``, ``require_graphviz``) are public so that
other drawings, such as ``rnn.viz``'s unrolled RNN, build on them instead of copying
them.
"""
import html
import math
import pathlib
import re

import numpy as np

from . import engine
from .engine import Op, toposort
from .nn import Parameter
from .tensor import Tensor

INSTALL_HINT = (
    "Rendering needs the Graphviz 'dot' executable, which was not found on PATH. "
    "Install Graphviz with one of: apt-get install graphviz (Debian/Ubuntu), "
    "brew install graphviz (macOS), conda install -c conda-forge graphviz (conda); "
    "the pip package 'graphviz' alone is only the Python binding. "
    "Meanwhile the DOT source can be pasted into any Graphviz viewer.")


PACKAGE_HINT = (
    "Drawing needs the graphviz Python package, which is not installed: "
    "pip install graphviz (rendering to SVG, PNG or PDF also needs the Graphviz "
    "'dot' executable, e.g. apt-get install graphviz).")


def require_graphviz():
    """The ``graphviz`` module, imported only once a figure is asked for, so that
    ``import tinygraph`` works without it; ModuleNotFoundError names the fix."""
    try:
        import graphviz
    except ImportError:
        raise ModuleNotFoundError(PACKAGE_HINT, name="graphviz") from None
    return graphviz


class GraphvizNotFound(RuntimeError):
    """Rendering was asked for but the Graphviz ``dot`` executable is not installed."""


# Kinds of drawn node: title-row fill and border colour. Ops are grey so the tensors
# that the user named and owns (parameters, inputs, outputs) stand out.
STYLES = {
    "parameter": {"fill": "#cfe2f3", "border": "#3d85c6"},
    "input": {"fill": "#fff2cc", "border": "#bf9000"},
    "op": {"fill": "#eeeeee", "border": "#666666"},
    "output": {"fill": "#d9ead3", "border": "#38761d"},
}
FORWARD_EDGE_COLOR = "#555555"
BACKWARD_EDGE_COLOR = "#cc0000"
NOT_COMPUTED = "grad not computed"


# ---- the recorded graph ---------------------------------------------------------------
class keep_grads:
    """Inside the block every tensor an op makes that requires grad keeps its gradient
    (``retain_grad()``), so that ``to_dot(loss, grads=True)`` after ``loss.backward()``
    shows dL/dv at every node, as a chain-rule lesson wants. The tensors stay alive
    with the object the block returns (``.tensors``)."""

    def __init__(self):
        self.tensors = []

    def __enter__(self):
        engine.observers.append(self)
        return self

    def __exit__(self, *exception):
        engine.observers.remove(self)

    def forward(self, op, inputs, options, out):
        if out.requires_grad:
            out.retain_grad()
            self.tensors.append(out)

    def backward(self, node, grads):
        pass


def walk(roots):
    """Every vertex the roots depend on, parents before children, and their use counts.

    A vertex is an ``Op`` node (standing for the tensor it made) or a leaf tensor;
    leaves that do not require grad are included. ``roots`` are tensors. Returns
    ``(order, uses)``: ``order`` is a list, deterministic because parents are visited
    in input order (iterative depth-first search, no recursion); ``uses[v]`` counts
    the edges leaving ``v`` to drawn consumers (``a * a`` uses ``a`` twice).
    """
    order, seen = [], set()
    for root in roots:
        stack = [(vertex_of(root), False)]
        while stack:
            vertex, parents_done = stack.pop()
            if parents_done:
                order.append(vertex)
                continue
            if vertex in seen:
                continue
            seen.add(vertex)
            stack.append((vertex, True))
            if isinstance(vertex, Op):
                stack.extend((parent, False) for parent in reversed(vertex.parents)
                             if parent not in seen)
    uses = dict.fromkeys(order, 0)
    for vertex in order:
        if isinstance(vertex, Op):
            for parent in vertex.parents:
                uses[parent] += 1
    return order, uses


def vertex_of(tensor):
    """The graph vertex that stands for ``tensor``: its op node, or itself for a leaf."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tinygraph.viz draws tensors, not {type(tensor).__name__}")
    return tensor if tensor.op is None else tensor.op


def tensor_of(vertex):
    """The tensor a vertex stands for: a leaf itself; for an op node its output, if
    retain_grad() registered it (else None: the node's out_name/out_shape describe it)."""
    return vertex.output() if isinstance(vertex, Op) else vertex


def grad_of(vertex):
    """The gradient kept for a vertex (``tensor.grad``), or None if none was computed
    or kept: a non-leaf keeps its gradient only after ``retain_grad()``."""
    tensor = tensor_of(vertex)
    return None if tensor is None else tensor.grad


def is_parameter(leaf):
    """A leaf that requires grad, or an ``nn.Parameter`` (even a frozen one)."""
    return leaf.requires_grad or isinstance(leaf, Parameter)


def kind_of(vertex, roots):
    """'output' (a vertex in the set ``roots``), 'op', 'parameter' or 'input' (any
    other leaf): the key into STYLES."""
    if vertex in roots:
        return "output"
    if isinstance(vertex, Op):
        return "op"
    return "parameter" if is_parameter(vertex) else "input"


# ---- labels -----------------------------------------------------------------------------
# Characters XML 1.0 forbids even as references (Graphviz parses HTML labels as XML):
# control characters other than tab/newline/CR, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NEWLINE = re.compile("\r\n|\r|\n")
# Graphviz 2.43 refuses an HTML label longer than 16384 bytes; escaping can make a
# character six ("&quot;"), and a label may hold two or three user strings.
MAX_TEXT = 500


def escape(text):
    """``text`` (any object, via ``str``) as safe content for an HTML-like label.

    ``<``, ``>``, ``&`` and quotes become entities, line breaks become ``<BR/>``,
    characters XML cannot hold at all are shown as ``\\x`` and their hex code
    point (``\\x01``, ``\\xd800``); backslashes, braces and ``|`` need nothing,
    since HTML labels are neither escStrings nor records. Graphviz drops tabs from
    label text, so they become spaces. Text longer than ``MAX_TEXT`` characters is
    cut to end in "…". An empty string becomes a no-break space: Graphviz rejects
    empty ``<B></B>`` and ``<FONT></FONT>``.
    """
    text = str(text)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT - 1] + "…"
    text = _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text).replace("\t", " ")
    if not text:
        return "&#160;"
    return "<BR/>".join(html.escape(line, quote=True) for line in _NEWLINE.split(text))


def table_label(rows, border="#666666", border_width=1, dashed=False):
    """An HTML-like label: a one-column table, one row per ``(markup, fill)`` pair.

    ``markup`` is already-escaped HTML (build it with ``escape``); ``fill`` is a
    colour or None. A row ``(markup, fill, port)`` names its cell, so that an edge
    can start or end at that row (``"node:port"``). Use it on a node with
    ``shape="plain"``.
    """
    style = "rounded,dashed" if dashed else "rounded"
    cells = "".join(
        f'<TR><TD{f" PORT={_quote(port[0])}" if port else ""}'
        f'{f" BGCOLOR={_quote(fill)}" if fill else ""}>{markup}</TD></TR>'
        for markup, fill, *port in rows)
    return (f'<<TABLE STYLE="{style}" BORDER="{border_width}" CELLBORDER="0" '
            f'CELLSPACING="0" CELLPADDING="3" COLOR={_quote(border)}>{cells}</TABLE>>')


def _quote(attribute):
    return f'"{html.escape(str(attribute), quote=True)}"'


def small(markup, color=None):
    """Escaped ``markup`` in the smaller font of secondary label rows."""
    color = f" COLOR={_quote(color)}" if color else ""
    return f'<FONT POINT-SIZE="9"{color}>{markup}</FONT>'


def describe(vertex):
    """``(title, shape)`` markup for a vertex, escaped: the title is the tensor's name
    (``name = op`` for an op's output), else the op, else an unnamed constant's value."""
    tensor = tensor_of(vertex)
    name = vertex.out_name if tensor is None else tensor.name
    if isinstance(vertex, Op):
        title = (f"<B>{escape(vertex.name)}</B>" if name is None
                 else f"<B>{escape(name)}</B> = {escape(vertex.name)}")
    elif name is not None:
        title = f"<B>{escape(name)}</B>"
    elif tensor.size == 1 and not tensor.requires_grad:
        title = f"<B>{escape(format(tensor.item(), '.4g'))}</B>"
    else:
        title = "<B>(unnamed)</B>"
    shape, dtype = ((vertex.out_shape, vertex.out_dtype) if tensor is None
                    else (tensor.shape, tensor.dtype))
    dtype = "" if dtype == np.float64 else f" {dtype}"
    return title, escape(f"{shape}{dtype}")


def is_differentiable(vertex):
    """Whether a gradient can reach the vertex: every op node, and leaves that require
    grad. Other leaves (inputs, constants) never get one and show no grad row."""
    return isinstance(vertex, Op) or vertex.requires_grad


class LogScale:
    """Gradient norms to colour buckets 1..n on a log10 scale fixed for one figure.

    ``lo`` and ``hi`` default to the smallest and largest log10 of the positive
    ``values``; pass them explicitly to compare several figures (animation frames).
    The smallest norm gets bucket 1 (lightest), the largest bucket n; a zero norm
    gets bucket 1, and when all norms are equal they all get bucket n. An inf or
    nan norm (an overflowed, exploding gradient) gets bucket n and is left out of
    the range, so that the finite norms keep their spread.
    """

    def __init__(self, values, scheme="reds", n=9, lo=None, hi=None):
        logs = [math.log10(v) for v in values
                if v is not None and v > 0 and math.isfinite(v)]
        self.scheme, self.n = scheme, n
        self.lo = lo if lo is not None else min(logs, default=0.0)
        self.hi = hi if hi is not None else max(logs, default=0.0)

    def bucket(self, value):
        if value <= 0:
            return 1
        if self.hi <= self.lo or not math.isfinite(value):
            return self.n
        position = (math.log10(value) - self.lo) / (self.hi - self.lo)
        return min(self.n, max(1, 1 + round(position * (self.n - 1))))

    def color(self, value):
        """A Graphviz colour such as ``/reds9/7``."""
        return f"/{self.scheme}{self.n}/{self.bucket(value)}"

    def font_color(self, value):
        """Black on light buckets, white on the darkest third."""
        return "white" if self.bucket(value) > 2 * self.n // 3 else "black"

    def edge_color(self, value):
        """As ``color``, but never lighter than bucket 3: fainter reds vanish on white."""
        return f"/{self.scheme}{self.n}/{max(3, self.bucket(value))}"

    def penwidth(self, value):
        """1 for the lightest bucket up to 3 for the darkest."""
        return 1 + 2 * (self.bucket(value) - 1) / (self.n - 1)


def grad_norm(vertex):
    """The Frobenius norm of a vertex's kept gradient, or None (see ``grad_of``)."""
    grad = grad_of(vertex)
    return None if grad is None else float(np.linalg.norm(grad))


def grad_row(vertex, norm, scale):
    """The label row showing a vertex's gradient ``norm`` on its ``scale`` colour, or,
    for None, that no gradient was computed (never zeros): a ``(markup, fill)`` pair."""
    if norm is not None:
        text = escape(f"‖grad‖ = {norm:.3e}")
        return f'<FONT COLOR="{scale.font_color(norm)}">{text}</FONT>', scale.color(norm)
    hint = "" if not isinstance(vertex, Op) else "<BR/>" + small(
        escape("call retain_grad() to keep it"), "#666666")
    return f"<I>{escape(NOT_COMPUTED)}</I>{hint}", None


def vertex_label(vertex, kind, uses=1, scale=None, norm=None, view="forward", step=None,
                 title=None):
    """The HTML-like label ``to_dot`` gives a vertex (a table, for ``shape="plain"``).

    kind: a key of STYLES (``kind_of``). uses: out-edges, shown as "used ×k" when k > 1.
    scale, norm: a LogScale and the vertex's ``grad_norm`` (None: not computed) to
        annotate the label with; no grad row when ``scale`` is None.
    view, step: in the "backward" view, the position backward visits the vertex at
        (``backward_steps``), or None when backward never reaches it.
    title: escaped markup to show in place of ``describe``'s title, for a drawing
        that knows a better name (an unnamed input that is x<t>, say).
    """
    style = STYLES[kind]
    described, shape = describe(vertex)
    heading = described if title is None else title
    if view == "backward" and step is not None:
        heading = f"{step}. {heading}"
    rows = [(heading, style["fill"])]
    if not isinstance(vertex, Op):
        named = vertex.name is not None or title is not None
        role = kind if kind != "input" or named else "constant"
        rows.append((small(role), None))
    rows.append((small(shape), None))
    if uses > 1:
        rows.append((small(f"used ×{uses}"), None))
    if view == "backward" and step is None:
        rows.append((small(escape("not visited by backward"), "#666666"), None))
    missing = False
    if scale is not None and is_differentiable(vertex):
        rows.append(grad_row(vertex, norm, scale))
        missing = norm is None
    return table_label(rows, style["border"], 2 if kind == "output" else 1, dashed=missing)


def edge_attributes(norm, scale):
    """Edge colour and width from the gradient norm of the tensor the edge carries
    (None: not computed, or no ``scale``: default style)."""
    if norm is None or scale is None:
        return {}
    return {"color": scale.edge_color(norm), "penwidth": f"{scale.penwidth(norm):.2f}"}


# ---- the figure -------------------------------------------------------------------------
def to_dot(*roots, grads=False, view="forward", rankdir="TB", graph_name="tinygraph"):
    """The recorded graph behind ``roots`` (tensors) as a ``graphviz.Digraph``.

    grads: annotate each node with its gradient norm and colour nodes and edges by it
        (log scale, ``LogScale``); call after ``backward()``.
    view: "forward" (edges from inputs to consumers) or "backward" (the same layout;
        gradient edges pointing from consumers back to inputs, and each node numbered
        in the order backward from the first root visits it, then from the next root).
    rankdir: Graphviz layout direction, "TB" (top to bottom) or "LR".

    Node ids are ``n0, n1, ...`` in ``walk`` order; clusters are ``cluster_1, ...``
    in order of first appearance.
    """
    graphviz = require_graphviz()
    if not roots:
        raise ValueError("to_dot() needs at least one tensor to draw")
    if view not in ("forward", "backward"):
        raise ValueError(f"view must be 'forward' or 'backward', not {view!r}")
    root_vertices = {vertex_of(root) for root in roots}
    order, uses = walk(roots)
    ids = {vertex: f"n{i}" for i, vertex in enumerate(order)}
    norms = {v: grad_norm(v) for v in order if is_differentiable(v)} if grads else {}
    scale = LogScale(norms.values()) if grads else None
    steps = backward_steps(roots) if view == "backward" else {}

    dot = graphviz.Digraph(graph_name)
    dot.attr(rankdir=rankdir)
    dot.attr("node", shape="plain", fontname="Helvetica", fontsize="11")
    if view == "backward":
        dot.attr("edge", arrowsize="0.7", color=BACKWARD_EDGE_COLOR, dir="back")
    else:
        dot.attr("edge", arrowsize="0.7", color=FORWARD_EDGE_COLOR)

    scope = scopes(order)
    clusters = _clusters(dot, scope.values())
    for vertex in order:
        label = vertex_label(vertex, kind_of(vertex, root_vertices), uses[vertex], scale,
                             norms.get(vertex), view, steps.get(vertex))
        clusters[scope[vertex]].node(ids[vertex], label=label)
    _attach_clusters(dot, clusters)
    for vertex in order:
        if isinstance(vertex, Op):
            for parent in vertex.parents:
                dot.edge(ids[parent], ids[vertex], **edge_attributes(norms.get(parent), scale))
    return dot


def to_dot_backward(*roots, **options):
    """``to_dot(*roots, view="backward", ...)``: gradient edges and backward order."""
    return to_dot(*roots, view="backward", **options)


def backward_steps(roots):
    """``{vertex: n}``: the 1-based position at which backward visits each vertex,
    from the first root, then the vertices only later roots reach. Leaves that do not
    require grad are never visited."""
    steps = {}
    for root in roots:
        if root.requires_grad:
            for vertex in toposort(vertex_of(root)):
                steps.setdefault(vertex, len(steps) + 1)
    return steps


def scopes(order):
    """``{vertex: scope tuple}`` for the walk's ``order``: an op's own ``node.scope``;
    a leaf's, the innermost scope all its consumers share (so ``x<t>`` sits in step
    t while a weight used by every step sits outside them)."""
    scope = {}
    for vertex in order:
        if isinstance(vertex, Op):
            scope[vertex] = vertex.scope
            for parent in vertex.parents:
                if not isinstance(parent, Op):
                    shared = scope.get(parent, vertex.scope)
                    scope[parent] = _common_prefix(shared, vertex.scope)
    return {vertex: scope.get(vertex, ()) for vertex in order}


def _clusters(dot, paths):
    """One Digraph per scope path in ``paths``, keyed by the path; ``()`` is ``dot``.

    Cluster ids count scope paths in order of first appearance, so they are stable.
    """
    graphviz = require_graphviz()
    clusters = {(): dot}
    for path in paths:
        for depth in range(1, len(path) + 1):
            prefix = path[:depth]
            if prefix not in clusters:
                cluster = graphviz.Digraph(f"cluster_{len(clusters)}")
                cluster.attr(label=f"<{escape(prefix[-1])}>", style="rounded,dashed",
                             color="#999999", fontname="Helvetica", fontsize="11")
                clusters[prefix] = cluster
    return clusters


def _common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _attach_clusters(dot, clusters):
    """Put each cluster inside its parent scope's, innermost first (no recursion)."""
    for path in sorted(clusters, key=len, reverse=True):
        if path:
            clusters[path[:-1]].subgraph(clusters[path])


# ---- rendering --------------------------------------------------------------------------
def draw(*roots, **options):
    """``Figure(to_dot(*roots, **options))``: what to return as a notebook cell's value."""
    return Figure(to_dot(*roots, **options))


class Figure:
    """A ``graphviz.Digraph`` that displays in Jupyter even without Graphviz installed.

    Shows the SVG when ``dot`` is there; otherwise the DOT source and how to install
    Graphviz, instead of a traceback.
    """

    def __init__(self, digraph):
        self.digraph = digraph

    @property
    def source(self):
        return self.digraph.source

    def render(self, path, format=None):
        return render(self.digraph, path, format)

    def pipe(self, format="svg"):
        return pipe(self.digraph, format)

    def _repr_mimebundle_(self, include=None, exclude=None, **_):
        try:
            return {"image/svg+xml": self.digraph.pipe(format="svg", encoding="utf-8")}
        except require_graphviz().ExecutableNotFound:
            return {"text/plain": f"{self.source}\n{INSTALL_HINT}",
                    "text/markdown": f"{INSTALL_HINT}\n\n```dot\n{self.source}```\n"}


def pipe(graph, format="svg"):
    """The figure rendered in ``format`` ("svg", "png", "pdf", ...), as bytes.

    ``graph`` is a Digraph, a Figure or DOT source text. Raises GraphvizNotFound
    when the ``dot`` executable is missing.
    """
    graphviz = require_graphviz()
    if format not in graphviz.FORMATS:
        raise ValueError(f"unknown Graphviz output format {format!r}; "
                         f"use 'svg', 'png' or 'pdf'")
    try:
        return graphviz.Source(_source(graph)).pipe(format=format)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFound(
            f"cannot render to {format}: {INSTALL_HINT} (the DOT text is the "
            f"graph's .source)") from None


def render(graph, path, format=None):
    """Write the figure to ``path``; the format comes from the suffix unless given.

    ".dot" or ".gv" writes the DOT source, which needs no Graphviz binary; ".svg",
    ".png", ".pdf" (any Graphviz format) render through ``dot``. Without ``dot`` the
    source is written next to ``path`` with the suffix ".dot" and GraphvizNotFound
    says where. Returns the path written.
    """
    path = pathlib.Path(path)
    format = (format or path.suffix.lstrip(".")).lower()
    if not format:
        raise ValueError(f"cannot tell the format of {str(path)!r}: give it a suffix "
                         f"(.svg, .png, .pdf, .dot) or pass format=")
    source = _source(graph)
    if format in ("dot", "gv"):
        path.write_text(source, encoding="utf-8")
        return path
    try:
        data = pipe(source, format)
    except GraphvizNotFound:
        dot_path = path.with_suffix(".dot")
        dot_path.write_text(source, encoding="utf-8")
        raise GraphvizNotFound(
            f"cannot render {path}: {INSTALL_HINT} The DOT source was written to "
            f"{dot_path}; render it later with: dot -T{format} {dot_path} -o {path}"
        ) from None
    path.write_bytes(data)
    return path


def _source(graph):
    if isinstance(graph, str):
        return graph
    graphviz = require_graphviz()
    if isinstance(graph, (Figure, graphviz.Source, graphviz.Digraph, graphviz.Graph)):
        return graph.source
    raise TypeError(f"expected a graphviz Digraph, a viz.Figure or DOT text, "
                    f"not {type(graph).__name__}")


# The interactive page (explore.py reads this module's walk and scopes; no graphviz there).
from .explore import Explorer, explore, keep_values  # noqa: E402
