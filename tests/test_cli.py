"""The command line (python -m rnn): train, sample, draw, params, and its errors."""
import io
import json
import pathlib
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import tinygraph as tg
from rnn import cli, training

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICK = ["--max-time", "0", "--seed", "0"]


def run(capsys, *argv):
    """main(argv): (status, stdout, stderr)."""
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def train_chars(tmp_path, capsys, *extra):
    return run(capsys, "train", "--hidden", "8", "--seq-len", "10", "--batch", "4",
               "--steps", "5", "--sample-length", "20", "--out-dir", str(tmp_path),
               *QUICK, *extra)


def assert_one_line_error(status, err, *words):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]


# ---- params ------------------------------------------------------------------------------
def test_params_reproduces_the_notes_example(capsys):
    status, out, _ = run(capsys, "params", "--input", "10", "--hidden", "20", "--output", "5")
    assert status == 0
    for name, shape in (("W_ax", "(20, 10)"), ("W_aa", "(20, 20)"), ("W_ya", "(5, 20)")):
        assert any(line.split()[:1] == [name] and shape in line for line in out.splitlines())
    notes = next(line for line in out.splitlines() if line.startswith("the notes"))
    assert notes.split()[-2:] == ["700", "725"]
    pytorch = next(line for line in out.splitlines() if line.startswith("PyTorch"))
    assert "nn.RNN(10, 20) + nn.Linear(20, 5)" in pytorch and pytorch.split()[-1] == "745"


@pytest.mark.parametrize("model, notes, pytorch, keras", [
    ("lstm", "2,480", "2,560", "2,480"), ("gru", "1,860", "1,920", "1,920")])
def test_params_gated_cells_show_the_three_conventions(capsys, model, notes, pytorch, keras):
    _, out, _ = run(capsys, "params", "--model", model, "--input", "10", "--hidden", "20")
    lines = out.splitlines()
    totals = [next(line for line in lines if line.startswith(prefix)).split()[-1]
              for prefix in ("the notes", "PyTorch", "Keras")]
    assert totals == [notes, pytorch, keras]


def test_params_bidirectional_output_layer_reads_both_directions(capsys):
    _, out, _ = run(capsys, "params", "--model", "rnn", "--input", "10", "--hidden", "20",
                    "--output", "5", "--bidirectional")
    pytorch = next(line for line in out.splitlines() if line.startswith("PyTorch"))
    assert "nn.Linear(40, 5)" in pytorch and pytorch.split()[-1] == f"{1280 + 205:,}"


# ---- bad arguments -----------------------------------------------------------------------
@pytest.mark.parametrize("argv, word", [
    (["train", "--hidden", "-3"], "--hidden"),
    (["train", "--task", "poetry"], "--task"),
    (["train", "--steps", "ten"], "--steps"),
    (["params", "--input", "0", "--hidden", "20", "--output", "5"], "--input"),
    (["draw", "--out", "graph.txt"], ".svg"),
    (["train", "--model", "elman", "--layers", "2"], "--model rnn"),
    (["train", "--task", "chars", "--bidirectional", "--model", "gru"], "next character"),
    (["train", "--task", "parity", "--bidirectional", "--model", "rnn", "--tbptt", "3"],
     "reverse direction of a chunk"),
    (["params", "--input", "10", "--hidden", "20"], "--output"),
    (["train", "--task", "copy", "--seq-len", "2"], "--seq-len"),
    (["train", "--tbptt", "-1"], "-1 must be at least 0"),
    (["train", "--clip", "-1"], "-1 must be a finite number >= 0"),
    (["train", "--lr", "0"], "0 must be a positive number"),
    (["sample", "--seed", "-1"], "-1 must be at least 0"),
])
def test_bad_arguments_give_one_line_and_status_2(capsys, argv, word):
    status, _, err = run(capsys, *argv)
    assert_one_line_error(status, err, word)


