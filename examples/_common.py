"""What the examples share: where their figures go, the quick mode, writing figures.

Every example takes ``--out DIR`` (or the environment variable ``EXAMPLES_OUT``) for its
figures, default ``examples/out/``, and ``--quick`` (or ``EXAMPLES_QUICK=1``) for
smaller sizes, which the smoke test uses. Figures are Graphviz drawings, written as
.svg when the ``dot`` executable is installed and always as .dot, plus one line chart
written as SVG by hand (no plotting library needed).
"""
import argparse
import html
import math
import os
import pathlib
import shutil

import tinygraph as tg

HERE = pathlib.Path(__file__).resolve().parent


def setup(description):
    """Parse ``--out`` and ``--quick``; returns (output directory, quick)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=os.environ.get("EXAMPLES_OUT", HERE / "out"),
                        help="directory for the figures (default: examples/out, or "
                             "$EXAMPLES_OUT)")
    parser.add_argument("--quick", action="store_true",
                        default=os.environ.get("EXAMPLES_QUICK", "") not in ("", "0"),
                        help="smaller sizes, for the smoke test (or EXAMPLES_QUICK=1)")
    args = parser.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return out, args.quick


def save_graph(digraph, out, name):
    """Write ``name``.dot, and ``name``.svg when Graphviz's dot is installed; returns
    the path of the best file written."""
    dot_path = tg.viz.render(digraph, out / f"{name}.dot")
    if shutil.which("dot") is None:
        print(f"  figure: {dot_path} (install Graphviz to get the SVG)")
        return dot_path
    svg_path = tg.viz.render(digraph, out / f"{name}.svg")
    print(f"  figure: {svg_path}")
    return svg_path


COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d",
          "#666666")


def line_chart(series, path, title, xlabel, ylabel, width=720, height=420):
    """A line chart with a log10 y axis as a standalone SVG file.

    ``series``: {label: (xs, ys)} with positive ys; one colour per series, a legend,
    tick marks at the powers of ten. Returns the path.
    """
    left, right, top, bottom = 70, 190, 40, 50
    xs_all = [x for xs, _ in series.values() for x in xs]
    logs = [math.log10(y) for _, ys in series.values() for y in ys if y > 0]
    x0, x1 = min(xs_all), max(xs_all)
    y0, y1 = math.floor(min(logs)), math.ceil(max(logs))
    y1 = y1 if y1 > y0 else y0 + 1

    def px(x):
        return left + (x - x0) / ((x1 - x0) or 1) * (width - left - right)

    def py(y):
        return top + (y1 - math.log10(y)) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">'
             f'{html.escape(title)}</text>']
    step = max(1, (y1 - y0) // 8)
    for power in range(y0, y1 + 1, step):
        y = py(10.0 ** power)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#dddddd"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{power}</text>')
    for x in sorted(set(xs_all)):
        if len(set(xs_all)) <= 12 or x in (x0, x1) or x % 5 == 0:
            parts.append(f'<text x="{px(x):.1f}" y="{height - bottom + 16}" '
                         f'text-anchor="middle">{x}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" '
                 f'text-anchor="middle">{html.escape(xlabel)}</text>')
    parts.append(f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {(top + height - bottom) / 2})">'
                 f'{html.escape(ylabel)}</text>')
    for i, (label, (xs, ys)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys) if y > 0)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" '
                     f'points="{points}"/>')
        y = top + 18 * i
        parts.append(f'<line x1="{width - right + 12}" x2="{width - right + 32}" y1="{y}" '
                     f'y2="{y}" stroke="{color}" stroke-width="3"/>')
        parts.append(f'<text x="{width - right + 38}" y="{y + 4}">{html.escape(label)}</text>')
    parts.append("</svg>")
    path = pathlib.Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    print(f"  figure: {path}")
    return path
