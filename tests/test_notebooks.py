"""The lessons as notebooks: each lesson in examples/ is one jupytext percent-format file
that runs as a script and opens as a notebook. Here each one is read with jupytext,
executed in a Jupyter kernel (nbclient) from a scratch folder at its quick size, and
must run without an error, show its figures inline as SVG (the explorer inline where
the lesson has one) and print what the script prints."""
import html
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
LESSONS = [p for p in EXAMPLES if p.read_text(encoding="utf-8").startswith("# %% [markdown]")]
CONVERTED = {f"{i:02d}" for i in range(1, 15)}
DRAWN = {"01", "02", "03", "04", "05", "06", "07", "10", "11", "13"}
EXPLORED = {"01", "04"}
# Lessons that train for several seconds: rather than run them a second time as scripts,
# their results are read from the notebook (their own asserts ran in the kernel too).
RESULTS = {
    "08": [r"smoothed loss \S+ vs T ln V = \S+", r"temperature 1\.0: T", r"temperature 0\.0: T"],
    "09": [r"GRU: accuracy \S+ on 500 new sentences", r"\d of 9 starting digits",
           r"many-to-many \(tagging, T = 10\): accuracy"],
    "14": [r"test accuracy: 0\.9\d+ on 359 digits"],
}
WHERE = "import tinygraph, rnn; print(tinygraph.__file__, rnn.__file__)"


def number(path):
    return path.name[:2]


def execute(path, out, env_changes=()):
    """The lesson as a notebook, executed in a fresh python3 kernel whose working folder
    is ``out``'s parent and which imports this checkout's packages (and sees
    ``env_changes``); a last cell, added here, prints where tinygraph and rnn came from."""
    notebook = jupytext.read(path)
    notebook.cells.append(jupytext.reads(f"# %%\n{WHERE}\n", "py:percent").cells[0])
    paths = [str(ROOT), str(ROOT / "examples"), os.environ.get("PYTHONPATH")]
    with pytest.MonkeyPatch.context() as env:   # the kernel inherits this environment
        env.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
        env.setenv("PYTHONDONTWRITEBYTECODE", "1")   # nothing written into the repo
        env.setenv("EXAMPLES_QUICK", "1")
        env.setenv("EXAMPLES_OUT", str(out))
        for name, value in dict(env_changes).items():
            env.setenv(name, value)
        client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(out.parent)}})
        client.execute()   # a cell's error raises here, with its traceback
    return notebook


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``run(path)`` -> (executed notebook, its figures' folder); each lesson runs once."""
    done = {}

    def run(path):
        if path not in done:
            out = tmp_path_factory.mktemp(path.stem) / "notebook"
            out.mkdir()
            done[path] = execute(path, out), out
        return done[path]
    return run


def outputs(notebook):
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])]


def printed(notebook):
    """Everything the cells printed, in order, but the last cell's (the added one)."""
    return "".join(output.get("text", "") for cell in notebook.cells[:-1]
                   if cell.cell_type == "code" for output in cell.get("outputs", [])
                   if output.output_type == "stream" and output.name == "stdout")


def shown(notebook, mime):
    return [output.data[mime] for output in outputs(notebook)
            if output.output_type in ("display_data", "execute_result")
            and mime in output.get("data", {})]


def explorer_document(page):
    """The JSON document inside an explorer shown inline (an iframe's srcdoc)."""
    srcdoc = html.unescape(re.search(r'srcdoc="([^"]*)"', page)[1])
    data = re.search(r'<script type="application/json" id="tinygraph-document">(.*?)'
                     r'</script>', srcdoc, re.S)[1]
    return json.loads(data)