def test_an_output_directory_that_is_a_file_is_a_usage_error(capsys, tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    status, _, err = train_chars(tmp_path / "taken", capsys)
    assert_one_line_error(status, err, "cannot write into")


def test_sample_from_a_missing_checkpoint_is_a_usage_error(capsys, tmp_path):
    status, _, err = run(capsys, "sample", "--checkpoint", str(tmp_path / "nope.npz"))
    assert_one_line_error(status, err, "does not exist")


def test_sample_from_a_file_that_is_not_a_checkpoint_is_a_usage_error(capsys, tmp_path):
    path = tmp_path / "weights.npz"
    tg.save({"W": np.zeros(3)}, path)
    status, _, err = run(capsys, "sample", "--checkpoint", str(path))
    assert_one_line_error(status, err, "no rnn model configuration")


def test_resume_refuses_a_model_option_that_conflicts_with_the_checkpoint(capsys, tmp_path):
    train_chars(tmp_path, capsys)
    status, _, err = train_chars(tmp_path, capsys, "--hidden", "9", "--resume",
                                 str(tmp_path / "chars-elman.npz"))
    assert_one_line_error(status, err, "--hidden 9 conflicts with its --hidden 8")


def test_checkpoint_whose_weights_do_not_fit_its_config_is_a_usage_error(capsys, tmp_path):
    train_chars(tmp_path, capsys)
    path = tmp_path / "chars-elman.npz"
    arrays = tg.load(path)
    arrays["W_aa"] = np.zeros((3, 3))
    tg.save(arrays, path)
    status, _, err = run(capsys, "sample", "--checkpoint", str(path))
    assert_one_line_error(status, err, "does not match", "W_aa")


# ---- train and sample --------------------------------------------------------------------
def test_no_arguments_means_train_with_defaults(capsys, monkeypatch):
    seen = []

    def settled(args):
        cli.settle_model_options(args)
        return seen.append(args) or 0

    monkeypatch.setitem(cli.COMMANDS, "train", settled)
    assert cli.main([]) == 0
    assert (seen[0].task, seen[0].model, seen[0].out_dir) == ("chars", "elman", "runs")


def test_train_prints_loss_and_baseline_saves_checkpoint_and_graph(capsys, tmp_path):
    status, out, _ = train_chars(tmp_path, capsys)
    assert status == 0
    assert "baseline" in out and "ln V = ln 49" in out
    assert (tmp_path / "chars-elman.npz").is_file()
    assert (tmp_path / "chars-elman-unrolled.dot").is_file()
    assert str(tmp_path) in out.splitlines()[-1]


def test_checkpoint_holds_the_config_as_plain_numbers(capsys, tmp_path):
    train_chars(tmp_path, capsys)
    with np.load(tmp_path / "chars-elman.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    assert all(not array.dtype.hasobject for array in arrays.values())
    config = json.loads(bytes(arrays[training.CONFIG_KEY]).decode("utf-8"))
    assert (config["task"], config["model"], config["hidden"]) == ("chars", "elman", 8)
    assert len(config["vocab"]) == config["input_size"] == arrays["W_ax"].shape[1]


def test_sample_starts_with_the_prefix_and_has_the_asked_length(capsys, tmp_path):
    train_chars(tmp_path, capsys)
    checkpoint = str(tmp_path / "chars-elman.npz")
    status, out, _ = run(capsys, "sample", "--checkpoint", checkpoint, "--prefix", "graph",
                         "--length", "40")
    assert status == 0
    text = out[:-1]    # print's newline
    assert text.startswith("graph") and len(text) == 45


def test_sample_is_reproducible_under_a_seed(capsys, tmp_path):
    train_chars(tmp_path, capsys)
    argv = ["sample", "--checkpoint", str(tmp_path / "chars-elman.npz"), "--seed", "3"]
    assert run(capsys, *argv)[1] == run(capsys, *argv)[1]


def test_sample_rejects_characters_outside_the_vocabulary(capsys, tmp_path):
    train_chars(tmp_path, capsys)
    status, _, err = run(capsys, "sample", "--checkpoint", str(tmp_path / "chars-elman.npz"),
                         "--prefix", "€")
    assert_one_line_error(status, err, "never saw")


def test_sample_refuses_a_checkpoint_of_another_task(capsys, tmp_path):
    run(capsys, "train", "--task", "parity", "--model", "gru", "--hidden", "4", "--seq-len",
        "4", "--steps", "2", "--out-dir", str(tmp_path), *QUICK)
    status, _, err = run(capsys, "sample", "--checkpoint", str(tmp_path / "parity-gru.npz"))
    assert_one_line_error(status, err, "parity")


def test_training_on_the_copy_task_beats_chance(capsys, tmp_path):
    status, out, _ = run(capsys, "train", "--task", "copy", "--model", "gru", "--hidden", "16",
                         "--seq-len", "8", "--steps", "150", "--optimizer", "adam",
                         "--lr", "0.02", "--out-dir", str(tmp_path), *QUICK)
    assert status == 0
    final = next(line for line in out.splitlines() if "fresh sequences" in line)
    loss = float(final.split("fresh sequences ")[1].split()[0])
    assert loss < 0.5 * np.log(4), final


@pytest.mark.parametrize("task, model", [("adding", "lstm"), ("sentiment", "rnn"),
                                         ("entities", "gru"), ("parity", "elman")])
def test_every_task_trains_a_few_steps(capsys, tmp_path, task, model):
    extra = ["--bidirectional"] if task == "entities" else []
    status, out, _ = run(capsys, "train", "--task", task, "--model", model, "--hidden", "6",
                         "--seq-len", "6", "--steps", "3", "--out-dir", str(tmp_path),
                         *extra, *QUICK)
    assert status == 0 and "baseline" in out
    assert (tmp_path / f"{task}-{model}.npz").is_file()


def test_truncated_bptt_trains_in_chunks_of_the_given_length(capsys, tmp_path, monkeypatch):
    backward_lengths = []
    original = training.chunk_loss

    def spy(model, task, xs, targets, state):
        if tg.is_grad_enabled():    # training, not the final evaluation
            backward_lengths.append(len(xs))
        return original(model, task, xs, targets, state)

    monkeypatch.setattr(training, "chunk_loss", spy)
    train_chars(tmp_path, capsys, "--tbptt", "4", "--steps", "1")
    assert backward_lengths == [4, 4, 2]


def test_ctrl_c_saves_the_checkpoint_and_exits_cleanly(capsys, tmp_path, monkeypatch):
    calls = []
    original = training.train_step

    def interrupted_on_the_third(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(training, "train_step", interrupted_on_the_third)
    status, out, err = train_chars(tmp_path, capsys, "--steps", "50")
    assert status == cli.INTERRUPTED and "Traceback" not in err
    assert "interrupted after step 2" in out
    config, _ = training.read_checkpoint(tmp_path / "chars-elman.npz")
    assert config["step"] == 2


def _ctrl_c_as_at_a_terminal():
    """SIGINT to its default, as at a terminal: a shell starts a background job (a CI
    script run with &, say) with SIGINT ignored, and its children inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def python_handles_ctrl_c():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("presses, last_whole_step", [(1, 3), (2, 2)])
def test_ctrl_c_during_a_step_ends_the_run_once_that_step_is_whole_and_twice_at_once(
        capsys, tmp_path, monkeypatch, python_handles_ctrl_c, presses, last_whole_step):
    calls = []
    original = training.train_step

    def ctrl_c_during_the_third(*args):  # as the terminal sends it: a signal, mid-step
        calls.append(1)
        if len(calls) == 3:
            for _ in range(presses):
                signal.raise_signal(signal.SIGINT)
        return original(*args)

    monkeypatch.setattr(training, "train_step", ctrl_c_during_the_third)
    status, out, err = train_chars(tmp_path, capsys, "--steps", "50")
    assert status == cli.INTERRUPTED and "Traceback" not in err
    assert len(calls) == 3 and f"interrupted after step {last_whole_step}" in out
    config, _ = training.read_checkpoint(tmp_path / "chars-elman.npz")
    assert config["step"] == last_whole_step
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # (put back)


def test_sigint_to_a_training_process_saves_and_exits_without_traceback(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "rnn", "train", "--hidden", "8", "--steps", "1000000",
         "--out-dir", str(tmp_path), "--max-time", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_as_at_a_terminal)
    try:
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[2].startswith("step "), lines
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == cli.INTERRUPTED, err
    assert "Traceback" not in err and "checkpoint" in out
    assert (tmp_path / "chars-elman.npz").is_file()


# ---- progress ----------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_rewrites_one_line():
    stream = Terminal()
    progress = training.Progress(stream, steps=3, max_time=0)
    for step in (1, 2, 3):
        progress.last_draw = -1.0    # as if a tenth of a second had passed
        progress.update(step, 2.0, 2.5)
    progress.close(3, 2.0, 2.5)
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.count("\r") >= 3
    for word in ("step", "loss", "smoothed", "steps/s", "left"):
        assert word in text


def test_progress_into_a_file_writes_plain_lines():
    stream = io.StringIO()
    progress = training.Progress(stream, steps=40, max_time=0)
    for step in range(1, 41):
        progress.update(step, 2.0, 2.5)
    progress.close(40, 2.0, 2.5)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    assert 2 <= len(lines) <= 25 and lines[-1].startswith("step 40/40")


# ---- draw --------------------------------------------------------------------------------
def test_draw_writes_the_dot_source(capsys, tmp_path):
    status, out, _ = run(capsys, "draw", "--model", "lstm", "--steps", "3", "--out",
                         str(tmp_path / "g.dot"))
    assert status == 0
    source = (tmp_path / "g.dot").read_text()
    assert source.startswith("digraph") and "t = 3" in source


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")
def test_draw_renders_svg_with_its_dot_beside_it(capsys, tmp_path):
    status, _, _ = run(capsys, "draw", "--grads", "--out", str(tmp_path / "g.svg"))
    assert status == 0
    assert (tmp_path / "g.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "g.dot").is_file()


def test_draw_without_graphviz_writes_the_dot_and_exits_1(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    status, out, _ = run(capsys, "draw", "--out", str(tmp_path / "g.svg"))
    assert status == 1 and "install" in out
    assert (tmp_path / "g.dot").is_file() and not (tmp_path / "g.svg").exists()


def test_docs_figure_regenerates_to_the_committed_dot(capsys, tmp_path):
    committed = ROOT / "docs" / "unrolled.dot"
    status, _, _ = run(capsys, "draw", "--model", "elman", "--steps", "4", "--grads",
                       "--out", str(tmp_path / "unrolled.dot"))
    assert status == 0
    assert (tmp_path / "unrolled.dot").read_text() == committed.read_text(), (
        "docs/unrolled.dot is out of date: python -m rnn draw --model elman --steps 4 "
        "--grads --out docs/unrolled.svg")


def test_console_entry_point_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "rnn", "params", "--input", "10",
                             "--hidden", "20", "--output", "5"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "745" in result.stdout


def test_draw_layout_chooses_weight_slices_or_edges(capsys, tmp_path):
    sources = {}
    for layout in ("proxy", "once"):
        status, _, _ = run(capsys, "draw", "--model", "lstm", "--steps", "3", "--layout",
                           layout, "--out", str(tmp_path / f"{layout}.dot"))
        assert status == 0
        sources[layout] = (tmp_path / f"{layout}.dot").read_text()
    assert "W_aa<SUP>(3)</SUP>" in sources["proxy"] and "constraint=false" not in sources["proxy"]
    assert "W_aa<SUP>(3)</SUP>" not in sources["once"] and "constraint=false" in sources["once"]
