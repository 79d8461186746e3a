"""How long drawing the unrolled Elman graph takes: building the DOT, and laying it out
with Graphviz's ``dot`` into SVG.

    python -m benchmarks.draw

Targets (issue 5, benchmarks rather than tests): build + render T = 10 in under 0.5 s
and T = 100 in under 2 s; building the DOT of a 1,000-step graph without recursion in a
second or two. Each figure is the median of a few runs, after one warm-up run.
"""
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

import rnn
import rnn.viz

REPEATS = 3


def _traced(steps):
    model = rnn.ElmanRNN(input_size=8, hidden_size=16, output_size=4)
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((steps, 2, 8))
    targets = rng.integers(0, 4, size=(steps, 2))
    return rnn.viz.trace(model, xs, targets)


def _median_seconds(work):
    work()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _build(run, **options):
    return lambda: run.to_dot(**options).source


def _build_and_render(run, **options):
    def work():
        source = run.to_dot(**options).source
        subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True,
                       check=True)
    return work


def main():
    has_dot = shutil.which("dot") is not None
    rows = []
    for steps, options, label in [
            (10, {}, "T = 10"),
            (100, {}, "T = 100 (first and last 5 steps drawn)"),
            (100, {"elide": False}, "T = 100, every step (one copy of a weight per use)")]:
        run = _traced(steps)
        build = _median_seconds(_build(run, **options))
        total = _median_seconds(_build_and_render(run, **options)) if has_dot else None
        rows.append((label, build, total))
    run = _traced(1000)
    rows.append(("T = 1,000, every step, build only", _median_seconds(
        _build(run, elide=False, detail="ops")), None))

    print("| drawing | build DOT s | build + dot -Tsvg s |")
    print("| --- | ---: | ---: |")
    for label, build, total in rows:
        rendered = "n/a" if total is None else f"{total:.3f}"
        print(f"| {label} | {build:.3f} | {rendered} |")
    if not has_dot:
        print("(Graphviz's dot is not installed: render times were not measured)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
