"""The explorer page in a real browser: Debian's chromium driven by playwright, pages
opened from file://. Every test fails on any console error or uncaught exception.

Skips (saying why) without the playwright package or a chromium executable
(/usr/bin/chromium, or the path in TINYGRAPH_CHROMIUM); .ci/run installs both and sets
TINYGRAPH_REQUIRE_BROWSER, which turns that skip into a failure.
"""
import copy
import os
import re

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import explore as ex
from explorer_cases import elman_loss, engine_order, printed

CHROMIUM = os.environ.get("TINYGRAPH_CHROMIUM", "/usr/bin/chromium")
try:
    from playwright import sync_api
    missing = None if os.path.exists(CHROMIUM) else (
        f"the browser tests need chromium at {CHROMIUM} (apt-get install chromium, or set "
        f"TINYGRAPH_CHROMIUM)")
except ImportError:
    missing = "the browser tests need playwright: pip install playwright"
if missing and os.environ.get("TINYGRAPH_REQUIRE_BROWSER"):  # CI (.ci/run) must run them
    pytest.fail(f"TINYGRAPH_REQUIRE_BROWSER is set, but {missing}", pytrace=False)
if missing:
    pytest.skip(missing, allow_module_level=True)

PARAMETERS = ["W_ax", "W_aa", "b_a", "W_ya", "b_y"]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, errors


def open_page(page, path, explorer, hash=""):
    explorer.save(path)
    page.goto(path.as_uri() + hash)
    page.wait_for_selector("body[data-ready=true]")
    return page


def step(page):
    return int(page.get_attribute("#counter", "data-step"))


def visible(page):
    return page.locator("#nodes g.node").count()


def current(page):
    return int(page.get_attribute("#current", "data-node"))


def ids_of(doc, names):
    return {n["label"]: n["id"] for n in doc["nodes"] if n["label"] in names}


def assert_sums_are_grad(page, doc, model):
    """The sums panel, read as printed, against each parameter's .grad."""
    digits = doc["digits"]["sums"]
    for name, i in ids_of(doc, PARAMETERS).items():
        grad = getattr(model, name).grad
        row = page.locator(f'#sums tr[data-leaf="{i}"]')
        values = row.locator(".sum-values").text_content().split()
        assert [printed(v, digits) for v in values] == [printed(g, digits) for g in grad.ravel()]
        assert printed(row.locator(".sum-norm").text_content(), digits) == printed(
            np.linalg.norm(grad), digits)


# ---- stepping ---------------------------------------------------------------------------
def test_stepping_through_every_step_follows_the_engine_and_ends_at_grad(page, tmp_path):
    loss, model = elman_loss(T=3)
    order = engine_order(loss)
    explorer = tg.viz.explore(loss)
    open_page(page, tmp_path / "e.html", explorer)
    assert step(page) == 0
    seen = []
    for _ in order:
        page.keyboard.press("ArrowRight")
        seen.append(current(page))
    assert seen == order
    page.keyboard.press("ArrowRight")  # past the end: stays at the end
    assert step(page) == len(order)
    assert_sums_are_grad(page, explorer.document, model)


def test_each_step_shows_what_arrived_and_what_it_sends_to_each_parent(page, tmp_path):
    x = tg.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="x")
    y = x * 2.0
    y.name = "y"
    loss = y.sum()
    loss.name = "loss"
    explorer = tg.viz.explore(loss)
    open_page(page, tmp_path / "e.html", explorer, "#step=2")  # root first, then y = x * 2
    assert "y = mul" in page.text_content("#current")
    assert "shape (2, 3), ‖·‖ 2.449" in page.text_content("#step")  # ones(2, 3) arrived
    sends = page.locator("#step tr[data-parent]")
    assert sends.count() == 2  # x and the constant 2.0
    assert "‖·‖ 4.899" in sends.nth(0).text_content()  # 2 * ones(2, 3) to x
    assert "needs no gradient" in sends.nth(1).text_content()
    assert page.locator("#step svg.heat").nth(0).locator("rect").count() == 6


