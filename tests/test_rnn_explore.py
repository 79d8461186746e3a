"""rnn.viz.explore and python -m rnn explore: the explorer page of an unrolled network.
Its numbers (the Σ_t tables, the strips ‖dL/da<t>‖, the runs at several spectral radii
of W_aa, the connectivity ‖∂L<t>/∂x<s>‖) against independent computations: a fresh
trace, backward from each L<t>, central differences. The page itself is driven in a
browser in test_rnn_explore_browser.py."""
import importlib
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import rnn
import tinygraph as tg
from rnn import cli
from rnn.models import build_model
from tinygraph import explore as ex, functional as F
from explorer_cases import printed

rx = importlib.import_module("rnn.viz.explore")  # (rnn.viz.explore is the function)
KINDS = ["elman", "rnn", "lstm", "gru"]


def model_and_data(kind="elman", T=4, m=3, n=4, p=3, B=1, seed=0, layers=1,
                   bidirectional=False):
    tg.manual_seed(seed)
    model = build_model({"model": kind, "input_size": m, "hidden": n, "output_size": p,
                         "layers": layers, "bidirectional": bidirectional})
    rng = np.random.default_rng(seed)
    xs = np.eye(m)[rng.integers(0, m, size=(T, B))]
    targets = rng.integers(0, p, size=(T, B))
    return model, xs, targets


def explored(kind="elman", radii=rx.RADII, **sizes):
    model, xs, targets = model_and_data(kind, **sizes)
    doc = rx.document(rnn.viz.trace(model, xs, targets), radii)
    return doc, model, xs, targets


def panel(doc, kind, title_part=""):
    return next(p for p in doc["panels"] if p["kind"] == kind and title_part in p["title"])


def table(doc, name):
    return panel(doc, "table", f"dL/d{name} = ")


def recurrent(model):
    return [W for name, W in model.named_parameters() if name.endswith("W_aa")]


def at_radius(kind, r, **sizes):
    """A fresh model like explored()'s with every W_aa scaled to spectral radius r."""
    model, xs, targets = model_and_data(kind, **sizes)
    own = max(rx.spectral_radius(W.data) for W in recurrent(model))
    for W in recurrent(model):
        W.data = W.data * (r / own)
    return model, xs, targets


def assert_printed_equal(cells, array, digits=ex.DISPLAY_DIGITS):
    assert [printed(v, digits) for v in cells] == [printed(v, digits) for v in array]


# ---- the Σ_t tables ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_each_tables_rows_are_the_per_step_contributions_and_the_last_row_is_grad(kind):
    doc, model, xs, targets = explored(kind)
    g = rnn.viz.trace(model, xs, targets).gradients()  # independent of the page's runs
    for name, W in model.named_parameters():
        rows = table(doc, name)["rows"]
        T = g.contributions[name].shape[0]
        for t in range(T):
            c = g.contributions[name][t]
            values = [v for _, v in rows[t]["cells"]]
            assert rows[t]["label"] == f"t={t + 1}"
            assert_printed_equal(values, [np.linalg.norm(c), *c.ravel()[:rx.ENTRIES]])
        total = [v for _, v in rows[-1]["cells"]]
        assert rows[-1]["label"] == "Σ_t = .grad"
        assert_printed_equal(total, [np.linalg.norm(W.grad), *W.grad.ravel()[:rx.ENTRIES]],
                             ex.SUM_DIGITS)
        np.testing.assert_allclose(g.contributions[name].sum(0) + g.outside[name], W.grad,
                                   rtol=1e-12, atol=1e-14)


def test_a_large_weight_shows_its_norm_and_its_first_entries():
    doc, model, _, _ = explored(n=6)
    W_aa = table(doc, "W_aa")
    assert "first 16 of 36 entries" in W_aa["title"]
    assert W_aa["columns"][:3] == ["‖·‖", "W_aa[0,0]", "W_aa[0,1]"]
    assert all(len(row["cells"]) == 1 + rx.ENTRIES for row in W_aa["rows"])


def test_a_rows_cells_appear_when_backward_has_sent_that_steps_contribution():
    doc, model, _, _ = explored(T=5)
    run = doc["runs"][doc["start"]]
    W_aa = next(n["id"] for n in doc["nodes"] if n["label"] == "W_aa")
    sends = [k for k, s in enumerate(run["steps"], 1) if any(p == W_aa for p, _ in s["sends"])]
    rows = table(doc, "W_aa")["rows"]
    shown = [row["cells"][0][0] for row in rows[:-1]]
    assert sorted(shown) == sends             # one use per step, each its own row
    assert shown == sorted(shown, reverse=True)  # backward reaches t = T first
    sums = next(s for s in run["sums"] if s["leaf"] == W_aa)
    assert rows[-1]["cells"][0][0] == sums["after"][-1][0] == max(shown)