def script_output(path, out):
    env = {**os.environ, "EXAMPLES_QUICK": "1", "EXAMPLES_OUT": str(out),
           "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_lessons_converted_so_far_are_percent_format_notebooks():
    assert CONVERTED <= {number(p) for p in LESSONS}


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lesson_reads_as_a_notebook_of_prose_and_code_and_back(path):
    notebook = jupytext.read(path)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and "code" in kinds and kinds.count("markdown") >= 2
    assert notebook.cells[0].source.startswith(f"# {number(path)} · ")
    assert jupytext.writes(notebook, "py:percent") == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lessons_prose_keeps_the_notation_in_code_so_markdown_shows_it(path):
    """``a<t>`` outside code would be read as an HTML tag and vanish from the page."""
    for cell in jupytext.read(path).cells:
        if cell.cell_type == "markdown":
            prose = re.sub(r"`[^`]*`", "", cell.source)
            prose = "\n".join(line for line in prose.splitlines()
                              if not line.startswith("    "))
            assert not re.search(r"<[A-Za-z/!?]", prose), cell.source


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lesson_runs_as_a_notebook_in_a_kernel_with_this_checkouts_packages(path, run):
    notebook, _ = run(path)
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    where = notebook.cells[-1].outputs[0].text.split()
    assert len(where) == 2 and all(pathlib.Path(p).is_relative_to(ROOT) for p in where)


@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_a_lesson_as_a_notebook_prints_what_the_script_prints(path, run, tmp_path):
    notebook, out = run(path)
    text = printed(notebook)
    if number(path) in RESULTS:
        for pattern in RESULTS[number(path)]:
            assert re.search(pattern, text), (pattern, text)
    else:
        expected = script_output(path, tmp_path)
        assert text.replace(str(out), "OUT") == expected.replace(str(tmp_path), "OUT")


DRAWING = [p for p in LESSONS if number(p) in DRAWN]


@pytest.mark.parametrize("path", DRAWING, ids=[p.stem for p in DRAWING])
def test_a_lesson_that_draws_shows_its_figures_inline_as_svg_and_writes_them(path, run):
    notebook, out = run(path)
    assert list(out.glob(f"{number(path)}_*.dot")) + list(out.glob(f"{number(path)}_*.svg"))
    svgs = shown(notebook, "image/svg+xml")
    assert all("<svg" in svg for svg in svgs)
    if shutil.which("dot"):   # each figure written is the one shown
        written = [f.read_text(encoding="utf-8") for f in out.glob(f"{number(path)}_*.svg")]
        assert written and all(svg in svgs for svg in written)
    else:  # a Graphviz figure shows its DOT source and the hint instead (a chart, its SVG)
        hints = [md for md in shown(notebook, "text/markdown") if "install graphviz" in md.lower()]
        assert svgs or hints


def test_without_graphviz_a_lessons_figure_shows_its_dot_source_and_how_to_install(tmp_path):
    path = next(p for p in DRAWING if number(p) != "13")   # 13 draws its chart itself
    python_only = str(pathlib.Path(sys.executable).parent)
    notebook = execute(path, tmp_path / "out", {"PATH": python_only})
    assert not shown(notebook, "image/svg+xml")
    (markdown,) = shown(notebook, "text/markdown")
    assert "install graphviz" in markdown.lower() and "digraph" in markdown
    assert list((tmp_path / "out").glob("*.dot")) and not list((tmp_path / "out").glob("*.svg"))


EXPLORING = [p for p in LESSONS if number(p) in EXPLORED]


@pytest.mark.parametrize("path", EXPLORING, ids=[p.stem for p in EXPLORING])
def test_a_lesson_shows_the_explorer_inline_stepping_from_the_loss(path, run):
    notebook, _ = run(path)
    pages = [page for page in shown(notebook, "text/html")
             if "tinygraph-document" in html.unescape(page)]
    assert len(pages) == 1
    document = explorer_document(pages[0])
    (steps,) = [r["steps"] for r in document["runs"]]
    visited = [step["node"] for step in steps]
    assert document["nodes"][visited[0]]["kind"] == "output"
    assert len(visited) == len(set(visited)) > 1


RNN_EXPLORING = [p for p in EXPLORING if number(p) != "01"]


@pytest.mark.parametrize("path", RNN_EXPLORING, ids=[p.stem for p in RNN_EXPLORING])
def test_an_rnn_lessons_explorer_sums_W_aa_once_per_time_step(path, run):
    document = explorer_document(next(page for page in shown(run(path)[0], "text/html")
                                      if "tinygraph-document" in html.unescape(page)))
    steps = [g for g in document["groups"] if re.fullmatch(r"t=\d+", g["label"])]
    (W_aa,) = [node["id"] for node in document["nodes"] if node["label"] == "W_aa"]
    (sums,) = [s["after"] for s in document["runs"][0]["sums"] if s["leaf"] == W_aa]
    assert len(steps) > 1 and len(sums) == len(steps)