def test_previous_start_end_and_the_buttons_move_the_step(page, tmp_path):
    loss, _ = elman_loss(T=2)
    explorer = tg.viz.explore(loss)
    n = len(explorer.document["runs"][0]["steps"])
    open_page(page, tmp_path / "e.html", explorer)
    page.keyboard.press("End")
    assert step(page) == n
    page.keyboard.press("ArrowLeft")
    assert step(page) == n - 1
    page.keyboard.press("Home")
    assert step(page) == 0
    page.keyboard.press("ArrowLeft")
    assert step(page) == 0
    page.click("#next"), page.click("#next")
    assert step(page) == 2
    page.click("#prev")
    assert step(page) == 1
    page.click("#last")
    assert step(page) == n
    page.click("#first")
    assert step(page) == 0


def test_the_step_is_kept_in_the_url(page, tmp_path):
    loss, _ = elman_loss(T=3)
    order = engine_order(loss)
    open_page(page, tmp_path / "e.html", tg.viz.explore(loss), "#step=5")
    assert step(page) == 5 and current(page) == order[4]
    page.keyboard.press("ArrowRight")
    assert page.evaluate("location.hash") == "#step=6"
    page.evaluate("location.hash = '#step=2'")
    page.wait_for_function("document.getElementById('counter').dataset.step === '2'")
    assert current(page) == order[1]
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert step(page) == 2


def test_play_advances_the_steps_and_pause_stops_them(page, tmp_path):
    loss, _ = elman_loss(T=12)
    explorer = tg.viz.explore(loss)
    n = len(explorer.document["runs"][0]["steps"])
    open_page(page, tmp_path / "e.html", explorer)
    page.select_option("#speed", "100")
    page.keyboard.press(" ")
    page.wait_for_function("document.getElementById('play').textContent === 'pause'")
    page.wait_for_function("+document.getElementById('counter').dataset.step >= 5")
    page.keyboard.press(" ")  # (a busy page may take the key after a few more steps)
    page.wait_for_function("document.getElementById('play').textContent === 'play'")
    paused = step(page)
    assert paused < n
    page.wait_for_timeout(200)
    assert step(page) == paused
    page.click("#play")
    page.wait_for_function(f"+document.getElementById('counter').dataset.step === {n}")
    page.wait_for_function("document.getElementById('play').textContent === 'play'")


# ---- the graph --------------------------------------------------------------------------
def test_folding_and_unfolding_a_time_step_changes_the_visible_nodes(page, tmp_path):
    loss, _ = elman_loss(T=3)
    explorer = tg.viz.explore(loss)
    doc = explorer.document
    open_page(page, tmp_path / "e.html", explorer)
    everything = visible(page)
    assert everything == len(doc["nodes"])
    t2 = next(g for g in doc["groups"] if g["label"] == "t=2")
    page.click(f'#frames g.frame[data-frame="{t2["id"]}"] text')
    assert visible(page) == everything - t2["size"] + 1
    box = page.locator(f'#nodes g.node[data-group="{t2["id"]}"]')
    assert box.count() == 1 and "t=2" in box.text_content()
    box.click()
    assert visible(page) == everything
    page.click("#fold-all")
    assert visible(page) == everything - sum(g["size"] for g in doc["groups"]) + 3
    page.click("#unfold-all")
    assert visible(page) == everything


def test_a_folded_box_counts_the_visited_nodes_inside_it(page, tmp_path):
    loss, _ = elman_loss(T=3)
    explorer = tg.viz.explore(loss)
    open_page(page, tmp_path / "e.html", explorer)
    page.click("#fold-all")
    page.keyboard.press("End")
    for g in explorer.document["groups"]:
        text = page.locator(f'#nodes g.node[data-group="{g["id"]}"]').text_content()
        assert re.search(r"visited (\d+) / \1", text), text


