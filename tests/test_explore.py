"""tg.viz.explore: the document the page renders replays the backward pass the engine
really ran (its order, what arrived, what was sent, the running sums), and the page is
one self-contained file. The page itself is driven in a browser in
test_explore_browser.py."""
import html
import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import rnn
import tinygraph as tg
from tinygraph import explore as ex
from explorer_cases import elman_loss, engine_order, printed, small_net

ROOT = pathlib.Path(__file__).resolve().parents[1]


def leaf_ids(doc, names):
    return {n["label"]: n["id"] for n in doc["nodes"] if n["label"] in names}


def final_sums(doc):
    """{leaf id: the summary of its running sum after the last step (or its start)}."""
    run = doc["runs"][0]
    return {s["leaf"]: (s["after"][-1][1] if s["after"] else s["start"]) for s in run["sums"]}


def assert_summary_is(s, array, digits):
    assert s["shape"] == list(array.shape)
    assert printed(s["norm"], digits) == printed(np.linalg.norm(array), digits)
    if array.size:
        assert printed(s["min"], digits) == printed(array.min(), digits)
        assert printed(s["max"], digits) == printed(array.max(), digits)
    if "heat" in s:
        assert [printed(v, digits) for v in s["heat"]] == [printed(v, digits)
                                                           for v in array.ravel()]


# ---- the replay is the engine's backward ------------------------------------------------
def test_steps_visit_the_nodes_in_the_order_the_engine_backward_visits_them():
    loss, _ = elman_loss(T=5)
    expected = engine_order(loss)
    doc = ex.document(loss)
    assert [s["node"] for s in doc["runs"][0]["steps"]] == expected
    assert len(expected) > 5 * 4  # every step's ops, not a summary of them


def test_the_first_step_is_the_root_and_it_receives_the_seed_one():
    loss, _ = small_net()
    doc = ex.document(loss)
    first = doc["runs"][0]["steps"][0]
    assert doc["nodes"][first["node"]]["kind"] == "output"
    assert first["arrived"] == {"shape": [], "norm": 1.0, "min": 1.0, "max": 1.0,
                                "heat": [1.0], "rows": 1}


def test_the_final_running_sums_are_the_leaves_grad():
    loss, model = elman_loss(T=6)
    doc = ex.document(loss)
    ids = leaf_ids(doc, ["W_ax", "W_aa", "b_a", "W_ya", "b_y"])
    sums = final_sums(doc)
    assert len(ids) == 5
    for name, i in ids.items():
        assert_summary_is(sums[i], getattr(model, name).grad, ex.SUM_DIGITS)


def test_a_shared_weight_gets_one_addition_to_its_running_sum_per_use():
    loss, model = elman_loss(T=6)
    with tg.record_contributions() as contributions:
        doc = ex.document(loss)
    ids = leaf_ids(doc, ["W_aa", "W_ya"])
    sums = {s["leaf"]: s for s in doc["runs"][0]["sums"]}
    for name, i in ids.items():
        uses = contributions[getattr(model, name)]
        assert len(sums[i]["after"]) == len(uses) >= 5
        partial = np.zeros_like(getattr(model, name).data)
        for k, ((step, s), (_, grad)) in enumerate(zip(sums[i]["after"], uses)):
            partial = partial + grad  # each prefix sum in turn; the last is .grad
            last = k == len(uses) - 1
            assert_summary_is(s, partial, ex.SUM_DIGITS if last else ex.DISPLAY_DIGITS)
        steps = [step for step, _ in sums[i]["after"]]
        assert steps == sorted(steps) and len(set(steps)) == len(steps)


def test_a_running_sum_starts_from_the_grad_the_leaf_already_had():
    loss, (W, b) = small_net()
    loss.backward(retain_graph=True)
    first = W.grad.copy()
    doc = ex.document(loss)
    s = {s["leaf"]: s for s in doc["runs"][0]["sums"]}[leaf_ids(doc, ["W"])["W"]]
    assert_summary_is(s["start"], first, ex.SUM_DIGITS)
    assert_summary_is(s["after"][-1][1], W.grad, ex.SUM_DIGITS)
    np.testing.assert_allclose(W.grad, 2 * first)


