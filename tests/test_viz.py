"""tinygraph.viz: the DOT drawn for recorded graphs, asserted on its structure."""
import pathlib
import re
import shutil
import subprocess
import sys

import graphviz
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygraph as tg
from tinygraph import engine, viz

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
ROOT = pathlib.Path(__file__).resolve().parents[1]


# ---- reading DOT back ----------------------------------------------------------------
NODE = re.compile(r"^\s*(n\d+) \[label=<(.*)>\]$", re.M)
EDGE = re.compile(r"^\s*(n\d+) -> (n\d+)(?: \[(.*)\])?$", re.M)


def nodes(dot):
    """{node id: label markup}."""
    return dict(NODE.findall(dot.source))


def edges(dot):
    """[(tail, head, attributes)] in source order."""
    return EDGE.findall(dot.source)


def node_named(dot, title):
    """The id of the one node whose bold title is ``title``."""
    found = [i for i, label in nodes(dot).items() if f"<B>{title}</B>" in label]
    assert len(found) == 1, (title, found)
    return found[0]


def cluster_members(dot):
    """{node id: tuple of enclosing cluster labels, outermost first}."""
    members, stack = {}, []
    for line in dot.source.splitlines():
        if re.match(r"\s*subgraph cluster_\d+ \{", line):
            stack.append(None)
        elif stack and stack[-1] is None and re.search(r"\blabel=<", line):
            stack[-1] = re.search(r"\blabel=<(.*?)>(?: |$)", line).group(1)
        elif line.strip() == "}" and stack:
            stack.pop()
        elif NODE.match(line):
            members[NODE.match(line).group(1)] = tuple(stack)
    return members


def small_net(dtype=np.float64):
    """loss = tanh(x @ W + b).sum() with x (3, 4), W (4, 5), b (5,)."""
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((3, 4)), name="x", dtype=dtype)
    W = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True, name="W", dtype=dtype)
    b = tg.tensor(rng.standard_normal(5), requires_grad=True, name="b", dtype=dtype)
    z = (x @ W) + b
    z.name = "z"
    loss = z.tanh().sum()
    loss.name = "loss"
    return x, W, b, z, loss


# ---- structure ---------------------------------------------------------------------------
def test_small_graph_has_one_node_per_leaf_and_op_and_one_edge_per_input():
    *_, loss = small_net()
    dot = viz.to_dot(loss)
    assert isinstance(dot, graphviz.Digraph)
    assert len(nodes(dot)) == 7  # x, W, b, matmul, add, tanh, sum
    tail_head = [(t, h) for t, h, _ in edges(dot)]
    assert len(tail_head) == 6
    mm = node_named(dot, "matmul")
    assert (node_named(dot, "x"), mm) in tail_head
    assert (node_named(dot, "W"), mm) in tail_head
    assert (mm, node_named(dot, "z")) in tail_head


def test_leaf_that_does_not_require_grad_is_drawn_as_input():
    *_, loss = small_net()
    label = nodes(viz.to_dot(loss))[node_named(viz.to_dot(loss), "x")]
    assert ">input<" in label
    assert viz.STYLES["input"]["fill"] in label


def test_parameters_inputs_ops_and_outputs_are_styled_apart():
    *_, loss = small_net()
    dot = viz.to_dot(loss)
    labels = nodes(dot)
    expected = {"W": "parameter", "x": "input", "tanh": "op", "loss": "output"}
    for title, kind in expected.items():
        assert viz.STYLES[kind]["fill"] in labels[node_named(dot, title)], title
    assert len({viz.STYLES[k]["fill"] for k in expected.values()}) == 4


def test_tensor_used_twice_is_one_node_marked_used_x2_with_two_out_edges():
    x = tg.tensor(np.ones((2, 3)), requires_grad=True, name="x")
    h = x * 3.0
    h.name = "h"
    loss = (h + h.tanh()).sum()
    dot = viz.to_dot(loss)
    h_id = node_named(dot, "h")
    assert "used ×2" in nodes(dot)[h_id]
    assert [t for t, _, _ in edges(dot)].count(h_id) == 2
    assert sum("used ×" in label for label in nodes(dot).values()) == 1


