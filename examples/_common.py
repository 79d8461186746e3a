"""What the examples share: where their figures go, the quick mode, writing figures.

Every example takes ``--out DIR`` (or the environment variable ``EXAMPLES_OUT``) for its
figures, default ``examples/out/``, and ``--quick`` (or ``EXAMPLES_QUICK=1``) for
smaller sizes, which the smoke test uses. Figures are Graphviz drawings, written as
.svg when the ``dot`` executable is installed and always as .dot, plus line charts
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


def round_ticks(lo, hi, most=8):
    """Round numbers (1, 2 or 5 times a power of ten apart) from at or below ``lo`` to at
    or above ``hi``, at most ``most`` + 1 of them."""
    span = (hi - lo) or abs(hi) or 1.0
    power = 10.0 ** math.floor(math.log10(span / most))
    step = next(m * power for m in (1, 2, 5, 10) if span / (m * power) <= most)
    first, last = math.floor(lo / step), math.ceil(hi / step)
    return [k * step for k in range(first, last + 1)]


def line_chart(series, path, title, xlabel, ylabel, log_y=True, width=720, height=420):
    """A line chart as a standalone SVG file.

    ``series``: {label: (xs, ys)}; one colour per series, a legend. With ``log_y`` the
    y axis is log10 (positive ys, ticks at the powers of ten), otherwise linear (ticks
    at round numbers, a darker line at y = 0). Returns the path.
    """
    left, right, top, bottom = 70, 190, 40, 50
    xs_all = [x for xs, _ in series.values() for x in xs]
    x0, x1 = min(xs_all), max(xs_all)
    if log_y:
        scale = math.log10
        logs = [math.log10(y) for _, ys in series.values() for y in ys if y > 0]
        y0, y1 = math.floor(min(logs)), math.ceil(max(logs))
        y1 = y1 if y1 > y0 else y0 + 1
        y_ticks = [(10.0 ** power, f"1e{power}")
                   for power in range(y0, y1 + 1, max(1, (y1 - y0) // 8))]
    else:
        scale = float
        ticks = round_ticks(min(y for _, ys in series.values() for y in ys),
                            max(y for _, ys in series.values() for y in ys))
        y0, y1 = ticks[0], ticks[-1]
        y_ticks = [(y, f"{y:g}") for y in ticks]

    def px(x):
        return left + (x - x0) / ((x1 - x0) or 1) * (width - left - right)

    def py(y):
        return top + (y1 - scale(y)) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="Helvetica, Arial, sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">'
             f'{html.escape(title)}</text>']
    for tick, label in y_ticks:
        y = py(tick)
        grid = "#999999" if label == "0" else "#dddddd"
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{grid}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    if all(float(x).is_integer() for x in xs_all):  # time steps: label each, or every 5th
        x_ticks = [(x, x) for x in sorted(set(xs_all))
                   if len(set(xs_all)) <= 12 or x in (x0, x1) or x % 5 == 0]
    else:
        x_ticks = [(x, f"{x:g}") for x in round_ticks(x0, x1) if x0 <= x <= x1]
    for x, label in x_ticks:
        parts.append(f'<text x="{px(x):.1f}" y="{height - bottom + 16}" '
                     f'text-anchor="middle">{label}</text>')
    parts.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" '
                 f'text-anchor="middle">{html.escape(xlabel)}</text>')
    parts.append(f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
                 f'transform="rotate(-90 16 {(top + height - bottom) / 2})">'
                 f'{html.escape(ylabel)}</text>')
    for i, (label, (xs, ys)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        points = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys)
                          if y > 0 or not log_y)
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
