"""rnn.viz: the unrolled graph's DOT, asserted on its structure, and BPTT's numbers."""
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rnn
import tinygraph as tg
from rnn import bptt
from rnn import viz as rv

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")

T, B, M, N, P = 3, 2, 3, 4, 2   # steps, batch, input, hidden, output sizes


# ---- reading DOT back ----------------------------------------------------------------
NODE = re.compile(r"^\s*(\w+) \[label=<(.*)>(?: ([^\]]*))?\]$", re.M)
EDGE = re.compile(r"^\s*(\w+)(?::(\w+))? -> (\w+)(?::\w+)?(?: \[(.*)\])?$", re.M)


def nodes(dot):
    """{node id: label markup}."""
    return {node_id: label for node_id, label, _ in NODE.findall(dot.source)}


def edges(dot, invisible=False):
    """[(tail, tail port, head, attributes)] in source order, without the invisible
    layout edges unless asked for."""
    found = EDGE.findall(dot.source)
    return [e for e in found if invisible or "style=invis" not in e[3]]


def node_with(dot, markup):
    """The id of the one node whose label holds ``markup``."""
    found = [i for i, label in nodes(dot).items() if markup in label]
    assert len(found) == 1, (markup, found)
    return found[0]


def node_titled(dot, title):
    """The id of the one node whose bold title is ``title`` (escaped markup)."""
    return node_with(dot, f"<B>{title}</B>")


def clusters(dot):
    return re.findall(r"subgraph (cluster_\w+) \{", dot.source)


def elman(seed=0):
    tg.manual_seed(seed)
    return rnn.ElmanRNN(M, N, P)


