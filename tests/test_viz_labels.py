"""Labels built from any tensor name or scope label are DOT that Graphviz's ``dot`` accepts.

tinygraph.viz draws HTML-like labels (``label=<...>``), so user text must be XML
character data: ``viz.escape`` is the one place that makes it so.
"""
import html
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import tinygraph as tg
from tinygraph import viz

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="the Graphviz 'dot' executable is not installed")

# Every code point, lone surrogates and control characters included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
SCOPE_LABELS = st.one_of(ANY_TEXT, st.integers(),
                         st.tuples(ANY_TEXT, st.integers()), st.tuples())
HARD = ["<", ">", "&", "&amp;", '"', "'", "\\", "trailing\\", "a\\nb", "two\nlines",
        "\r\n", "\n", "{x}", "a|b", "{a|{b|c}}", "ß∑ÿ😀", "", " ", "\t", "\t\t",
        "\x00\x1b\x7f", "\ud800", "\ufffe", "]]>", "<!-- -->", "<B>", "x" * 20000,
        "&" * 5000, '"' * 5000]


def dot_svg(source):
    """(exit code, stderr) of ``dot -Tsvg`` on ``source``."""
    result = subprocess.run(["dot", "-Tsvg"], input=source.encode("utf-8"),
                            capture_output=True, timeout=60)
    return result.returncode, result.stderr.decode("utf-8", "replace")


def assert_dot_accepts(source):
    code, stderr = dot_svg(source)
    assert code == 0, stderr
    assert "Error" not in stderr and "syntax error" not in stderr, stderr


def graph_named(leaf, hidden, out, outer, inner):
    """loss = sum(tanh(x * 2)) with every name and both nested scope labels given."""
    x = tg.tensor(np.ones(2), requires_grad=True, name=leaf)
    with tg.scope(outer):
        with tg.scope(inner):
            h = (x * 2.0).tanh()
        h.name = hidden
        loss = h.sum()
    loss.name = out
    h.retain_grad()
    loss.backward()
    return loss


@needs_dot
@settings(deadline=None)
@given(leaf=ANY_TEXT, hidden=ANY_TEXT, out=ANY_TEXT, outer=SCOPE_LABELS,
       inner=SCOPE_LABELS)
@example(leaf="x" * 20000, hidden='"' * 5000, out="&" * 5000, outer="<" * 5000,
         inner=("t", 1))
@example(leaf="trailing\\", hidden="{a|b}", out="", outer="", inner="\t")
@example(leaf="\ud800", hidden="\r\n", out="\x00", outer=7, inner=(1, "<2>"))
def test_any_names_and_scope_labels_give_dot_that_dot_renders(leaf, hidden, out, outer,
                                                              inner):
    loss = graph_named(leaf, hidden, out, outer, inner)
    assert_dot_accepts(viz.to_dot(loss, grads=True).source)
    assert_dot_accepts(viz.to_dot(loss, view="backward").source)


@needs_dot
@pytest.mark.parametrize("text", HARD, ids=lambda text: repr(text)[:24])
def test_each_hard_string_is_a_label_dot_renders(text):
    loss = graph_named(text, text, text, text, text)
    assert_dot_accepts(viz.to_dot(loss, grads=True).source)


@needs_dot
@pytest.mark.parametrize("label", [0, -1, 3.5, None, True, ("t", 1), (("a", "<"), 2), b"<x>"],
                         ids=repr)
def test_scope_labels_that_are_not_strings_become_cluster_labels_dot_renders(label):
    x = tg.tensor(np.ones(2), requires_grad=True, name="x")
    with tg.scope(label):
        loss = (x * x).sum()
    source = viz.to_dot(loss).source
    assert f"label=<{viz.escape(label)}>" in source
    assert_dot_accepts(source)


@settings(deadline=None)
@given(st.text(st.characters(exclude_categories=["Cc", "Cs"],
                             exclude_characters="\ufffe\uffff\u2028\u2029\x85"),
               max_size=viz.MAX_TEXT))
@example("a<b>&\"c\"'d'\\")
def test_escape_keeps_printable_text_exactly_as_character_data(text):
    markup = viz.escape(text)
    assert "<" not in markup and ">" not in markup and '"' not in markup
    assert html.unescape(markup) == (text or "\xa0")


@settings(deadline=None)
@given(ANY_TEXT)
def test_escaped_text_holds_no_markup_but_line_breaks_and_encodes_as_utf8(text):
    markup = viz.escape(text)
    rest = markup.replace("<BR/>", "")
    assert "<" not in rest and ">" not in rest and '"' not in rest
    markup.encode("utf-8")  # a lone surrogate would make this, and dot's input, fail


def test_line_breaks_of_every_kind_become_br():
    assert viz.escape("a\nb\r\nc\rd") == "a<BR/>b<BR/>c<BR/>d"


def test_tabs_become_spaces_since_graphviz_drops_them():
    assert viz.escape("a\tb") == "a b"
    assert viz.escape("\t") == " "


def test_empty_text_becomes_a_no_break_space():
    assert viz.escape("") == "&#160;"


def test_lone_surrogates_are_shown_as_hex():
    assert viz.escape("a\ud800") == "a\\xd800"


def test_text_longer_than_max_text_is_cut_to_end_in_an_ellipsis():
    cut = html.unescape(viz.escape("x" * (viz.MAX_TEXT + 1)))
    assert len(cut) == viz.MAX_TEXT and cut.endswith("…")
    assert viz.escape("x" * viz.MAX_TEXT) == "x" * viz.MAX_TEXT
