"""Writes docs/explorer.png, the README's picture of the explorer: the notes' Elman RNN
over four steps, at the step where t=3's cell sends W_aa its share, with steps 1 and 2 folded.

    python docs/explorer_screenshot.py      # needs playwright and /usr/bin/chromium
"""
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

import rnn  # noqa: E402
import tinygraph as tg  # noqa: E402
from tinygraph import functional as F  # noqa: E402


def main(out=ROOT / "docs" / "explorer.png"):
    tg.manual_seed(0)
    model = rnn.ElmanRNN(input_size=3, hidden_size=4, output_size=3)
    xs = np.eye(3)[[0, 2, 1, 0]][:, None, :]
    logits, _ = model(tg.tensor(xs))
    loss = F.cross_entropy(logits.reshape(-1, 3), np.array([2, 1, 0, 1]), reduction="sum")
    loss.name = "loss"
    page = tg.viz.explore(loss, title="Elman RNN, T = 4: backward, step by step")
    doc = page.document
    W_aa = next(n["id"] for n in doc["nodes"] if n["label"] == "W_aa")
    t3 = {g["id"] for g in doc["groups"] if g["label"] == "t=3"}
    step = next(k + 1 for k, s in enumerate(doc["runs"][0]["steps"])
                if doc["nodes"][s["node"]]["group"] in t3 and any(p == W_aa for p, _ in s["sends"]))
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = page.save(pathlib.Path(tmp) / "explorer.html")
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        view = browser.new_page(viewport={"width": 1400, "height": 860})
        view.goto(f"{path.as_uri()}#step={step}")
        view.wait_for_selector("body[data-ready=true]")
        for label in ("t=1", "t=2"):  # folded into one box each
            group = next(g["id"] for g in doc["groups"] if g["label"] == label)
            view.dispatch_event(f'#frames g.frame[data-frame="{group}"] text', "click")
        view.dispatch_event(f'#nodes g.node[data-node="{W_aa}"]', "click")  # its details
        view.evaluate("""() => {  // from the weights down to the node being visited
            const s = tinygraphExplorer.state, list = s.layout.list;
            const steps = tinygraphExplorer.document.runs[0].steps;
            const cur = s.layout.reps.get('n' + steps[s.step - 1].node);
            const xs = list.map((r) => r.x), y0 = Math.min(...list.map((r) => r.y)) - 60;
            const box = document.getElementById('graph').getBoundingClientRect();
            const h = cur.y + 120 - y0, w = h * box.width / box.height;
            document.getElementById('graph').setAttribute('viewBox',
                `${(Math.min(...xs) + Math.max(...xs)) / 2 - w / 2} ${y0} ${w} ${h}`); }""")
        view.screenshot(path=str(out))
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