def data(steps=T, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((steps, B, M)), rng.integers(0, P, size=(steps, B))


# ---- structure -----------------------------------------------------------------------
def test_cell_view_of_a_small_elman_unroll_has_the_expected_nodes_and_edges():
    xs, _ = data()
    dot = rv.to_dot(elman(), xs, detail="cell")
    # 5 weights, the legend, a<0>, per step x<t> + cell + output layer, and the two
    # stacked outputs
    assert len(nodes(dot)) == 5 + 1 + 1 + 3 * T + 2
    # per step: x->cell, cell->o, the chain edge, o and a into their stacks; the
    # weights' uses are slices inside the steps (the default layout, "proxy")
    assert len(edges(dot)) == 5 * T
    for t in range(1, T + 1):
        cell = node_with(dot, f"<B>a&lt;{t}&gt;</B> = tanh(W_ax x&lt;{t}&gt; + W_aa "
                              f"a&lt;{t - 1}&gt; + b_a)")
        x = node_titled(dot, f"x&lt;{t}&gt;")
        assert (x, "", cell) in [e[:3] for e in edges(dot)]
        for weight in ("W_ax", "W_aa", "b_a"):
            assert f"{weight}<SUP>({t})</SUP>" in nodes(dot)[cell]


def test_ops_view_draws_every_primitive_op_of_each_step():
    xs, _ = data()
    dot = rv.to_dot(elman(), xs, detail="ops")
    # per step: x<t>, W_ax x<t> + b_a, W_aa a<t-1> + that, tanh, W_ya a<t> + b_y,
    # and a dashed copy of each of the five weights beside the op that uses it
    assert len(nodes(dot)) == 5 + 1 + 1 + 5 * T + 5 * T + 2
    titles = "".join(nodes(dot).values())
    assert titles.count("<B>linear</B>") == 2 * T
    assert titles.count("<B>a&lt;2&gt;</B> = tanh") == 1


def test_one_cluster_per_time_step_labelled_with_its_t():
    xs, _ = data(steps=4)
    dot = rv.to_dot(elman(), xs)
    assert clusters(dot) == ["cluster_t1", "cluster_t2", "cluster_t3", "cluster_t4"]
    assert re.findall(r"label=<t = (\d+)>", dot.source) == ["1", "2", "3", "4"]


@pytest.mark.parametrize("detail", ["cell", "ops"])
def test_a_shared_weight_is_drawn_once_with_one_use_edge_per_step(detail):
    xs, _ = data(steps=5)
    dot = rv.to_dot(elman(), xs, detail=detail, shared="once")
    W_aa = node_titled(dot, "W_aa")
    assert "used at t = 1..5" in nodes(dot)[W_aa]
    uses = [e for e in edges(dot) if e[0] == W_aa]
    assert len(uses) == 5
    assert all("constraint=false" in attributes for *_, attributes in uses)
    assert len({e[2] for e in uses}) == 5                  # five different steps


@pytest.mark.parametrize("detail", ["cell", "ops"])
def test_proxy_mode_draws_a_slice_of_the_weight_in_each_step_instead_of_edges(detail):
    xs, _ = data(steps=5)
    dot = rv.to_dot(elman(), xs, shared="proxy", detail=detail)
    W_aa = node_titled(dot, "W_aa")
    assert not [e for e in edges(dot) if e[0] == W_aa]
    for t in range(1, 6):
        holders = [i for i, label in nodes(dot).items() if f"W_aa<SUP>({t})</SUP>" in label]
        assert len(holders) == 1
        if detail == "ops":  # a small dashed copy, with an edge to the op that uses it
            assert holders[0].startswith(f"{W_aa}_") and "dashed" in nodes(dot)[holders[0]]
            assert [e for e in edges(dot) if e[0] == holders[0]]


def test_proxy_is_the_default_and_auto_switches_to_it_above_twenty_drawn_steps():
    xs, _ = data(steps=4)
    assert "W_aa<SUP>(4)</SUP>" in rv.to_dot(elman(), xs).source
    xs, _ = data(steps=21)
    dot = rv.to_dot(elman(), xs, elide=False, shared="auto")
    assert sum("W_aa<SUP>(" in label for label in nodes(dot).values()) == 21
    xs, _ = data(steps=20)
    dot = rv.to_dot(elman(), xs, shared="auto")
    assert "<SUP>(" not in dot.source
    assert len([e for e in edges(dot) if e[0] == node_titled(dot, "W_aa")]) == 20


def test_the_hidden_chain_is_heavy_and_runs_forward_in_time():
    xs, _ = data()
    dot = rv.to_dot(elman(), xs)
    chain = [e for e in edges(dot) if "weight=10" in e[3]]
    assert len(chain) == T                                 # a<0>->1, 1->2, 2->3
    assert all("penwidth=2.5" in e[3] and "dir=back" not in e[3] for e in chain)
    cells = [node_with(dot, f"<B>a&lt;{t}&gt;</B> = tanh") for t in range(1, T + 1)]
    assert [(e[0], e[2]) for e in chain[1:]] == list(zip(cells, cells[1:]))


def test_labels_hold_names_and_shapes():
    xs, _ = data()
    dot = rv.to_dot(elman(), xs)
    labels = nodes(dot)
    assert f"({N}, {N})" in labels[node_titled(dot, "W_aa")]
    assert f"({P}, {N})" in labels[node_titled(dot, "W_ya")]
    assert f"({B}, {N})" in labels[node_titled(dot, "a&lt;2&gt;")]
    assert f"({B}, {M})" in labels[node_titled(dot, "x&lt;2&gt;")]


def test_a_scalar_constant_in_a_step_shows_its_value_not_the_name_x_t():
    tg.manual_seed(0)
    xs, _ = data()
    dot = rv.to_dot(rnn.GRU(M, N), xs, detail="ops")  # a<t> = (1 - z) * n + z * a<t-1>
    ones = [label for label in nodes(dot).values() if "<B>1</B>" in label]
    assert len(ones) == T and all("constant" in label for label in ones)
    cell = rv.to_dot(rnn.GRU(M, N), xs)             # the cell view: part of the formula
    assert not [label for label in nodes(cell).values() if "<B>1</B>" in label]


def test_the_same_program_gives_byte_identical_dot():
    def figure():
        xs, ys = data()
        return rv.trace(elman(), xs, ys).to_dot(detail="ops").source
    assert figure() == figure()


# ---- gradients ---------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda: elman(),
    lambda: rnn.LSTM(M, N, num_layers=2),
    lambda: rnn.GRU(M, N, bidirectional=True),
], ids=["elman", "lstm-2-layers", "gru-bidirectional"])
def test_per_step_contributions_sum_to_each_parameters_gradient(make):
    tg.manual_seed(1)
    xs, _ = data(steps=4)
    g = rv.gradient_norms(make(), xs)
    assert g.contributions
    for name, per_step in g.contributions.items():
        assert per_step.shape[0] == 4
        np.testing.assert_allclose(per_step.sum(axis=0) + g.outside[name], g.grads[name],
                                   rtol=0, atol=1e-12)
        np.testing.assert_allclose(g.contribution_norms[name],
                                   [np.linalg.norm(c) for c in per_step], rtol=1e-12)


