"""The explorer page of an Elman RNN: how big it is, and how soon headless chromium
can use it.

    python -m benchmarks.explorer

Goal (issue 16, a benchmark rather than a test): T = 100 in at most 2 MB and
interactive in under 1 s; T = 1,000 still opens, its steps folded. "Interactive" is
the page's own clock (``performance.now()`` since navigation started) when its script
has parsed the document, laid out the graph and drawn step 0: the controls answer from
then on. Each time is the median of a few loads after one warm-up. Needs playwright
and chromium (/usr/bin/chromium, or TINYGRAPH_CHROMIUM); without them only the sizes
are printed.
"""
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rnn
import tinygraph as tg
from tinygraph import functional as F

REPEATS = 3
CHROMIUM = os.environ.get("TINYGRAPH_CHROMIUM", "/usr/bin/chromium")


def elman_loss(steps):
    """The drawing benchmark's network: m = 8, n = 16, p = 4, batch 2, summed loss."""
    tg.manual_seed(0)
    model = rnn.ElmanRNN(input_size=8, hidden_size=16, output_size=4)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((steps, 2, 8))
    targets = rng.integers(0, 4, size=(steps, 2))
    logits, _ = model(tg.tensor(xs))
    return F.cross_entropy(logits.reshape(-1, 4), targets.reshape(-1), reduction="sum")


def measure_page(browser, path):
    """(ms until interactive, ms for one step, ms to unfold every scope) as medians."""
    ready, stepping, unfolding = [], [], []
    for i in range(REPEATS + 1):
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready=true]", timeout=120_000)
        times = page.evaluate("""() => {
            const e = window.tinygraphExplorer, n = e.document.runs[0].steps.length;
            let t = performance.now(); e.go(n); e.go(n - 1);
            const step = (performance.now() - t) / 2;
            t = performance.now(); e.state.folded.clear(); e.redraw();
            return [e.readyAt, step, performance.now() - t]; }""")
        page.close()
        if errors:
            raise RuntimeError(f"{path.name}: {errors[0]}")
        if i:  # the first load warms the browser's caches
            for column, value in zip((ready, stepping, unfolding), times):
                column.append(value)
    return [statistics.median(c) for c in (ready, stepping, unfolding)]


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for steps in (10, 100, 1000):
            loss = elman_loss(steps)
            start = time.perf_counter()
            page = tg.viz.explore(loss, Path(tmp) / f"elman-{steps}.html")
            build = time.perf_counter() - start
            doc = page.document
            size = (Path(tmp) / f"elman-{steps}.html").stat().st_size
            rows.append([steps, len(doc["nodes"]), len(doc["runs"][0]["steps"]),
                         "folded" if doc["fold"] else "unfolded", size / 1e6, build])
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            sync_playwright = None
        if sync_playwright is None or not os.path.exists(CHROMIUM):
            print("(playwright or chromium missing: the page was not opened)")
        else:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                for row in rows:
                    row += measure_page(browser, Path(tmp) / f"elman-{row[0]}.html")
                browser.close()

    print("| T | nodes | steps | opens | page MB | explore() s | interactive ms "
          "| one step ms | unfold all ms |")
    print("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for T, nodes, steps, opens, mb, build, *browser in rows:
        measured = " | ".join(f"{v:.0f}" for v in browser) if browser else "n/a | n/a | n/a"
        print(f"| {T:,} | {nodes:,} | {steps:,} | {opens} | {mb:.2f} | {build:.2f} | {measured} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