def test_boxes_never_overlap_in_either_direction(page, tmp_path):
    loss, _ = elman_loss(T=4)
    open_page(page, tmp_path / "e.html", tg.viz.explore(loss))
    boxes_js = """[...document.querySelectorAll('#nodes g.node rect')].map(r => {
        const b = r.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; })"""
    for _ in range(2):
        boxes = page.evaluate(boxes_js)
        assert len(boxes) == visible(page) > 20
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert a[2] <= b[0] + 0.5 or b[2] <= a[0] + 0.5 or a[3] <= b[1] + 0.5 \
                    or b[3] <= a[1] + 0.5, (a, b)
        page.click("#direction")
        page.click("#unfold-all")  # (and zoom out far enough to see every box)
        page.evaluate("(() => { const s = document.getElementById('graph'); "
                      "const v = s.viewBox.baseVal; s.setAttribute('viewBox', "
                      "`${v.x - 5000} ${v.y - 5000} ${v.width + 10000} ${v.height + 10000}`); })()")


def test_hovering_a_node_shows_its_value_and_gradient_with_a_heatmap(page, tmp_path):
    loss, model = elman_loss(T=3)
    explorer = tg.viz.explore(loss)
    W_aa = ids_of(explorer.document, ["W_aa"])["W_aa"]
    n = len(explorer.document["runs"][0]["steps"])
    open_page(page, tmp_path / "e.html", explorer, f"#step={n}")
    page.evaluate("document.getElementById('graph')"
                  ".setAttribute('viewBox', '-3000 -3000 8000 8000')")  # every box in view
    page.hover(f'#nodes g.node[data-node="{W_aa}"]')
    details = page.text_content("#details")
    assert "W_aa" in details and "shape (4, 4)" in details
    assert f"‖·‖ {np.linalg.norm(model.W_aa.data):.4g}" in details  # the forward value
    assert printed(np.linalg.norm(model.W_aa.grad), 8) in [
        printed(v, 8) for v in re.findall(r"‖·‖ ([-0-9.e+]+)", details)]
    assert page.locator("#details svg.heat").count() == 2  # value and gradient, 4 x 4 each
    assert page.locator("#details svg.heat").nth(0).locator("rect").count() == 16
    page.mouse.move(5, 5)
    assert "Hover or click" in page.text_content("#details")
    page.click(f'#nodes g.node[data-node="{W_aa}"]')  # a click keeps it shown
    page.mouse.move(5, 5)
    assert "W_aa" in page.text_content("#details")


def test_wheel_zooms_and_dragging_pans(page, tmp_path):
    loss, _ = elman_loss(T=3)
    open_page(page, tmp_path / "e.html", tg.viz.explore(loss))
    view = lambda: [float(v) for v in page.get_attribute("#graph", "viewBox").split()]  # noqa: E731
    before = view()
    page.mouse.move(400, 400)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"document.getElementById('graph').viewBox.baseVal.width < {before[2]}")
    zoomed = view()
    page.mouse.move(300, 300)
    page.mouse.down()
    page.mouse.move(400, 350)
    page.mouse.up()
    panned = view()
    assert panned[2] == zoomed[2] and panned[0] < zoomed[0] and panned[1] < zoomed[1]
    page.click("#fit")
    assert view() == before


def test_a_long_unroll_opens_folded_and_still_ends_at_grad(page, tmp_path):
    loss, model = elman_loss(T=200)
    explorer = tg.viz.explore(loss)
    doc = explorer.document
    open_page(page, tmp_path / "e.html", explorer)
    outside = sum(1 for n in doc["nodes"] if n["group"] is None)
    assert visible(page) == 200 + outside < len(doc["nodes"]) / 4
    page.keyboard.press("End")
    assert step(page) == len(doc["runs"][0]["steps"])
    assert_sums_are_grad(page, doc, model)


