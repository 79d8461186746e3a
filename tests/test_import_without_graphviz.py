"""tinygraph (and rnn) without the graphviz Python package: everything but drawing works,
and drawing says how to install it.

Each test runs a fresh interpreter in which ``import graphviz`` fails, either because
a finder on ``sys.meta_path`` refuses it (as when it is not installed) or because
``sys.modules['graphviz']`` is None.
"""
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

BLOCKERS = {
    "not_installed": """
        import importlib.abc, sys
        class NoGraphviz(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] == "graphviz":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        sys.meta_path.insert(0, NoGraphviz())
        """,
    "sys_modules_none": """
        import sys
        sys.modules["graphviz"] = None
        """,
}


def run(*pieces, blocker=None):
    """stdout of the code ``pieces`` (each dedented on its own) run in turn by a fresh
    Python from the repository root, after ``blocker``'s; fails the test, showing
    stderr, when the interpreter exits non-zero."""
    pieces = (BLOCKERS[blocker],) + pieces if blocker else pieces
    source = "".join(textwrap.dedent(piece) for piece in pieces)
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout, not an installed copy
    result = subprocess.run([sys.executable, "-c", source], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def drawing_error(call):
    """Code printing the type and message of the ImportError that ``call`` raises."""
    return f"""
        try:
            {call}
        except ImportError as err:
            print(type(err).__name__, err)
        else:
            raise SystemExit("no ImportError from {call}")
        """


SMALL_GRAPH = """
    import numpy as np
    import tinygraph as tg
    x = tg.tensor(np.arange(6.0).reshape(2, 3) / 6, requires_grad=True, name="x")
    loss = (x * x).tanh().sum()
    loss.backward()
    """

blockers = pytest.mark.parametrize("blocker", sorted(BLOCKERS))


def test_import_tinygraph_does_not_import_graphviz():
    out = run("""
        import sys
        import tinygraph, rnn
        print("graphviz" in sys.modules)
        """)
    assert out.split() == ["False"]


@blockers
def test_graphviz_really_is_blocked(blocker):
    out = run(drawing_error("import graphviz"), blocker=blocker)
    assert out.startswith("ModuleNotFoundError")


@blockers
def test_import_tinygraph_and_backward_work_without_graphviz(blocker):
    out = run(SMALL_GRAPH, """
        expected = 2 * x.data * (1 - np.tanh(x.data ** 2) ** 2)
        print(np.allclose(x.grad, expected))
        """, blocker=blocker)
    assert out.split() == ["True"]


@blockers
def test_to_dot_without_graphviz_raises_an_import_error_naming_pip_install(blocker):
    out = run(SMALL_GRAPH, drawing_error("tg.viz.to_dot(loss)"), blocker=blocker)
    assert out.startswith("ModuleNotFoundError")
    assert "pip install graphviz" in out


@blockers
def test_draw_and_pipe_without_graphviz_name_pip_install(blocker):
    out = run(SMALL_GRAPH, drawing_error("tg.viz.draw(loss)"),
              drawing_error("tg.viz.pipe('digraph {}')"), blocker=blocker)
    assert out.count("pip install graphviz") == 2


@blockers
def test_rnn_imports_and_its_drawing_names_pip_install_without_graphviz(blocker):
    out = run("""
        import numpy as np
        import rnn
        model = rnn.ElmanRNN(input_size=3, hidden_size=4, output_size=2)
        xs = np.random.default_rng(0).standard_normal((3, 1, 3))
        """, drawing_error("rnn.viz.to_dot(model, xs)"), blocker=blocker)
    assert "pip install graphviz" in out


@blockers
def test_dot_text_can_still_be_written_to_a_dot_file_without_graphviz(blocker, tmp_path):
    path = tmp_path / "g.dot"
    run(f"""
        import tinygraph as tg
        tg.viz.render("digraph {{ a -> b }}", {str(path)!r})
        """, blocker=blocker)
    assert path.read_text() == "digraph { a -> b }"