def test_a_layers_input_projection_sends_every_steps_share_at_once():
    doc, model, xs, targets = explored("gru")
    rows = table(doc, "layers.l0.W_ax")["rows"]
    assert len({row["cells"][0][0] for row in rows}) == 1  # one op for all steps
    g = rnn.viz.trace(model, xs, targets).gradients()
    assert np.linalg.norm(g.contributions["layers.l0.W_ax"], axis=(1, 2)).min() > 0


# ---- the strips -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_the_strips_are_the_traces_state_norms(kind):
    doc, model, xs, targets = explored(kind, T=5)
    g = rnn.viz.trace(model, xs, targets).gradients()
    strips = [p for p in doc["panels"] if p["kind"] == "strip"]
    assert len(strips) == len(g.state_norms) == (2 if kind == "lstm" else 1)
    for series, norms in g.state_norms.items():
        strip = panel(doc, "strip", f"‖dL/d{series}‖")
        assert_printed_equal([v for _, v in strip["values"]], norms)
        assert strip["labels"] == [series.replace("<t>", f"<{t}>") for t in range(1, 6)]


def test_a_bar_appears_when_backward_visits_its_state():
    doc, model, _, _ = explored(T=5)
    run = doc["runs"][doc["start"]]
    visits = {doc["nodes"][s["node"]]["label"].split(" =")[0]: k
              for k, s in enumerate(run["steps"], 1)}
    strip = panel(doc, "strip", "a<t>")
    assert [k for k, _ in strip["values"]] == [visits[f"a<{t}>"] for t in range(1, 6)]


def test_an_lstm_has_a_strip_for_its_cell_state_too():
    doc, *_ = explored("lstm")
    assert {p["title"].split(",")[0] for p in doc["panels"] if p["kind"] == "strip"} == {
        "‖dL/da<t>‖", "‖dL/dc<t>‖"}


# ---- the runs at several spectral radii ------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_each_run_is_a_fresh_trace_at_its_spectral_radius(kind):
    doc, model, xs, targets = explored(kind, radii=(0.5, 1.5), T=5)
    own = rx.spectral_radius(recurrent(model)[0].data)
    assert [r["radius"] for r in doc["runs"]] == sorted([0.5, 1.5, own])
    assert doc["runs"][doc["start"]]["radius"] == own
    W_aa = next(n["id"] for n in doc["nodes"] if n["label"].endswith("W_aa"))
    for i, run in enumerate(doc["runs"]):
        fresh, fxs, ftargets = at_radius(kind, run["radius"], T=5)
        assert rx.spectral_radius(recurrent(fresh)[0].data) == pytest.approx(run["radius"])
        shown = np.array(run["values"][W_aa]["heat"]).reshape(recurrent(fresh)[0].shape)
        np.testing.assert_allclose(shown, recurrent(fresh)[0].data, rtol=1e-3, atol=1e-6)
        g = rnn.viz.trace(fresh, fxs, ftargets).gradients()
        for series, norms in g.state_norms.items():
            strip = panel(doc, "strip", f"‖dL/d{series}‖")["runs"][i]
            assert_printed_equal([v for _, v in strip["values"]], norms)


def test_the_spectral_radius_of_a_gated_cell_is_its_largest_gate_blocks():
    W = np.zeros((8, 2))
    W[:2] = np.diag([0.3, -0.2])
    W[6:] = [[0.0, 2.0], [-2.0, 0.0]]  # eigenvalues ±2i
    assert rx.spectral_radius(W) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\(k n, n\)"):
        rx.spectral_radius(np.zeros((5, 2)))


def test_a_small_radius_makes_the_gradient_shrink_back_in_time_and_a_large_one_not():
    model, xs, targets = model_and_data(T=8, n=8)

    def last_step(logits):  # the loss of the last step only: no gradient enters on the way
        return F.cross_entropy(logits[-1], targets[-1], reduction="sum")
    doc = rx.document(rnn.viz.trace(model, xs, loss_fn=last_step), radii=(0.5, 1.0, 1.5))
    strips = panel(doc, "strip", "a<t>")["runs"]
    by_radius = {run["radius"]: [v for _, v in s["values"]]
                 for run, s in zip(doc["runs"], strips)}
    small = by_radius[0.5]
    assert all(a < b for a, b in zip(small, small[1:]))  # shrinks going back from t = T
    assert small[0] < 1e-2 * small[-1]
    ratios = [norms[0] / norms[-1] for _, norms in sorted(by_radius.items())]
    assert ratios == sorted(ratios) and ratios[-1] > 50 * ratios[0]