def test_the_gradient_arriving_at_a_node_is_what_backward_gives_it():
    x = tg.tensor(np.random.default_rng(1).standard_normal((3, 4)), requires_grad=True)
    h = x.tanh()
    h.name = "h"
    z = h * h + h.exp()  # h has three consumers: its gradient is a sum of three sends
    z.name = "z"
    h.retain_grad(), z.retain_grad()
    loss = z.sum()
    doc = ex.document(loss)
    run, ids = doc["runs"][0], {n["label"]: n["id"] for n in doc["nodes"]}
    arrived = {s["node"]: s["arrived"] for s in run["steps"]}
    assert_summary_is(arrived[ids["h = tanh"]], h.grad, ex.DISPLAY_DIGITS)
    assert_summary_is(arrived[ids["z = add"]], z.grad, ex.DISPLAY_DIGITS)
    senders = [s for s in run["steps"] if any(p == ids["h = tanh"] for p, _ in s["sends"])]
    assert sum(p == ids["h = tanh"] for s in senders for p, _ in s["sends"]) == 3


def test_backward_from_a_leaf_visits_nothing_and_its_sum_is_the_seed():
    x = tg.tensor(np.array(3.0), requires_grad=True, name="x")
    doc = ex.document(x)
    assert doc["runs"][0]["steps"] == []
    assert_summary_is(final_sums(doc)[0], x.grad, ex.SUM_DIGITS)
    assert x.grad == 1.0


def test_sends_are_summed_back_to_the_shape_of_a_broadcast_input():
    a = tg.tensor(np.ones((3, 1)), requires_grad=True, name="a")
    b = tg.tensor(np.arange(4.0), requires_grad=True, name="b")
    loss = (a * b).sum()
    doc = ex.document(loss)
    ids = leaf_ids(doc, ["a", "b"])
    mul = next(s for s in doc["runs"][0]["steps"] if doc["nodes"][s["node"]]["label"] == "mul")
    sent = dict((p, g) for p, g in mul["sends"])
    assert sent[ids["a"]]["shape"] == [3, 1] and sent[ids["a"]]["heat"] == [6.0, 6.0, 6.0]
    assert sent[ids["b"]]["shape"] == [4] and sent[ids["b"]]["heat"] == [3.0] * 4


def test_an_input_that_needs_no_gradient_is_sent_nothing_and_never_visited():
    loss, _ = small_net()
    doc = ex.document(loss)
    x = leaf_ids(doc, ["x"])["x"]
    run = doc["runs"][0]
    assert all(s["node"] != x for s in run["steps"])
    assert all(g is None for s in run["steps"] for p, g in s["sends"] if p == x)
    assert x not in {s["leaf"] for s in run["sums"]}


@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple),
       seed=st.integers(0, 2**16))
def test_final_sums_match_central_differences_on_any_shape(shape, seed):
    """0-d and zero-size shapes included: L = sum(tanh(x * w + c) * r), w broadcast."""
    rng = np.random.default_rng(seed)
    x = tg.tensor(rng.standard_normal(shape), requires_grad=True, name="x")
    w = tg.tensor(rng.standard_normal(shape[-1:]), requires_grad=True, name="w")
    r = rng.standard_normal(shape)

    def f(x, w):
        return ((x * w + 0.5).tanh() * r).sum()

    doc = ex.document(f(x, w))
    sums = final_sums(doc)
    ids = leaf_ids(doc, ["x", "w"])
    for name, leaf in (("x", x), ("w", w)):
        numeric = np.zeros(leaf.shape)
        for i in np.ndindex(*leaf.shape):
            args = {"x": x.data.copy(), "w": w.data.copy()}
            args[name][i] += 1e-6
            hi = f(tg.tensor(args["x"]), tg.tensor(args["w"])).item()
            args[name][i] -= 2e-6
            lo = f(tg.tensor(args["x"]), tg.tensor(args["w"])).item()
            numeric[i] = (hi - lo) / 2e-6
        s = sums.get(ids[name])
        np.testing.assert_allclose(leaf.grad, numeric, atol=1e-6)
        assert s["shape"] == list(leaf.shape)
        if leaf.size:
            np.testing.assert_allclose(s["heat"] if "heat" in s else [], numeric.ravel()
                                       if "heat" in s else [], atol=1e-6)
            assert abs(s["norm"] - np.linalg.norm(numeric)) <= 1e-6 + 1e-7 * s["norm"]


def test_final_sums_match_pytorch_for_the_elman_rnn():
    torch = pytest.importorskip("torch")
    loss, model = elman_loss(T=5, seed=3)
    doc = ex.document(loss)
    names = ["W_ax", "W_aa", "b_a", "W_ya", "b_y"]
    P = {n: torch.tensor(getattr(model, n).data, requires_grad=True) for n in names}
    rng = np.random.default_rng(3)
    xs = np.eye(3)[rng.integers(0, 3, size=5)][:, None, :]
    targets = rng.integers(0, 3, size=(5, 1))
    a, total = torch.zeros(1, 4, dtype=torch.float64), 0
    for t in range(5):
        a = torch.tanh(torch.tensor(xs[t]) @ P["W_ax"].T + a @ P["W_aa"].T + P["b_a"])
        o = a @ P["W_ya"].T + P["b_y"]
        total = total + torch.nn.functional.cross_entropy(o, torch.tensor(targets[t]),
                                                          reduction="sum")
    total.backward()
    sums, ids = final_sums(doc), leaf_ids(doc, names)
    for n in names:
        assert_summary_is(sums[ids[n]], P[n].grad.numpy(), ex.SUM_DIGITS - 1)