def test_tensor_used_twice_by_one_op_has_two_parallel_edges():
    a = tg.tensor(np.ones(3), requires_grad=True, name="a")
    loss = (a * a).sum()
    dot = viz.to_dot(loss)
    a_id = node_named(dot, "a")
    assert "used ×2" in nodes(dot)[a_id]
    assert [(t, h) for t, h, _ in edges(dot)].count((a_id, node_named(dot, "mul"))) == 2


def test_labels_show_names_ops_and_shapes():
    x, W, b, z, loss = small_net()
    dot = viz.to_dot(loss)
    labels = nodes(dot)
    assert "(4, 5)" in labels[node_named(dot, "W")]
    assert "(5,)" in labels[node_named(dot, "b")]
    assert "<B>z</B> = add" in labels[node_named(dot, "z")]
    assert "(3, 5)" in labels[node_named(dot, "z")]
    assert "()" in labels[node_named(dot, "loss")]


def test_dtype_shown_for_float32_and_not_for_float64():
    *_, loss32 = small_net(np.float32)
    *_, loss64 = small_net(np.float64)
    assert "(4, 5) float32" in viz.to_dot(loss32).source
    assert "float" not in viz.to_dot(loss64).source


def test_unnamed_scalar_constant_shows_its_value():
    x = tg.tensor(np.ones(2), requires_grad=True, name="x")
    dot = viz.to_dot((x * 2.5).sum())
    assert ">constant<" in nodes(dot)[node_named(dot, "2.5")]


def test_several_roots_share_their_common_subgraph():
    x = tg.tensor(np.ones(2), requires_grad=True, name="x")
    h = x.tanh()
    y1, y2 = h.sum(), (h * 2.0).sum()
    dot = viz.to_dot(y1, y2)
    assert len(nodes(dot)) == 6  # x, tanh, sum, 2.0, mul, sum
    outputs = [i for i, label in nodes(dot).items() if viz.STYLES["output"]["fill"] in label]
    assert len(outputs) == 2


def test_nn_parameter_is_styled_as_parameter_even_when_frozen():
    nn = pytest.importorskip("tinygraph.nn")
    W = nn.Parameter(np.ones((2, 2)), name="W")
    W.requires_grad = False
    x = tg.tensor(np.ones(2), requires_grad=True, name="x")
    dot = viz.to_dot((W @ x).sum())
    assert ">parameter<" in nodes(dot)[node_named(dot, "W")]


# ---- scopes --------------------------------------------------------------------------------
def scoped_rnn(T=2):
    """a<t> = tanh(a<t-1> @ W_aa + x<t>) in scopes layer=0 / t=1..T; returns W_aa,
    the states a<1>..a<T> (kept alive, so their names and shapes can be drawn), loss."""
    W_aa = tg.tensor(np.eye(3) * 0.5, requires_grad=True, name="W_aa")
    a, states = tg.tensor(np.ones((1, 3)), name="a<0>"), []
    with tg.scope("layer=0"):
        for t in range(1, T + 1):
            x_t = tg.tensor(np.full((1, 3), float(t)), name=f"x<{t}>")
            with tg.scope(f"t={t}"):
                a = (a @ W_aa + x_t).tanh()
                a.name = f"a<{t}>"
                states.append(a)
    return W_aa, states, a.sum()


def test_scopes_become_nested_clusters_holding_their_nodes():
    _, _states, loss = scoped_rnn(T=2)
    dot = viz.to_dot(loss)
    members = cluster_members(dot)
    assert members[node_named(dot, "a&lt;1&gt;")] == ("layer=0", "t=1")
    assert members[node_named(dot, "a&lt;2&gt;")] == ("layer=0", "t=2")
    assert members[node_named(dot, "sum")] == ()
    assert len(re.findall(r"subgraph cluster_", dot.source)) == 3


def test_leaf_sits_in_the_innermost_scope_its_consumers_share():
    _, _states, loss = scoped_rnn(T=2)
    dot = viz.to_dot(loss)
    members = cluster_members(dot)
    assert members[node_named(dot, "x&lt;2&gt;")] == ("layer=0", "t=2")
    assert members[node_named(dot, "W_aa")] == ("layer=0",)