# ---- what a document may add: panels and several runs (the rnn explorer's hook) ---------
def test_a_documents_panels_fill_in_as_the_steps_pass_and_runs_have_a_slider(page, tmp_path):
    loss, model = elman_loss(T=3, seed=0)
    doc = ex.document(loss)
    other, other_model = elman_loss(T=3, seed=1)
    second = ex.document(other)["runs"][0]
    second["label"] = "seed 1"
    doc["runs"].append(second)
    n = len(doc["runs"][0]["steps"])
    doc["panels"].append({"kind": "table", "title": "Σ_t", "columns": ["t=1", "t=2"],
                          "rows": [{"label": "W_aa", "cells": [[1, 0.5], [n, 0.25]]}]})
    doc["panels"].append({"kind": "strip", "title": "‖dL/da<t>‖", "labels": ["a", "b"],
                          "values": [[2, 1.0], [n, 10.0]],
                          "runs": [{}, {"values": [[1, 3.0], [1, 30.0]]}]})
    open_page(page, tmp_path / "e.html", ex.Explorer(copy.deepcopy(doc)))
    cells = page.locator('#panels .panel[data-kind="table"] td')
    assert [cells.nth(i).text_content() for i in range(2)] == ["·", "·"]
    bars = page.locator('#panels .panel[data-kind="strip"] rect')
    assert [bars.nth(i).get_attribute("height") for i in range(2)] == ["0", "0"]
    page.keyboard.press("ArrowRight")
    assert [cells.nth(i).text_content() for i in range(2)] == ["0.5000", "·"]
    page.keyboard.press("End")
    assert [cells.nth(i).text_content() for i in range(2)] == ["0.5000", "0.2500"]
    assert page.is_visible("#run-box")
    first_norm = page.locator(".sum-norm").first.text_content()
    page.locator("#run").fill("1")
    assert page.text_content("#run-label") == "seed 1"
    assert page.evaluate("location.hash") == f"#step={n}&run=1"
    assert page.locator(".sum-norm").first.text_content() != first_norm
    assert_sums_are_grad(page, doc, other_model)
    page.keyboard.press("Home")
    assert float(bars.nth(0).get_attribute("height")) == 0
    page.keyboard.press("ArrowRight")  # in run 1, both strip values are known at step 1
    heights = [float(bars.nth(i).get_attribute("height")) for i in range(2)]
    assert heights[1] > heights[0] > 0


# ---- odd values and the notebook's iframe -----------------------------------------------
def test_zero_size_0_d_and_nan_values_show_without_errors(page, tmp_path):
    empty = tg.tensor(np.ones((0, 3)), requires_grad=True, name="empty")
    scalar = tg.tensor(np.array(-2.0), requires_grad=True, name="scalar")
    with np.errstate(invalid="ignore"):
        loss = empty.sum() + scalar.log() * scalar  # log(-2): nan, and so is its gradient
    explorer = tg.viz.explore(loss)
    ids = ids_of(explorer.document, ["empty", "scalar"])
    open_page(page, tmp_path / "e.html", explorer)
    page.keyboard.press("End")
    page.dispatch_event(f'#nodes g.node[data-node="{ids["empty"]}"]', "click")
    details = page.text_content("#details")
    assert "shape (0, 3), ‖·‖ 0.000, min –, max –" in details
    page.dispatch_event(f'#nodes g.node[data-node="{ids["scalar"]}"]', "click")
    details = page.text_content("#details")
    assert "shape (), ‖·‖ 2.000, min -2.000, max -2.000" in details  # the value
    assert "‖·‖ NaN" in details  # the gradient
    empty_row = page.text_content(f'#sums tr[data-leaf="{ids["empty"]}"]')
    assert "‖·‖ 0.0000000" in empty_row


def test_the_notebook_iframe_runs_the_page(page, tmp_path):
    loss, _ = elman_loss(T=2)
    explorer = tg.viz.explore(loss)
    n = len(explorer.document["runs"][0]["steps"])
    (tmp_path / "notebook.html").write_text(
        f"<!DOCTYPE html><html><body>{explorer._repr_html_()}</body></html>", encoding="utf-8")
    page.goto((tmp_path / "notebook.html").as_uri())
    frame = page.frame_locator("iframe")
    frame.locator("body[data-ready=true]").wait_for(state="attached")
    frame.locator("#last").click()
    assert frame.locator("#counter").get_attribute("data-step") == str(n)
    frame.locator("#prev").click()
    frame.locator("#graph").click(position={"x": 5, "y": 5})  # the keys go to the frame
    page.keyboard.press("ArrowLeft")
    assert frame.locator("#counter").get_attribute("data-step") == str(n - 2)
    # the step stays out of the address there: "#step=" would load the notebook into the frame
    assert page.url == (tmp_path / "notebook.html").as_uri()
    assert [f.url for f in page.frames] == [page.url, "about:srcdoc"]
