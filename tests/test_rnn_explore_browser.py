"""rnn.viz.explore's page in a real browser (chromium and playwright, as in
test_explore_browser.py, whose fixtures fail a test on any console error and whose
module skips, saying why, without chromium): the slider over the spectral radii moves
the strips and the connectivity grid, stepping fills the Σ_t tables, time runs left
to right."""
import importlib

import numpy as np
import pytest

import rnn
from explorer_cases import printed
from test_explore_browser import browser, open_page, page, step  # noqa: F401 (fixtures)
from test_rnn_explore import model_and_data

rx = importlib.import_module("rnn.viz.explore")


def explorer(kind="elman", T=4, radii=rx.RADII, **sizes):
    model, xs, targets = model_and_data(kind, T=T, **sizes)
    return rnn.viz.explore(rnn.viz.trace(model, xs, targets), radii=radii), model


def panel_locator(page, doc, kind, title_part=""):
    i = next(i for i, p in enumerate(doc["panels"])
             if p["kind"] == kind and title_part in p["title"])
    return page.locator("#panels .panel").nth(i)


def bar_titles(page, doc, series="a<t>"):
    bars = panel_locator(page, doc, "strip", f"‖dL/d{series}‖").locator("rect title")
    return [bars.nth(i).text_content() for i in range(bars.count())]


def test_the_page_opens_on_the_models_own_run_and_the_slider_changes_the_strip(page, tmp_path):
    page_, _ = explorer(T=5)
    doc = page_.document
    open_page(page, tmp_path / "e.html", page_)
    assert page.is_visible("#run-box")
    assert page.text_content("#run-label") == doc["runs"][doc["start"]]["label"]
    page.keyboard.press("End")
    own = bar_titles(page, doc)
    assert [title.split(": ")[0] for title in own] == [f"a<{t}>" for t in range(1, 6)]
    assert [printed(title.split(": ")[1], 4) for title in own] == [
        printed(v, 4) for _, v in strip_values(doc, doc["start"])]
    strip = panel_locator(page, doc, "strip", "a<t>")
    page.locator("#run").fill("0")  # ρ(W_aa) = 0.5
    assert page.text_content("#run-label") == "ρ(W_aa) = 0.5"
    small = bar_titles(page, doc)
    assert small != own and all("not yet" not in t for t in small)
    heights = [float(strip.locator("rect").nth(i).get_attribute("height")) for i in range(5)]
    assert all(h > 0 for h in heights)
    page.locator("#run").fill(str(len(doc["runs"]) - 1))  # ρ(W_aa) = 1.5
    assert page.text_content("#run-label") == "ρ(W_aa) = 1.5"
    assert bar_titles(page, doc) not in (own, small)


def strip_values(doc, run, series="a<t>"):
    p = next(p for p in doc["panels"] if p["kind"] == "strip" and series in p["title"])
    return p["runs"][run]["values"]


def test_stepping_fills_the_tables_one_time_step_at_a_time(page, tmp_path):
    page_, model = explorer(T=4)
    doc = page_.document
    open_page(page, tmp_path / "e.html", page_)
    W_aa = panel_locator(page, doc, "table", "dL/dW_aa =")
    rows = W_aa.locator("tr")
    norm_of = lambda r: rows.nth(r).locator("td").first.text_content()  # noqa: E731
    assert [norm_of(r) for r in range(1, 6)] == ["·"] * 5  # rows t=1..4 and Σ_t
    cells = next(p for p in doc["panels"] if p["title"].startswith("dL/dW_aa"))["rows"]
    arrive = [row["cells"][0][0] for row in cells]
    page.evaluate(f"window.tinygraphExplorer.go({arrive[3]})")  # t = 4 arrives first
    assert norm_of(4) != "·" and norm_of(1) == "·" and norm_of(5) == "·"
    page.keyboard.press("End")
    assert "·" not in [norm_of(r) for r in range(1, 6)]
    assert printed(norm_of(5), 4) == printed(np.linalg.norm(model.W_aa.grad), 4)
    assert step(page) == len(doc["runs"][doc["start"]]["steps"])


def test_the_connectivity_grid_is_lower_triangular_and_follows_the_slider(page, tmp_path):
    page_, _ = explorer(T=4)
    doc = page_.document
    open_page(page, tmp_path / "e.html", page_)
    grid = panel_locator(page, doc, "grid")
    cells = grid.locator("td")
    assert cells.count() == 16
    titles = [cells.nth(i).get_attribute("title") for i in range(16)]
    assert titles[1] == "L<1> / x<2>: 0.000" and titles[4].startswith("L<2> / x<1>: ")
    colours = lambda: [cells.nth(i).get_attribute("style") for i in range(16)]  # noqa: E731
    own = colours()
    assert all("0.000)" in own[4 * t + s] for t in range(4) for s in range(t + 1, 4))
    assert all("0.000)" not in own[4 * t + s] for t in range(4) for s in range(t + 1))
    page.locator("#run").fill("0")
    assert colours() != own


def test_time_steps_run_left_to_right(page, tmp_path):
    page_, _ = explorer(T=4, radii=())
    doc = page_.document
    open_page(page, tmp_path / "e.html", page_)
    assert not page.is_visible("#run-box")  # one run: no slider
    lefts = []
    for t in range(1, 5):
        g = next(g for g in doc["groups"] if g["label"] == f"t={t}")
        box = page.locator(f'#frames g.frame[data-frame="{g["id"]}"] rect').bounding_box()
        lefts.append(box["x"])
    assert lefts == sorted(lefts) and lefts[0] < lefts[-1]


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_the_gated_and_layered_models_pages_step_to_the_end(page, tmp_path, kind):
    page_, _ = explorer(kind, T=3, radii=(0.5, 1.5))
    doc = page_.document
    open_page(page, tmp_path / "e.html", page_)
    page.keyboard.press("End")
    strips = page.locator('#panels .panel[data-kind="strip"]')
    assert strips.count() == (2 if kind == "lstm" else 1)
    assert all("not yet" not in t for t in bar_titles(page, doc))
    if kind == "lstm":
        assert len(bar_titles(page, doc, "c<t>")) == 3
    page.locator("#run").fill("0")
    assert "·" not in page.text_content('#panels .panel[data-kind="table"] td')


def test_a_long_unroll_opens_with_its_steps_folded(page, tmp_path):
    page_, _ = explorer(T=40, radii=(0.5,))
    doc = page_.document
    open_page(page, tmp_path / "e.html", page_)
    outside = sum(1 for n in doc["nodes"] if n["group"] is None)
    assert page.locator("#nodes g.node").count() == 40 + outside
    page.keyboard.press("End")
    assert "not yet" not in " ".join(bar_titles(page, doc))