# ---- gradients -------------------------------------------------------------------------------
def test_grad_annotation_is_the_norm_of_each_kept_gradient():
    x, W, b, z, loss = small_net()
    z.retain_grad()
    loss.backward()
    dot = viz.to_dot(loss, grads=True)
    labels = nodes(dot)
    for tensor in (W, b, z):
        norm = np.linalg.norm(tensor.grad)
        assert f"‖grad‖ = {norm:.3e}" in labels[node_named(dot, tensor.name)]


def test_grad_not_kept_on_non_leaf_says_not_computed_not_zero():
    *_, loss = small_net()
    loss.backward()
    dot = viz.to_dot(loss, grads=True)
    for title in ("matmul", "tanh", "loss"):
        label = nodes(dot)[node_named(dot, title)]
        assert viz.NOT_COMPUTED in label
        assert "‖grad‖" not in label


def test_grads_before_backward_say_not_computed():
    *_, loss = small_net()
    labels = nodes(viz.to_dot(loss, grads=True))
    assert sum(viz.NOT_COMPUTED in label for label in labels.values()) == 6  # all but x
    assert "‖grad‖" not in viz.to_dot(loss, grads=True).source


def test_grad_colours_span_the_figures_log_scale():
    x = tg.tensor(np.ones(4), requires_grad=True, name="x")
    y = tg.tensor(np.ones(4), requires_grad=True, name="y")
    m = tg.tensor(np.ones(4), requires_grad=True, name="m")
    loss = (x * 1000.0 + y + m * 31.6).sum()  # norms 2000, 2 and 63.2: log10 3.3, 0.3, 1.8
    loss.backward()
    dot = viz.to_dot(loss, grads=True)
    labels = nodes(dot)
    assert 'BGCOLOR="/reds9/9"' in labels[node_named(dot, "x")]
    assert 'BGCOLOR="/reds9/1"' in labels[node_named(dot, "y")]
    assert 'BGCOLOR="/reds9/5"' in labels[node_named(dot, "m")]
    x_edge = [a for t, _, a in edges(dot) if t == node_named(dot, "x")]
    assert x_edge == ['color="/reds9/9" penwidth=3.00']


def test_log_scale_buckets():
    scale = viz.LogScale([1e-6, None, 1e-3, 1.0])
    assert [scale.bucket(v) for v in (1e-6, 1e-3, 1.0, 0.0, 1e3)] == [1, 5, 9, 1, 9]
    assert viz.LogScale([2.0, 2.0]).bucket(2.0) == 9
    fixed = viz.LogScale([1.0], lo=-2, hi=2)
    assert fixed.bucket(1.0) == 5 and fixed.color(1.0) == "/reds9/5"


def test_log_scale_puts_inf_and_nan_norms_in_the_darkest_bucket_and_out_of_the_range():
    scale = viz.LogScale([1e-3, 1.0, float("inf"), float("nan")])
    assert (scale.lo, scale.hi) == (-3.0, 0.0)
    assert [scale.bucket(v) for v in (1e-3, 1.0, float("inf"), float("nan"))] == [1, 9, 9, 9]


def test_an_overflowed_gradient_is_drawn_with_its_value_not_a_crash():
    x = tg.tensor(np.array([0.0, 1.0]), requires_grad=True, name="x")
    with np.errstate(divide="ignore"):
        y = x.log()                           # dlog/dx at 0 is 1/0 = inf
        y.name = "y"
        y.retain_grad()
        (y * 2.0).sum().backward()
    dot = viz.to_dot(y, grads=True)
    labels = nodes(dot)
    assert "‖grad‖ = inf" in labels[node_named(dot, "x")]
    assert 'BGCOLOR="/reds9/9"' in labels[node_named(dot, "x")]
    assert "‖grad‖ = 2.828e+00" in labels[node_named(dot, "y")]