def test_the_model_keeps_its_weights_and_the_grad_of_its_own_run():
    model, xs, targets = model_and_data("lstm")
    before = {name: W.data.copy() for name, W in model.named_parameters()}
    rnn.viz.explore(rnn.viz.trace(model, xs, targets))
    grads = {name: W.grad.copy() for name, W in model.named_parameters()}
    rnn.viz.trace(model, xs, targets)
    for name, W in model.named_parameters():
        assert np.array_equal(W.data, before[name])
        np.testing.assert_allclose(grads[name], W.grad, rtol=1e-12, atol=1e-15)


def test_the_weights_are_put_back_when_a_run_fails(monkeypatch):
    model, xs, targets = model_and_data()
    run = rnn.viz.trace(model, xs, targets)
    before = model.W_aa.data.copy()
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of luck")
        return np.zeros((4, 4))
    monkeypatch.setattr(rx, "connectivity", failing)
    with pytest.raises(RuntimeError, match="out of luck"):
        rx.document(run)
    assert np.array_equal(model.W_aa.data, before)


# ---- connectivity -----------------------------------------------------------------------
def each_steps_loss_gradient(model, xs, targets):
    """(T, T) ‖∂L<t>/∂x<s>‖ by one backward from each L<t> on a fresh graph."""
    T, out = xs.shape[0], []
    for t in range(T):
        x = tg.tensor(xs, requires_grad=True)
        logits = model(x)[0]
        F.cross_entropy(logits[t], targets[t], reduction="sum").backward()
        out.append(np.linalg.norm(x.grad.reshape(T, -1), axis=1))
    return np.array(out)


@pytest.mark.parametrize("kind", KINDS)
def test_connectivity_is_each_steps_loss_gradient_and_zero_for_later_inputs(kind):
    doc, model, xs, targets = explored(kind, T=5, B=2)
    grid = panel(doc, "grid")
    expected = each_steps_loss_gradient(model, xs, targets)
    assert grid["rows"] == [f"L<{t}>" for t in range(1, 6)]
    assert grid["columns"] == [f"x<{s}>" for s in range(1, 6)]
    for row, want in zip(grid["values"], expected):
        assert_printed_equal(row, want)
    assert np.all(np.triu(expected, 1) == 0) and np.all(np.diag(expected) > 0)
    assert grid["runs"][doc["start"]]["values"] == grid["values"]


def test_a_bidirectional_models_loss_depends_on_later_inputs_too():
    model, xs, targets = model_and_data("gru", T=4, bidirectional=True)
    grid = rx.connectivity(model, xs, targets)
    assert np.all(grid[np.triu_indices(4, 1)] > 0)
    np.testing.assert_allclose(grid, each_steps_loss_gradient(model, xs, targets),
                               rtol=1e-10, atol=1e-14)


def test_connectivity_with_a_loss_fn_has_one_row_for_the_whole_loss():
    model, xs, targets = model_and_data(T=3)

    def last_step(logits):
        return F.cross_entropy(logits[-1], targets[-1], reduction="sum")
    doc = rx.document(rnn.viz.trace(model, xs, loss_fn=last_step), radii=())
    grid = panel(doc, "grid")
    assert grid["rows"] == ["L"] and len(grid["values"]) == 1


@settings(max_examples=10)
@given(kind=st.sampled_from(KINDS), T=st.integers(1, 3), B=st.integers(1, 2),
       seed=st.integers(0, 5))
def test_connectivity_matches_central_differences(kind, T, B, seed):
    model, xs, targets = model_and_data(kind, T=T, B=B, m=2, n=3, p=2, seed=seed)
    xs = xs + np.random.default_rng(seed).normal(0, 0.3, xs.shape)  # not only one-hot
    grid, eps = rx.connectivity(model, xs, targets), 1e-6

    def step_loss(x, t):
        with tg.no_grad():
            logits = model(tg.tensor(x))[0]
            return F.cross_entropy(logits[t], targets[t], reduction="sum").item()
    for t in range(T):
        numeric = np.zeros_like(xs)
        for i in np.ndindex(*xs.shape):
            up, down = xs.copy(), xs.copy()
            up[i] += eps
            down[i] -= eps
            numeric[i] = (step_loss(up, t) - step_loss(down, t)) / (2 * eps)
        np.testing.assert_allclose(grid[t], np.linalg.norm(numeric.reshape(T, -1), axis=1),
                                   rtol=1e-5, atol=1e-7)