def test_a_scan_node_is_one_step_that_sends_to_every_weight():
    tg.manual_seed(0)
    layer = rnn.RNN(3, 4)
    out, _ = layer(tg.tensor(np.random.default_rng(0).standard_normal((6, 2, 3))))
    loss = out.sum()
    expected = engine_order(loss)
    doc = ex.document(loss)
    assert [s["node"] for s in doc["runs"][0]["steps"]] == expected
    scans = [n for n in doc["nodes"] if n["label"] == "scan"]
    assert len(scans) == 1
    for name, p in layer.named_parameters():
        assert_summary_is(final_sums(doc)[leaf_ids(doc, [p.name])[p.name]], p.grad,
                          ex.SUM_DIGITS)


# ---- what the document holds ------------------------------------------------------------
@given(shape=st.lists(st.integers(0, 40), min_size=0, max_size=3).map(tuple),
       seed=st.integers(0, 2**16))
def test_a_summary_gives_shape_norm_min_max_and_a_heatmap_up_to_32_by_32(shape, seed):
    array = np.random.default_rng(seed).standard_normal(shape)
    s = ex.summary(array)
    assert_summary_is(s, array, ex.DISPLAY_DIGITS)
    rows = ((array.size // shape[-1], shape[-1]) if array.size and len(shape) > 1
            else (1, array.size))
    small = array.size > 0 and rows[0] <= 32 and rows[1] <= 32
    assert ("heat" in s) == small
    if small:
        assert s["rows"] == rows[0] and len(s["heat"]) == array.size
    if array.size == 0:
        assert s["norm"] == 0 and s["min"] is None and s["max"] is None


def test_nan_and_inf_are_written_as_strings_json_can_hold():
    s = ex.summary(np.array([np.nan, np.inf, -np.inf, 1.0]))
    assert s["heat"] == ["NaN", "Infinity", "-Infinity", 1.0]
    json.dumps(s, allow_nan=False)


def test_nodes_carry_their_scope_group_and_a_scope_folds_as_a_group():
    loss, _ = elman_loss(T=3)
    doc = ex.document(loss)
    labels = {g["id"]: g["label"] for g in doc["groups"]}
    assert sorted(labels.values()) == ["t=1", "t=2", "t=3"]
    in_t2 = [n for n in doc["nodes"] if n["group"] is not None
             and labels[n["group"]] == "t=2"]
    assert {n["label"] for n in in_t2} >= {"a<2> = tanh", "o<2> = linear"}
    assert next(g for g in doc["groups"] if g["label"] == "t=2")["size"] == len(in_t2)
    weights = [n for n in doc["nodes"] if n["label"] in ("W_aa", "W_ax")]
    assert all(n["group"] is None and n["kind"] == "parameter" for n in weights)
    assert doc["fold"] == []  # a small graph opens unfolded


def test_a_big_graph_opens_with_its_time_steps_folded():
    loss, _ = elman_loss(T=60)
    doc = ex.document(loss)
    assert len(doc["nodes"]) > ex.FOLD_ABOVE
    assert sorted(doc["fold"]) == sorted(g["id"] for g in doc["groups"] if g["parent"] is None)
    assert len(doc["fold"]) == 60


def test_nested_scopes_become_nested_groups():
    x = tg.tensor(np.ones(2), requires_grad=True, name="x")
    with tg.scope("layer=0"), tg.scope("t=1"):
        y = x.tanh()
    loss = y.sum()
    doc = ex.document(loss)
    outer, inner = doc["groups"]
    assert (outer["label"], outer["parent"]) == ("layer=0", None)
    assert (inner["label"], inner["parent"]) == ("t=1", outer["id"])


def test_forward_values_are_those_the_graph_keeps_or_keep_values_kept():
    loss, _ = small_net()
    doc = ex.document(loss)
    values = {n["label"]: v for n, v in zip(doc["nodes"], doc["runs"][0]["values"])}
    assert values["x"]["shape"] == [3, 4] and values["tanh"]["shape"] == [3, 5]
    assert values["loss = sum"]["shape"] == []
    assert values["add"] is None  # tanh keeps its output, not its input
    loss, (W, b) = small_net()
    with tg.viz.keep_values() as kept:
        x = tg.tensor(np.random.default_rng(0).standard_normal((3, 4)))
        z = (x @ W) + b
        loss = z.tanh().sum()
    doc = ex.document(loss, values=kept)
    values = {n["label"]: v for n, v in zip(doc["nodes"], doc["runs"][0]["values"])}
    assert all(v is not None for v in values.values())
    assert_summary_is(values["add"], z.data, ex.DISPLAY_DIGITS)


# ---- the page ---------------------------------------------------------------------------
def test_the_page_is_one_file_with_no_external_resource():
    loss, _ = elman_loss(T=3)
    page = tg.viz.explore(loss).html()
    assert not re.search(r"""(src|href)\s*=""", page) and "http" not in page
    assert "@import" not in page and "fetch(" not in page
    assert page.count("<script") == 2  # the document and the page's own script, inline


def test_the_document_survives_names_that_look_like_html():
    x = tg.tensor(np.ones(2), requires_grad=True, name="</script><b>&'\"x")
    loss = (x * 2).sum()
    loss.name = "<!-- loss"
    page = tg.viz.explore(loss).html()
    block = re.search(r'<script type="application/json" id="tinygraph-document">(.*?)</script>',
                      page, re.S).group(1)
    doc = json.loads(block)
    assert {n["label"] for n in doc["nodes"]} >= {"</script><b>&'\"x", "<!-- loss = sum"}
    assert "<" not in block


def test_explore_writes_the_page_and_returns_it(tmp_path):
    loss, _ = small_net()
    page = tg.viz.explore(loss, tmp_path / "backward.html")
    assert (tmp_path / "backward.html").read_text(encoding="utf-8") == page.html()
    assert page.save(tmp_path / "again.html").read_text(encoding="utf-8") == page.html()


def test_a_path_in_a_missing_folder_is_refused_before_backward_runs(tmp_path):
    loss, (W, b) = small_net()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tg.viz.explore(loss, tmp_path / "no" / "such" / "page.html")
    assert W.grad is None  # nothing happened: the graph is still there to explore
    assert tg.viz.explore(loss, tmp_path / "page.html").document["runs"][0]["steps"]


def test_in_jupyter_the_page_shows_inline_in_an_iframe():
    loss, _ = small_net()
    page = tg.viz.explore(loss)
    shown = page._repr_html_()
    assert shown.startswith("<iframe srcdoc=\"")
    srcdoc = re.match(r'<iframe srcdoc="(.*?)"', shown, re.S).group(1)
    assert html.unescape(srcdoc) == page.html()


def test_explore_is_the_backward_pass_so_it_fills_grad():
    loss, (W, b) = small_net()
    tg.viz.explore(loss)
    assert W.grad is not None and b.grad is not None


def test_explore_after_backward_says_it_runs_backward_itself():
    loss, _ = small_net()
    loss.backward()
    with pytest.raises(tg.GraphFreedError, match="explore\\(\\) runs the backward pass"):
        tg.viz.explore(loss)


def test_explore_of_something_that_is_not_a_tensor_names_the_problem():
    with pytest.raises(TypeError, match="explore\\(\\) needs the tensor"):
        tg.viz.explore(np.ones(3))


def test_explore_of_a_tensor_without_grad_raises_the_engines_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.viz.explore(tg.tensor(np.ones(3)).sum())


def test_explore_of_a_non_scalar_takes_the_gradient_like_backward():
    x = tg.tensor(np.ones((2, 3)), requires_grad=True, name="x")
    y = x * 3.0
    with pytest.raises(RuntimeError, match="one element"):
        tg.viz.explore(y, retain_graph=True)
    doc = ex.document(y, grad=np.full((2, 3), 2.0))
    assert doc["runs"][0]["steps"][0]["arrived"]["heat"] == [2.0] * 6
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 6.0))


def test_explore_needs_no_graphviz_package():
    code = ("import importlib.abc, sys\n"
            "class No(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.partition('.')[0] == 'graphviz':\n"
            "            raise ModuleNotFoundError(name, name=name)\n"
            "sys.meta_path.insert(0, No())\n"
            "import numpy as np, tinygraph as tg\n"
            "x = tg.tensor(np.ones(3), requires_grad=True)\n"
            "print(len(tg.viz.explore((x * x).sum()).html()) > 1000)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_the_template_is_package_data():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'tinygraph = \[[^\]]*"explorer.html"', pyproject)
    assert ex.TEMPLATE.exists()