def test_per_step_contributions_equal_the_hand_derived_bptt():
    model = elman()
    xs, ys = data(steps=5)
    g = rv.gradient_norms(model, xs, ys)
    reference = bptt.bptt(model, xs, targets=ys)
    for name in bptt.PARAM_NAMES:
        np.testing.assert_allclose(g.contributions[name], reference.per_step[name],
                                   rtol=0, atol=1e-10)
    np.testing.assert_allclose(g.state_norms["a<t>"],
                               np.linalg.norm(reference.dL_da.reshape(5, -1), axis=1),
                               rtol=1e-10)


def test_state_norm_strip_shows_the_norms_of_the_retained_gradients():
    model = elman()
    xs, ys = data()
    run = rv.trace(model, xs, ys)
    kept = [np.linalg.norm(a_t.grad) for a_t in model.last_states]
    np.testing.assert_array_equal(run.gradients().state_norms["a<t>"], kept)
    labels = nodes(run.to_dot())
    for t, norm in enumerate(kept, start=1):
        strip = [label for label in labels.values() if f"dL/da&lt;{t}&gt;" in label]
        assert len(strip) == 1 and f"{norm:.2e}" in strip[0]


def test_weight_node_lists_its_gradient_as_a_sum_with_one_row_per_step():
    model = elman()
    xs, ys = data()
    run = rv.trace(model, xs, ys)
    dot = run.to_dot(shared="once")
    W_aa = node_titled(dot, "W_aa")
    label = nodes(dot)[W_aa]
    assert "dL/dW = &#8721;<SUB>t</SUB> dL/dW<SUP>(t)</SUP>" in label
    g = run.gradients()
    norms, per_step = g.contribution_norms["W_aa"], g.contributions["W_aa"]
    shares = [float((per_step[t] * g.grads["W_aa"]).sum() / (g.grads["W_aa"] ** 2).sum())
              for t in range(T)]
    assert sum(shares) == pytest.approx(1.0)             # the shares add up
    for t in range(1, T + 1):
        assert f'PORT="t{t}"' in label
        assert f"t={t}: {norms[t - 1]:.2e}, {shares[t - 1]:.1%}" in label
    # each step's use edge leaves from its own row
    assert sorted(e[1] for e in edges(dot) if e[0] == W_aa) == ["t1", "t2", "t3"]
    assert "shares of one weight add up to 100%" in nodes(dot)["legend"]


def test_tanh_gradients_vanish_back_along_a_long_sequence():
    tg.manual_seed(0)
    model = rnn.ElmanRNN(M, N, P)
    model.W_aa.data = 0.3 * np.eye(N)
    xs, _ = data(steps=30)
    g = rv.gradient_norms(model, xs, loss_fn=lambda logits: logits[-1].sum())
    norms = g.state_norms["a<t>"]
    assert norms[0] < 1e-6 * norms[-1]
    assert np.all(np.diff(norms) > 0)


# ---- long sequences and truncated BPTT ---------------------------------------------
def test_a_long_sequence_shows_its_first_and_last_steps_and_an_ellipsis():
    xs, ys = data(steps=200)
    run = rv.trace(elman(), xs, ys)
    dot = run.to_dot(keep=4)
    steps = [c for c in clusters(dot) if re.fullmatch(r"cluster_t\d+", c)]
    assert steps == [f"cluster_t{t}" for t in (1, 2, 3, 4, 197, 198, 199, 200)]
    assert "cluster_elided" in clusters(dot)
    assert "t = 5 &#8230; 196" in dot.source
    assert "t=5..196:" in nodes(dot)[node_titled(dot, "W_aa")]
    assert "used at t = 1..200" in nodes(dot)[node_titled(dot, "W_aa")]
    chain = [e for e in edges(dot) if "weight=10" in e[3]]
    assert len(chain) == 1 + 3 + 1 + 1 + 3                 # a<0>, 1..4, 4->..., ...->197, 197..200


