"""Smoke test: every example in examples/ runs to the end, at its --quick size, and
writes the figures it announces; without Graphviz's dot they still succeed (.dot)."""
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("[0-9][0-9]_*.py"))
DRAWN = {"01", "02", "03", "04", "05", "06", "07", "10", "11", "13"}


def python_path(*first):
    """PYTHONPATH with this checkout first, so that an example imports the tinygraph and
    rnn beside it rather than an installed copy."""
    return os.pathsep.join(filter(None, [*first, str(ROOT), os.environ.get("PYTHONPATH")]))


def run_example(path, out, env_changes=()):
    env = {**os.environ, "EXAMPLES_QUICK": "1", "EXAMPLES_OUT": str(out),
           "PYTHONPATH": python_path(), **dict(env_changes)}
    return subprocess.run([sys.executable, str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def example(number):
    return next(p for p in EXAMPLES if p.name.startswith(f"{number:02d}_"))


def test_there_are_fourteen_examples_numbered_in_order():
    assert [p.name[:2] for p in EXAMPLES] == [f"{i:02d}" for i in range(1, 15)]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_and_writes_its_figures(path, tmp_path):
    result = run_example(path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip(), "an example prints what it shows"
    if path.name[:2] in DRAWN:
        assert list(tmp_path.glob(f"{path.name[:2]}_*.dot")) + \
            list(tmp_path.glob(f"{path.name[:2]}_*.svg"))


def test_examples_succeed_without_graphviz_and_write_dot(tmp_path):
    python_only = str(pathlib.Path(sys.executable).parent)
    result = run_example(example(1), tmp_path, {"PATH": python_only})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "01_autodiff.dot").is_file()
    assert not (tmp_path / "01_autodiff.svg").exists()
    assert "install Graphviz" in result.stdout


def hiding(package, tmp_path):
    """Environment changes under which importing ``package`` fails, as if not installed."""
    blocker = tmp_path / f"no_{package}"
    (blocker / package).mkdir(parents=True)
    (blocker / package / "__init__.py").write_text(f"raise ImportError('{package} is hidden')\n")
    return {"PYTHONPATH": python_path(str(blocker))}


def test_pytorch_crosscheck_skips_with_a_message_without_torch(tmp_path):
    result = run_example(example(12), tmp_path, hiding("torch", tmp_path))
    assert result.returncode == 0, result.stderr
    assert "torch is not installed" in result.stdout


def test_digits_cnn_says_how_to_install_scikit_learn_without_it(tmp_path):
    result = run_example(example(14), tmp_path, hiding("sklearn", tmp_path))
    assert result.returncode == 0, result.stderr
    assert "pip install scikit-learn" in result.stdout
    assert "test accuracy" not in result.stdout


def test_digits_cnn_reaches_90_percent_on_digits_it_never_saw(tmp_path):
    pytest.importorskip("sklearn")
    result = run_example(example(14), tmp_path)  # the quick size, with its fixed seeds
    assert result.returncode == 0, result.stdout + result.stderr
    accuracy = re.search(r"test accuracy: (\S+) on (\d+) digits", result.stdout)
    assert accuracy and int(accuracy[2]) == 359, result.stdout
    assert float(accuracy[1]) >= 0.9, result.stdout


def test_higher_order_example_reaches_log_4_and_the_closed_forms(tmp_path):
    result = run_example(example(13), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    newton = re.search(r"Newton: x = (\S+), \|x - log 4\| = (\S+)", result.stdout)
    assert newton, result.stdout
    assert abs(float(newton[1]) - math.log(4)) < 1e-12 and float(newton[2]) < 1e-12
    errors = [float(e) for e in re.findall(r"max \|tg.grad - closed form\| = (\S+)",
                                           result.stdout)]
    assert len(errors) == 4 and max(errors) < 1e-10, result.stdout
    hvp = re.search(r"\|H v - central differences\| / \|H v\| = (\S+)", result.stdout)
    assert hvp and float(hvp[1]) < 1e-6, result.stdout


def test_vanishing_example_explodes_and_vanishes_in_its_figures(tmp_path):
    result = run_example(example(7), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    found = dict(re.findall(r"^(exploding|vanishing) .*t = 1\.\.6: (.*)$", result.stdout,
                            re.M))
    norms = {name: [float(v) for v in values.split()] for name, values in found.items()}
    assert set(norms) == {"exploding", "vanishing"}
    exploding, vanishing = norms["exploding"], norms["vanishing"]
    assert all(a > b for a, b in zip(exploding, exploding[1:]))  # larger back in time
    assert exploding[0] > 10 * exploding[-1]
    assert all(a < b for a, b in zip(vanishing, vanishing[1:]))  # smaller back in time
    assert vanishing[0] < vanishing[-1] / 10
    for name in ("exploding", "vanishing"):                      # and the figures say so
        dot = (tmp_path / f"07_{name}_unrolled.dot").read_text()
        for t, value in ((1, norms[name][0]), (6, norms[name][-1])):
            shown = re.search(rf"‖dL/da&lt;{t}&gt;‖ = ([-+.e0-9]+)", dot)
            assert shown and float(shown[1]) == pytest.approx(value, rel=1e-2)


@pytest.mark.parametrize("number, name", [(1, "01_autodiff"), (2, "02_mlp")])
def test_chain_rule_examples_show_the_gradient_of_every_node(number, name, tmp_path):
    result = run_example(example(number), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    dot = (tmp_path / f"{name}.dot").read_text()
    assert "grad not computed" not in dot
    labels = re.findall(r"^\s*n\d+ \[label=<(.*)>\]$", dot, re.M)
    differentiable = [label for label in labels if ">input<" not in label
                      and ">constant<" not in label]      # data: x, the labels
    assert len(differentiable) >= 6
    assert all("‖grad‖ = " in label for label in differentiable)


def test_stacked_form_example_keeps_the_names_x_t_and_a_t_minus_1(tmp_path):
    result = run_example(example(5), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    dot = (tmp_path / "05_stacked_form.dot").read_text()
    for name in ("x&lt;t&gt;", "a&lt;t-1&gt;", "a&lt;t&gt;", "W_aa", "W_ax"):
        assert f"<B>{name}</B>" in dot, name