# ---- backward view -----------------------------------------------------------------------------
def test_backward_view_numbers_nodes_in_toposort_order():
    *_, loss = small_net()
    loss.backward()
    dot = viz.to_dot(loss, view="backward")
    order, _ = viz.walk([loss])
    ids = {vertex: f"n{i}" for i, vertex in enumerate(order)}
    labels = nodes(dot)
    visited = engine.toposort(loss.op)
    for step, vertex in enumerate(visited, start=1):
        assert re.search(rf"<TD[^>]*>{step}\. <B>", labels[ids[vertex]]), step
    x_id = node_named(dot, "x")
    assert "not visited by backward" in labels[x_id]
    assert len(visited) == len(labels) - 1


def test_backward_view_keeps_the_layout_and_reverses_edge_direction():
    *_, loss = small_net()
    forward, backward = viz.to_dot(loss), viz.to_dot_backward(loss)
    assert nodes(forward).keys() == nodes(backward).keys()
    assert [e[:2] for e in edges(forward)] == [e[:2] for e in edges(backward)]
    assert "dir=back" in backward.source and "dir=back" not in forward.source
    assert f'color="{viz.BACKWARD_EDGE_COLOR}"' in backward.source
    assert viz.BACKWARD_EDGE_COLOR not in forward.source


# ---- determinism -------------------------------------------------------------------------------
PROGRAM = """
import numpy as np, tinygraph as tg
from tinygraph import viz
W_aa = tg.tensor(np.arange(9.0).reshape(3, 3) / 10, requires_grad=True, name="W_aa")
a = tg.tensor(np.ones((2, 3)), name="a<0>")
for t in range(1, 4):
    with tg.scope(f"t={t}"):
        a = (a @ W_aa).tanh() * 0.5 + a
loss = a.sum()
loss.backward(retain_graph=True)
sources = [viz.to_dot(loss).source, viz.to_dot(loss, grads=True, view="backward").source]
"""


def run_program():
    namespace = {}
    exec(PROGRAM, namespace)
    return namespace["sources"]


def test_same_program_gives_byte_identical_dot_in_one_process():
    assert run_program() == run_program()


def test_same_program_gives_byte_identical_dot_in_a_fresh_process():
    script = PROGRAM + "import sys; sys.stdout.write('\\0'.join(sources))"
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         check=True).stdout.decode("utf-8")
    assert out.split("\0") == run_program()


def test_node_ids_come_from_the_walk_not_from_object_ids():
    *_, loss = small_net()
    assert sorted(nodes(viz.to_dot(loss)), key=lambda i: int(i[1:])) == [
        f"n{i}" for i in range(7)]


# ---- escaping ------------------------------------------------------------------------------------
def test_user_strings_are_escaped_in_labels():
    x = tg.tensor(np.ones(2), requires_grad=True, name='W<T>&"x"')
    with tg.scope("a|b\\"):
        y = x.tanh()
    y.name = "line one\nline two"
    source = viz.to_dot(y).source
    assert "W&lt;T&gt;&amp;&quot;x&quot;" in source
    assert "line one<BR/>line two" in source
    assert "label=<a|b\\>" in source
    assert 'W<T>' not in source


def test_characters_xml_cannot_hold_are_shown_as_hex():
    assert viz.escape("a\x01b\ufffe") == "a\\x01b\\xfffe"


def dot_accepts(source):
    result = subprocess.run(["dot", "-Tsvg"], input=source.encode("utf-8"), capture_output=True)
    return result.returncode == 0 and b"Error" not in result.stderr, result.stderr


HARD_NAMES = st.one_of(st.text(), st.sampled_from(
    ['W<T>&"x"', "a|b", "trailing\\", "two\nlines", "<lambda> <map>", "{x}", "&amp;", "ß∑😀"]))


@needs_dot
@settings(max_examples=20)
@given(leaf=HARD_NAMES, out=HARD_NAMES, scope_label=HARD_NAMES)
def test_any_user_strings_give_dot_that_graphviz_parses(leaf, out, scope_label):
    x = tg.tensor(np.ones(2), requires_grad=True, name=leaf)
    with tg.scope(scope_label):
        y = (x * x).sum()
    y.name = out
    ok, stderr = dot_accepts(viz.to_dot(y, grads=True).source)
    assert ok, stderr