def test_building_the_dot_of_a_thousand_steps_does_not_recurse():
    xs, ys = data(steps=1000)
    run = rv.trace(elman(), xs, ys)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)
    try:
        dot = run.to_dot(elide=False, detail="ops")
    finally:
        sys.setrecursionlimit(limit)
    assert len(clusters(dot)) == 1000 + 1000               # the steps and their lanes


def test_a_carried_over_detached_state_enters_by_a_dashed_grey_edge():
    model = elman()
    xs, ys = data(steps=6)
    model(tg.tensor(xs[:3]))
    a0 = model.last_states[-1].detach()                    # truncated BPTT: a<3> carried
    dot = rv.trace(model, xs[3:], ys[3:], a0=a0).to_dot()
    start = node_with(dot, "carried over, detached")
    assert "<B>a&lt;3&gt;</B>" in nodes(dot)[start]
    (edge,) = [e for e in edges(dot) if e[0] == start]
    assert "style=dashed" in edge[3] and f'color="{rv.CUT_COLOR}"' in edge[3]


def test_a_fresh_zero_state_enters_by_a_solid_chain_edge():
    xs, ys = data()
    dot = rv.to_dot(elman(), xs)
    (edge,) = [e for e in edges(dot) if e[0] == node_titled(dot, "a&lt;0&gt;")]
    assert "weight=10" in edge[3] and "dashed" not in edge[3]


def test_a_state_detached_inside_the_unroll_is_cut_by_a_dashed_grey_edge():
    tg.manual_seed(0)
    cell = rnn.RNNCell(M, N)
    xs, _ = data(steps=4)
    a_t, states = cell.initial_state(B), []
    for t in range(1, 5):
        if t == 3:
            a_t = a_t.detach()                             # the cut: no gradient to t <= 2
        with tg.scope(f"t={t}"):
            a_t = cell(tg.tensor(xs[t - 1]), a_t)
        a_t.name = f"a<{t}>"
        states.append(a_t)
    graph = rv.Unrolled([tg.stack(states).sum()])
    (leaf,) = graph.cuts
    assert graph.cuts[leaf] is states[1].op
    dot = rv.to_dot(tg.stack(states).sum(), detail="ops")
    a2 = node_with(dot, "<B>a&lt;2&gt;</B> = tanh")
    cut = [e for e in edges(dot) if e[0] == a2 and "weight=10" in e[3]]
    assert len(cut) == 1
    assert "style=dashed" in cut[0][3] and f'color="{rv.CUT_COLOR}"' in cut[0][3]
    assert "detached" in nodes(dot)[cut[0][2]]


# ---- every model kind ----------------------------------------------------------------
MODELS = {
    "elman": lambda: rnn.ElmanRNN(M, N, P),
    "rnn-2-layers": lambda: rnn.RNN(M, N, num_layers=2),
    "rnn-bidirectional": lambda: rnn.RNN(M, N, bidirectional=True),
    "lstm": lambda: rnn.LSTM(M, N),
    "gru": lambda: rnn.GRU(M, N),
}


@pytest.mark.parametrize("kind", MODELS)
def test_every_model_kind_draws_one_cluster_per_step_and_every_state(kind):
    tg.manual_seed(0)
    xs, _ = data()
    run = rv.trace(MODELS[kind](), xs)
    dot = run.to_dot()
    assert [c for c in clusters(dot) if re.fullmatch(r"cluster_t\d+", c)] == \
        ["cluster_t1", "cluster_t2", "cluster_t3"]
    for series, norms in run.gradients().state_norms.items():
        assert norms.shape == (T,) and np.all(np.isfinite(norms)), series


