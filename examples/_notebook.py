"""The lessons as notebooks: what lets one file be both a script and a notebook.

Each lesson is a jupytext percent-format file: ``# %% [markdown]`` cells hold the prose
and ``# %%`` cells the code, so ``python examples/03_rnn_cell.py`` runs it as a script
and ``jupytext --to notebook examples/03_rnn_cell.py`` (or Jupyter with jupytext) opens
it as a notebook. The same code runs both ways; two things differ in a notebook:

* the kernel's command line is the kernel's, not the lesson's, so ``setup`` reads the
  output folder and the quick mode from ``EXAMPLES_OUT`` and ``EXAMPLES_QUICK`` only;
* a figure is written as in the script and also returned, so that as the last
  expression of a cell it shows inline as SVG (a script drops the value).
"""
import pathlib
import sys

import tinygraph as tg
from _common import line_chart, save_graph
from _common import setup as _script_setup


def in_notebook():
    """True inside a Jupyter kernel (IPython itself is never imported here)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def setup(description):
    """``_common.setup``: (output directory, quick). In a notebook the kernel's own
    arguments are not parsed (argparse would refuse them), only the environment."""
    if not in_notebook():
        return _script_setup(description)
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        return _script_setup(description)
    finally:
        sys.argv = argv


def figure(digraph, out, name):
    """Write a Graphviz figure as ``save_graph`` does (``name``.dot, and .svg with
    Graphviz's dot) and return it as a ``tg.viz.Figure``, which a notebook shows as
    SVG (or as its DOT source and how to install Graphviz, without dot)."""
    save_graph(digraph, out, name)
    return tg.viz.Figure(digraph)


class SVGFile:
    """An SVG file that a notebook shows inline."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def _repr_svg_(self):
        return self.path.read_text(encoding="utf-8")


def chart(series, path, title, xlabel, ylabel, **options):
    """``_common.line_chart`` (same arguments; writes the SVG file), returned as an
    ``SVGFile`` to show inline."""
    return SVGFile(line_chart(series, path, title, xlabel, ylabel, **options))