# ---- rendering -----------------------------------------------------------------------------------
MAGIC = {"svg": b"<svg", "png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


@needs_dot
@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_render_infers_the_format_from_the_suffix(tmp_path, suffix):
    *_, loss = small_net()
    path = viz.render(viz.to_dot(loss), tmp_path / f"graph.{suffix}")
    data = path.read_bytes()
    assert MAGIC[suffix] in data[:300]
    assert path == tmp_path / f"graph.{suffix}"


@needs_dot
def test_pipe_returns_the_rendered_bytes():
    *_, loss = small_net()
    assert viz.pipe(viz.to_dot(loss), "png").startswith(MAGIC["png"])


@pytest.fixture
def no_dot_on_path(tmp_path, monkeypatch):
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_render_to_dot_writes_the_source_without_graphviz(tmp_path, no_dot_on_path):
    *_, loss = small_net()
    dot = viz.to_dot(loss)
    path = viz.render(dot, tmp_path / "graph.gv")
    assert path.read_text(encoding="utf-8") == dot.source


def test_render_without_graphviz_raises_with_install_hint_and_writes_dot(tmp_path,
                                                                      no_dot_on_path):
    *_, loss = small_net()
    dot = viz.to_dot(loss)
    with pytest.raises(viz.GraphvizNotFound) as info:
        viz.render(dot, tmp_path / "graph.svg")
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    for hint in ("apt-get install graphviz", "brew install graphviz",
                 "conda install -c conda-forge graphviz"):
        assert hint in message
    written = tmp_path / "graph.dot"
    assert str(written) in message
    assert written.read_text(encoding="utf-8") == dot.source
    assert not (tmp_path / "graph.svg").exists()


def test_pipe_without_graphviz_raises_graphviz_not_found(no_dot_on_path):
    *_, loss = small_net()
    with pytest.raises(viz.GraphvizNotFound, match="apt-get install graphviz"):
        viz.pipe(viz.to_dot(loss), "svg")


def test_notebook_display_without_graphviz_shows_source_and_hint(no_dot_on_path):
    *_, loss = small_net()
    figure = viz.draw(loss)
    bundle = figure._repr_mimebundle_()
    assert set(bundle) == {"text/plain", "text/markdown"}
    assert figure.source in bundle["text/plain"]
    assert "brew install graphviz" in bundle["text/plain"]
    assert figure.source in bundle["text/markdown"]


@needs_dot
def test_notebook_display_with_graphviz_is_svg():
    *_, loss = small_net()
    bundle = viz.draw(loss)._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]


# ---- bad input and big graphs -----------------------------------------------------------------
def test_bad_arguments_are_named_in_the_error(tmp_path):
    *_, loss = small_net()
    with pytest.raises(ValueError, match="at least one tensor"):
        viz.to_dot()
    with pytest.raises(TypeError, match="ndarray"):
        viz.to_dot(np.ones(2))
    with pytest.raises(ValueError, match="view"):
        viz.to_dot(loss, view="sideways")
    with pytest.raises(ValueError, match="format"):
        viz.render(viz.to_dot(loss), tmp_path / "graph")
    with pytest.raises(ValueError, match="bmpx"):
        viz.pipe(viz.to_dot(loss), "bmpx")


def test_5000_op_chain_draws_without_recursion():
    a = tg.tensor(np.ones(2), requires_grad=True, name="a<0>")
    for _ in range(5000):
        a = a.tanh()
    dot = viz.to_dot(a, view="backward")
    assert len(nodes(dot)) == 5001
    assert len(edges(dot)) == 5000


def test_keep_grads_makes_every_node_of_a_drawing_show_its_gradient():
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="x")
    W = tg.tensor(np.ones((3, 2)) * 0.1, requires_grad=True, name="W")
    with tg.viz.keep_grads() as kept:
        h = (x @ W).tanh()
        loss = (h * h).sum()
    loss.backward()
    assert len(kept.tensors) == 4 and all(t.grad is not None for t in kept.tensors)
    np.testing.assert_allclose(kept.tensors[1].grad, 2 * h.data)   # dL/dh = 2 h
    source = tg.viz.to_dot(loss, grads=True).source
    assert viz.NOT_COMPUTED not in source
    assert source.count("‖grad‖ = ") == 2 + 4                       # x, W and every op