# ---- the document and the page ----------------------------------------------------------
def test_time_runs_left_to_right_and_a_long_unroll_opens_with_its_steps_folded():
    doc, *_ = explored(T=3)
    assert doc["direction"] == "LR" and doc["fold"] == []
    doc, *_ = explored("lstm", T=12, radii=(), layers=2)
    assert len(doc["nodes"]) > rx.FOLD_ABOVE
    folded = [doc["groups"][g]["label"] for g in doc["fold"]]
    assert folded and all(label.startswith("t=") for label in folded)
    assert len(folded) == 2 * 12  # each layer's steps; the layers themselves stay open


def test_one_step_and_an_empty_batch_give_a_page():
    doc, *_ = explored(T=1, radii=(0.5,))
    assert len(panel(doc, "grid")["values"]) == 1
    doc, *_ = explored(B=0, T=3, radii=(0.5,))
    assert panel(doc, "grid")["values"] == [[0.0] * 3] * 3
    assert [v for _, v in panel(doc, "strip")["values"]] == [0.0] * 3


def test_the_page_is_one_file_with_the_document_in_it(tmp_path):
    model, xs, targets = model_and_data()
    page = rnn.viz.explore(rnn.viz.trace(model, xs, targets), tmp_path / "e.html")
    text = (tmp_path / "e.html").read_text(encoding="utf-8")
    assert "<script src" not in text and "http" not in text.split("<script", 1)[0].lower()
    assert json.loads(json.dumps(page.document, allow_nan=False))["start"] == 2
    assert "iframe" in page._repr_html_()


def test_bad_input_is_named_before_any_work(tmp_path):
    model, xs, targets = model_and_data()
    run = rnn.viz.trace(model, xs, targets)
    with pytest.raises(TypeError, match="rnn.viz.trace"):
        rnn.viz.explore(model)
    with pytest.raises(ValueError, match="radii"):
        rnn.viz.explore(run, radii=(-1.0,))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        rnn.viz.explore(run, tmp_path / "missing" / "e.html")
    model.W_aa.data = np.zeros((4, 4))
    with pytest.raises(ValueError, match="spectral radius 0.*radii=()"):
        rnn.viz.explore(rnn.viz.trace(model, xs, targets))
    assert rnn.viz.explore(rnn.viz.trace(model, xs, targets), radii=()).document["runs"]


# ---- python -m rnn explore --------------------------------------------------------------
def test_the_command_writes_the_page_and_exits_0(capsys, tmp_path):
    status = cli.main(["explore", "--model", "lstm", "--steps", "3", "--radii", "0.5", "1.5",
                       "--out", str(tmp_path / "x.html")])
    out, err = capsys.readouterr()
    assert status == 0 and not err
    assert out.strip().endswith(str(tmp_path / "x.html")) and len(out.splitlines()) == 1
    text = (tmp_path / "x.html").read_text(encoding="utf-8")
    doc = json.loads(text.split('id="tinygraph-document">')[1].split("</script>")[0])
    radii = [r["radius"] for r in doc["runs"]]
    assert len(radii) == 3 and {0.5, 1.5} < set(radii) and radii == sorted(radii)
    assert len([p for p in doc["panels"] if p["kind"] == "strip"]) == 2


@pytest.mark.parametrize("out, word", [("x.svg", ".html"), ("file/x.html", "not a folder"),
                                       ("folder", ".html")])
def test_a_bad_out_gives_one_line_and_status_2_before_any_work(capsys, tmp_path, monkeypatch,
                                                               out, word):
    (tmp_path / "file").write_text("a file, not a folder")
    (tmp_path / "folder").mkdir()
    monkeypatch.setattr(cli.viz, "trace", lambda *a, **k: pytest.fail("traced"))
    status = cli.main(["explore", "--out", str(tmp_path / out)])
    _, err = capsys.readouterr()
    assert status == 2 and len(err.strip().splitlines()) == 1 and word in err
    assert "Traceback" not in err


def test_the_command_refuses_a_negative_radius_and_an_elman_with_layers(capsys):
    assert cli.main(["explore", "--radii", "-1"]) == 2
    assert cli.main(["explore", "--layers", "2"]) == 2
    err = capsys.readouterr().err
    assert "--radii" in err and "--model rnn" in err and len(err.strip().splitlines()) == 2