@needs_dot
@pytest.mark.parametrize("detail", ["cell", "ops"])
@pytest.mark.parametrize("kind", MODELS)
def test_dot_lays_out_every_model_kind(kind, detail):
    tg.manual_seed(0)
    xs, _ = data()
    source = rv.trace(MODELS[kind](), xs).to_dot(detail=detail).source
    done = subprocess.run(["dot", "-Tplain"], input=source, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and "Error" not in done.stderr, done.stderr
    assert done.stdout.startswith("graph ")


def test_reverse_direction_chain_edges_point_back_in_time():
    tg.manual_seed(0)
    xs, _ = data()
    dot = rv.to_dot(rnn.RNN(M, N, bidirectional=True), xs)
    chain = [e for e in edges(dot) if "weight=10" in e[3]]
    assert sum("dir=back" in e[3] for e in chain) == T     # a←<0> -> t=3 -> t=2 -> t=1
    assert sum("dir=back" not in e[3] for e in chain) == T


# ---- errors --------------------------------------------------------------------------
def test_unknown_options_are_refused_by_name():
    xs, _ = data()
    with pytest.raises(ValueError, match="detail"):
        rv.to_dot(elman(), xs, detail="gates")
    with pytest.raises(ValueError, match="shared"):
        rv.to_dot(elman(), xs, shared="twice")


def test_a_graph_without_time_steps_is_refused_with_a_pointer_to_tinygraph_viz():
    x = tg.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(ValueError, match="tinygraph.viz.to_dot"):
        rv.to_dot((x * 2).sum())


def test_gradients_of_a_forward_only_drawing_are_refused():
    xs, _ = data()
    run = rv.Trace(list(elman()(tg.tensor(xs))))
    with pytest.raises(RuntimeError, match="backward"):
        run.gradients()


def test_trace_clears_old_gradients_even_for_a_model_without_zero_grad():
    class Bare:  # a plain callable that unrolls a cell: no Module, no zero_grad()
        def __init__(self):
            self.cell = rnn.RNNCell(M, N)

        def __call__(self, xs):
            return tg.stack(rnn.unroll(self.cell, xs))

    bare = Bare()
    bare.cell.W_aa.grad = np.full((N, N), 100.0)  # left over from some earlier backward
    xs, _ = data()
    g = rv.trace(bare, xs).gradients()
    np.testing.assert_allclose(g.contributions["W_aa"].sum(axis=0) + g.outside["W_aa"],
                               bare.cell.W_aa.grad, rtol=0, atol=1e-12)


def test_a_layers_output_drawn_as_a_tensor_points_to_tg_unrolled():
    layer = rnn.GRU(2, 3)
    xs = np.ones((4, 1, 2))
    output, _ = layer(xs)
    with pytest.raises(ValueError, match=r"one tg.scan node: run the layer under tg.unrolled"):
        rv.to_dot(output)
    with tg.unrolled():
        output, _ = layer(xs)
    assert "a&lt;4&gt;" in rv.to_dot(output).source
    assert "scan" not in rv.to_dot(layer, xs).source  # a model and its input: drawn unrolled


# ---- layers followed by an output head -------------------------------------------------
class WithHead(tg.nn.Module):
    """A recurrent layer and an nn.Linear head on its outputs (optionally padded)."""

    def __init__(self, layer, lengths=None):
        super().__init__()
        self.layer, self.lengths = layer, lengths
        self.head = tg.nn.Linear(layer.hidden_size * (2 if layer.bidirectional else 1), P)

    def forward(self, xs):
        out, h_n = self.layer(xs, lengths=self.lengths)
        return self.head(out), h_n


@pytest.mark.parametrize("layer_class", [rnn.RNN, rnn.LSTM, rnn.GRU])
@pytest.mark.parametrize("num_layers, bidirectional, lengths", [
    (1, False, None), (2, False, None), (1, True, None), (2, True, np.array([3, 2]))])
def test_layers_with_a_head_keep_every_states_gradient(layer_class, num_layers,
                                                       bidirectional, lengths):
    tg.manual_seed(0)
    model = WithHead(layer_class(M, N, num_layers=num_layers, bidirectional=bidirectional),
                     lengths)
    xs, ys = data()
    norms = rv.trace(model, xs, ys).gradients().state_norms
    parts = 2 if layer_class is rnn.LSTM else 1
    assert len(norms) == num_layers * (2 if bidirectional else 1) * parts
    for series, values in norms.items():
        assert values.shape == (T,) and np.all(np.isfinite(values)), series
        if series.startswith("a"):  # every a<t> feeds the head (c<T> may feed nothing)
            assert np.all(values > 0), series


@pytest.mark.parametrize("layer_class", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_a_layers_state_norms_equal_those_of_its_cell_unrolled_by_hand(layer_class):
    tg.manual_seed(1)
    model = WithHead(layer_class(M, N))
    xs, ys = data()
    norms = rv.trace(model, xs, ys).gradients().state_norms
    states = rnn.unroll(model.layer.l0, tg.tensor(xs))      # the literal loop, retained
    hidden = [s[0] if isinstance(s, tuple) else s for s in states]
    for s in states:
        for part in (s if isinstance(s, tuple) else (s,)):
            part.retain_grad()
    logits = model.head(tg.stack(hidden))
    tg.functional.cross_entropy(logits, ys, reduction="sum").backward()
    np.testing.assert_allclose(norms["a<t>"], [np.linalg.norm(a.grad) for a in hidden],
                               rtol=1e-10)
    if layer_class is rnn.LSTM:
        np.testing.assert_allclose(norms["c<t>"], [np.linalg.norm(c.grad) for _, c in states],
                                   rtol=1e-10)


@pytest.mark.parametrize("layer_class", [rnn.RNN, rnn.LSTM, rnn.GRU])
def test_weights_used_on_every_step_at_once_split_into_per_step_contributions(layer_class):
    tg.manual_seed(2)
    model = WithHead(layer_class(M, N, num_layers=2, bidirectional=True))
    xs, ys = data()
    g = rv.trace(model, xs, ys).gradients()
    for name, per_step in g.contributions.items():
        np.testing.assert_allclose(per_step.sum(0), g.grads[name], atol=1e-12)
        assert not np.any(g.outside[name]), name   # the projection and head, split by t
    # the head's step t share is g<t>^T a<t>: only step t's rows
    out, _ = model.layer(tg.tensor(xs))
    logits = model.head(out)
    p = np.exp(logits.data - logits.data.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    g_logits = p - np.eye(P)[ys]
    for t in range(T):
        np.testing.assert_allclose(g.contributions["head.weight"][t],
                                   g_logits[t].T @ out.data[t], atol=1e-12)


# ---- every figure: in time order, every weight's uses, the notes' names, a budget -----
def with_head(kind, num_layers=1, bidirectional=False):
    if kind == "elman":
        return rnn.ElmanRNN(M, N, P)
    layer = {"rnn": rnn.RNN, "lstm": rnn.LSTM, "gru": rnn.GRU}[kind]
    return WithHead(layer(M, N, num_layers=num_layers, bidirectional=bidirectional))


FIGURES = [(kind, layers, both) for kind in ("elman", "rnn", "lstm", "gru")
           for layers in (1, 2) for both in (False, True)
           if kind != "elman" or (layers == 1 and not both)]


def layout(dot):
    """{cluster name: its left x} and the figure's (width, height) in px at 96 dpi, as
    dot lays it out."""
    import json
    result = subprocess.run(["dot", "-Tjson"], input=dot.source, capture_output=True,
                            text=True, timeout=120, check=True)
    graph = json.loads(result.stdout)
    left = {o["name"]: float(o["bb"].split(",")[0]) for o in graph.get("objects", [])
            if "bb" in o}
    width, height = (float(v) * 96 / 72 for v in graph["bb"].split(",")[2:])
    return left, (width, height)


@needs_dot
@pytest.mark.parametrize("detail", ["cell", "ops"])
@pytest.mark.parametrize("kind, num_layers, bidirectional", FIGURES)
def test_time_runs_left_to_right_in_order_in_every_figure(kind, num_layers, bidirectional,
                                                          detail):
    tg.manual_seed(0)
    xs, ys = data(steps=4)
    for shared in ("proxy", "once"):
        dot = rv.trace(with_head(kind, num_layers, bidirectional), xs, ys).to_dot(
            detail=detail, shared=shared)
        left, _ = layout(dot)
        steps = [f"cluster_t{t}" for t in range(1, 5)]
        assert sorted(steps, key=left.get) == steps, (shared, [left[s] for s in steps])


@pytest.mark.parametrize("kind, num_layers, bidirectional", FIGURES)
def test_every_weight_is_drawn_once_with_an_edge_to_every_step_that_uses_it(
        kind, num_layers, bidirectional):
    tg.manual_seed(0)
    xs, ys = data(steps=4)
    model = with_head(kind, num_layers, bidirectional)
    dot = rv.trace(model, xs, ys).to_dot(shared="once")
    labels = nodes(dot)
    for name, p in model.named_parameters():
        short = p.name or name
        (weight,) = [i for i, label in labels.items()
                     if label.count(f"<B>{short}</B>") == 1 and "dL/dW" in label]
        heads = {e[2] for e in edges(dot) if e[0] == weight}
        steps = {re.search(r"_(\d+)$", h).group(1) for h in heads}
        assert steps == {"1", "2", "3", "4"}, (name, heads)  # the projection and head too
        assert "used at t = 1..4" in labels[weight]


@pytest.mark.parametrize("detail", ["cell", "ops"])
@pytest.mark.parametrize("kind, num_layers, bidirectional", FIGURES)
def test_labels_use_the_notes_names_never_a_class_name(kind, num_layers, bidirectional,
                                                       detail):
    tg.manual_seed(0)
    xs, ys = data(steps=4)
    run = rv.trace(with_head(kind, num_layers, bidirectional), xs, ys)
    dot = run.to_dot(detail=detail)
    source = dot.source
    for wrong in ("Stacked", "Truncated", "WithHead", "RNNCell", "LSTMCell", "GRUCell",
                  "ElmanRNN", "linear = linear", "concat = concat", " ops:", "not kept",
                  "outside the steps"):
        assert wrong not in source, wrong
    loss = node_with(dot, "L = &#8721;<SUB>t</SUB> L&lt;t&gt;")
    assert f"{run.loss.item():.4g}" in nodes(dot)[loss]
    assert "legend" in nodes(dot)
    if detail == "cell":
        states = [s for s in run.gradients().state_norms]
        for series in states:                            # each state's norm, every step
            for t in range(1, 5):
                name = escape_name(series.replace("<t>", f"<{t}>"))
                assert f"‖dL/d{name}‖ = " in source, name


def escape_name(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@needs_dot
def test_a_two_layer_bidirectional_lstm_at_four_steps_fits_in_2000_px(tmp_path):
    tg.manual_seed(0)
    xs, ys = data(steps=4)
    dot = rv.trace(with_head("lstm", 2, True), xs, ys).to_dot()
    png = tmp_path / "lstm.png"
    rv.render(dot, png)
    width, height = (int.from_bytes(png.read_bytes()[16 + 4 * i:20 + 4 * i], "big")
                     for i in range(2))
    assert max(width, height) <= 2000 and min(width, height) > 500


class CutEvery(tg.nn.Module):
    """An ElmanRNN whose state is detached every K steps inside one unroll."""

    def __init__(self, K):
        super().__init__()
        self.model, self.K = elman(), K

    def forward(self, xs):
        a, logits = self.model.initial_state(xs.shape[1]), []
        for t in range(1, xs.shape[0] + 1):
            with tg.scope(f"t={t}"):
                a = self.model.step(xs[t - 1], a)
                logits.append(self.model.output_layer(a))
            a.name = f"a<{t}>"
            if t % self.K == 0:
                a = a.detach()
        return tg.stack(logits), a


@needs_dot
@pytest.mark.parametrize("detail", ["cell", "ops"])
def test_a_figure_with_cuts_keeps_time_in_order_and_names_the_outputs(detail):
    xs, ys = data(steps=8)
    dot = rv.trace(CutEvery(4), xs, ys).to_dot(detail=detail)
    left, _ = layout(dot)
    steps = [f"cluster_t{t}" for t in range(1, 9)]
    assert sorted(steps, key=left.get) == steps
    assert len([e for e in edges(dot) if "style=dashed" in e[3]]) == 1   # the cut at 4
    if detail == "cell":
        assert "<B>o&lt;5&gt;</B> = W_ya a&lt;5&gt; + b_y" in dot.source


@needs_dot
@pytest.mark.parametrize("detail", ["cell", "ops"])
@pytest.mark.parametrize("kind, num_layers, bidirectional", [
    (kind, layers, both) for kind in ("rnn", "lstm", "gru") for layers in (1, 2)
    for both in (False, True)])
def test_a_bare_layers_forward_figure_keeps_time_in_order(kind, num_layers, bidirectional,
                                                          detail):
    tg.manual_seed(0)
    layer = {"rnn": rnn.RNN, "lstm": rnn.LSTM, "gru": rnn.GRU}[kind](
        M, N, num_layers=num_layers, bidirectional=bidirectional)
    xs, _ = data(steps=4)
    dot = rv.to_dot(layer, xs, detail=detail)     # output and h_n, no loss
    left, _ = layout(dot)
    steps = [f"cluster_t{t}" for t in range(1, 5)]
    assert sorted(steps, key=left.get) == steps
