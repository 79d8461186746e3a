"""The command line's front door: every path and file is checked before any work, every
bad one is one line on stderr naming the problem and the fix with exit status 2, a
training run never loses its model, and --resume keeps the checkpoint's configuration.
"""
import json
import os
import pathlib
import pickle
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import tinygraph as tg
from rnn import cli, models, training

ROOT = pathlib.Path(__file__).resolve().parent.parent
QUICK = ["--max-time", "0", "--seed", "0"]
SMALL = ["--hidden", "8", "--seq-len", "10", "--batch", "4", "--steps", "3",
         "--sample-length", "5", *QUICK]


def run(capsys, *argv):
    """main(argv): (status, stdout, stderr)."""
    status = cli.main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def shell(folder, *argv, timeout=120):
    """``python -m rnn *argv`` run from ``folder`` (where anything it rescues would go)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "rnn", *map(str, argv)], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(status, err, *words):
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture
def steps_taken(monkeypatch):
    """The number of training steps run (to assert that none were)."""
    taken = []
    original = training.train_step

    def counted(*args):
        taken.append(1)
        return original(*args)

    monkeypatch.setattr(training, "train_step", counted)
    return taken


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small character model's checkpoint, trained once for the module's tests."""
    folder = tmp_path_factory.mktemp("trained")
    assert cli.main(["train", *SMALL, "--out-dir", str(folder)]) == 0
    return folder / "chars-elman.npz"


def chmod_stops_writes(folder):
    probe = folder / "probe"
    try:
        probe.write_text("")
    except OSError:
        return True
    probe.unlink()
    return False


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nothing can be written into: a chmod'ed one, or where chmod does not
    stop writes (as root), /sys; else the test is skipped."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if chmod_stops_writes(folder):
            yield folder
        elif pathlib.Path("/sys").is_dir() and chmod_stops_writes(pathlib.Path("/sys")):
            yield pathlib.Path("/sys")
        else:
            pytest.skip("running as root, and no folder here refuses root's writes")
    finally:
        folder.chmod(0o755)


def under_a_file(tmp_path):
    """A path whose folder is a regular file: unwritable for every user, root too."""
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    return tmp_path / "notes.txt" / "model.npz"


# ---- what train writes is checked before it trains ---------------------------------------
@pytest.mark.parametrize("where", ["under a file", "in a read-only folder"])
def test_train_to_an_unwritable_checkpoint_fails_before_the_first_step(
        capsys, tmp_path, steps_taken, where, request):
    folder = request.getfixturevalue("read_only_folder") if where != "under a file" else None
    path = under_a_file(tmp_path) if folder is None else folder / "model.npz"
    status, out, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path / "runs",
                           "--checkpoint", path)
    assert_one_line_error(status, err, "--checkpoint", str(path.parent), "choose a folder")
    assert steps_taken == [] and "training" not in out


def test_train_to_a_checkpoint_that_is_a_directory_says_so(capsys, tmp_path, steps_taken):
    status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path,
                         "--checkpoint", tmp_path)
    assert_one_line_error(status, err, "is a directory", str(tmp_path / "chars-elman.npz"))
    assert steps_taken == []


def test_train_to_a_read_only_checkpoint_fails_before_the_first_step(
        capsys, tmp_path, steps_taken):
    path = tmp_path / "kept.npz"
    path.write_bytes(b"")
    path.chmod(0o444)
    if os.access(path, os.W_OK):
        pytest.skip("running as root: a read-only file is still writable")
    status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path, "--checkpoint", path)
    assert_one_line_error(status, err, "is read-only", str(path))
    assert steps_taken == []


def test_train_into_an_unwritable_out_dir_fails_before_the_first_step(
        capsys, read_only_folder, steps_taken):
    status, _, err = run(capsys, "train", *SMALL, "--out-dir", read_only_folder)
    assert_one_line_error(status, err, "--out-dir", str(read_only_folder))
    assert steps_taken == []


def test_train_creates_a_missing_parent_folder_of_the_checkpoint(capsys, tmp_path):
    path = tmp_path / "new" / "deeper" / "model.npz"
    status, out, _ = run(capsys, "train", *SMALL, "--out-dir", tmp_path, "--checkpoint", path)
    assert status == 0 and f"checkpoint: {path}" in out
    config, _ = training.read_checkpoint(path)
    assert config["hidden"] == 8


def test_an_unwritable_checkpoint_exits_2_from_the_shell_too(tmp_path):
    result = shell(tmp_path, "train", "--steps", "1000000", "--max-time", "20",
                   "--out-dir", tmp_path, "--checkpoint", under_a_file(tmp_path))
    assert_one_line_error(result.returncode, result.stderr, "notes.txt is a file")
    assert result.stdout == ""


# ---- what draw writes --------------------------------------------------------------------
def test_draw_to_an_unwritable_out_is_one_line_and_status_2(tmp_path):
    path = under_a_file(tmp_path).with_suffix(".svg")
    result = shell(tmp_path, "draw", "--out", path)
    assert_one_line_error(result.returncode, result.stderr, "--out", "is a file, not a folder")


def test_draw_into_a_read_only_folder_is_a_usage_error(capsys, read_only_folder):
    status, _, err = run(capsys, "draw", "--out", read_only_folder / "g.svg")
    assert_one_line_error(status, err, "cannot write --out", str(read_only_folder))


def test_draw_to_a_directory_named_like_a_figure_says_so(capsys, tmp_path):
    (tmp_path / "g.svg").mkdir()
    status, _, err = run(capsys, "draw", "--out", tmp_path / "g.svg")
    assert_one_line_error(status, err, "is a directory")


def test_draw_creates_a_missing_parent_folder(capsys, tmp_path):
    path = tmp_path / "figures" / "new" / "g.dot"
    status, _, _ = run(capsys, "draw", "--out", path)
    assert status == 0 and path.read_text().startswith("digraph")


def test_a_figure_that_fails_to_write_after_the_checks_is_a_usage_error(
        capsys, tmp_path, monkeypatch):
    def refuse(graph, path, format=None):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tg.viz, "render", refuse)
    status, _, err = run(capsys, "draw", "--out", tmp_path / "g.svg")
    assert_one_line_error(status, err, "cannot write the figure", "Permission denied")


@pytest.mark.parametrize("command", [["train", "--out-dir", "{tmp}"],
                                     ["draw", "--out", "{tmp}/g.dot"]])
def test_sizes_too_large_for_memory_are_one_line_and_status_2(capsys, tmp_path, command):
    argv = [arg.format(tmp=tmp_path) for arg in command]
    status, _, err = run(capsys, *argv, "--hidden", "10000000000")   # W_ax: 10^10 m numbers
    assert_one_line_error(status, err, "not enough memory", "--hidden")


# ---- what is read: checkpoints -----------------------------------------------------------
def bad_checkpoints(tmp_path, checkpoint):
    """(path, words its error must hold) for files that are not usable checkpoints."""
    text = tmp_path / "notes.txt"
    text.write_text("hello, not weights\n")
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(checkpoint.read_bytes()[:len(checkpoint.read_bytes()) // 2])
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"W_ax": [1.0]}))
    folder = tmp_path / "folder"
    folder.mkdir()
    return [(text, ["not an rnn checkpoint", "not an .npz archive"]),
            (empty, ["empty (0 bytes)", "save it again"]),
            (truncated, ["truncated or corrupt", "save it again"]),
            (pickled, ["a pickle", "not loaded"]),
            (folder, ["is a directory, not a checkpoint"]),
            (tmp_path / "missing.npz", ["does not exist", "python -m rnn train"])]


def test_sample_from_each_kind_of_bad_file_says_what_it_is(capsys, tmp_path, checkpoint):
    for path, words in bad_checkpoints(tmp_path, checkpoint):
        status, out, err = run(capsys, "sample", "--checkpoint", path)
        assert_one_line_error(status, err, "--checkpoint", str(path), *words)
        assert out == ""


def test_resume_from_each_kind_of_bad_file_fails_before_training(
        capsys, tmp_path, checkpoint, steps_taken):
    for path, words in bad_checkpoints(tmp_path, checkpoint):
        status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path / "runs",
                             "--resume", path)
        assert_one_line_error(status, err, "--resume", *words)
    assert steps_taken == [] and not (tmp_path / "runs").exists()


def test_a_directory_given_as_checkpoint_names_the_checkpoints_in_it(capsys, checkpoint):
    status, _, err = run(capsys, "sample", "--checkpoint", checkpoint.parent)
    assert_one_line_error(status, err, "is a directory", "chars-elman.npz")


def test_sample_from_a_truncated_checkpoint_exits_2_from_the_shell(tmp_path, checkpoint):
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(checkpoint.read_bytes()[:-100])
    result = shell(tmp_path, "sample", "--checkpoint", truncated)
    assert_one_line_error(result.returncode, result.stderr, "truncated or corrupt")


def test_an_unreadable_checkpoint_is_a_usage_error(capsys, tmp_path, checkpoint):
    path = tmp_path / "locked.npz"
    shutil.copy(checkpoint, path)
    path.chmod(0o000)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: chmod does not stop reads")
    status, _, err = run(capsys, "sample", "--checkpoint", path)
    assert_one_line_error(status, err, "cannot read --checkpoint", "Permission denied")


def rewritten(checkpoint, tmp_path, **changes):
    """A copy of ``checkpoint`` with its configuration changed."""
    arrays = tg.load(checkpoint)
    config = json.loads(bytes(arrays[training.CONFIG_KEY]).decode("utf-8"))
    config.update(changes)
    arrays[training.CONFIG_KEY] = np.frombuffer(json.dumps(config).encode(), np.uint8)
    path = tmp_path / "changed.npz"
    tg.save(arrays, path)
    return path


@pytest.mark.parametrize("changes, words", [
    ({"model": "transformer"}, ["'transformer'", "unknown"]),
    ({"hidden": -4}, ["positive whole numbers"]),
    ({"vocab": None}, ["vocabulary"]),
    ({"format": "rnn-checkpoint/9"}, ["rnn-checkpoint/9", "rnn-checkpoint/1"]),
])
def test_a_configuration_this_version_cannot_build_is_a_usage_error(
        capsys, tmp_path, checkpoint, changes, words):
    path = rewritten(checkpoint, tmp_path, **changes)
    status, _, err = run(capsys, "sample", "--checkpoint", path)
    assert_one_line_error(status, err, "cannot be used", *words)


def test_weights_of_another_model_kind_do_not_load(capsys, tmp_path, checkpoint):
    path = rewritten(checkpoint, tmp_path, model="gru")      # elman weights, a gru's config
    status, _, err = run(capsys, "sample", "--checkpoint", path)
    assert_one_line_error(status, err, "does not match its model", "missing key")


# ---- what is read: the training text -----------------------------------------------------
def bad_texts(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    short = tmp_path / "short.txt"
    short.write_text("a")
    return [(tmp_path, "is a directory"), (tmp_path / "missing.txt", "does not exist"),
            (latin1, "is not UTF-8 text"), (short, "at least two characters")]


def test_each_kind_of_bad_text_file_fails_before_training(capsys, tmp_path, steps_taken):
    for path, words in bad_texts(tmp_path):
        status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path / "runs",
                             "--text", path)
        assert_one_line_error(status, err, f"--text {path}", words)
    assert steps_taken == []


# ---- a run never loses its model ---------------------------------------------------------
def folder_replaced_by_a_file_during_training(monkeypatch, folder):
    """On the first step, swap ``folder`` for a file: the checkpoint can no longer be
    written there, whoever runs the test."""
    original = training.train_step

    def sabotaged(*args):
        if folder.is_dir():
            shutil.rmtree(folder)
            folder.write_text("in the way")
        return original(*args)

    monkeypatch.setattr(training, "train_step", sabotaged)


def test_a_checkpoint_that_fails_to_save_at_the_end_is_saved_in_the_current_folder(
        capsys, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    folder_replaced_by_a_file_during_training(monkeypatch, tmp_path / "runs")
    status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path / "runs")
    assert_one_line_error(status, err, "cannot write the checkpoint", "saved to")
    [rescued] = here.glob("chars-elman-rescued-*.npz")
    assert str(rescued) in err
    config, arrays = training.read_checkpoint(rescued)
    assert (config["hidden"], config["step"]) == (8, 3) and arrays["W_aa"].shape == (8, 8)


def test_with_the_current_folder_gone_too_the_checkpoint_goes_to_the_temp_folder(
        capsys, tmp_path, monkeypatch):
    gone, temp = tmp_path / "gone", tmp_path / "temp"
    gone.mkdir()
    temp.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    folder_replaced_by_a_file_during_training(monkeypatch, tmp_path / "runs")
    status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path / "runs")
    [rescued] = temp.glob("chars-elman-rescued-*.npz")
    assert_one_line_error(status, err, str(rescued))
    assert training.read_checkpoint(rescued)[0]["step"] == 3


def test_a_failed_save_leaves_the_previous_checkpoint_whole(checkpoint, monkeypatch):
    before = checkpoint.read_bytes()
    config, arrays = training.read_checkpoint(checkpoint)

    def dies_half_way(state_dict, path):
        pathlib.Path(path).write_bytes(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tg, "save", dies_half_way)
    model = models.build_model(config)
    with pytest.raises(OSError):
        training.save_checkpoint(model, config, checkpoint)
    assert checkpoint.read_bytes() == before
    assert [p.name for p in checkpoint.parent.iterdir() if ".partial" in p.name] == []


def test_a_closed_output_pipe_does_not_stop_training_or_lose_the_model(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "rnn", "train", "--hidden", "8", "--steps", "1000000",
         "--max-time", "2", "--out-dir", str(tmp_path), "--sample-length", "5"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().startswith("training")
        process.stdout.close()             # as `| head -1` does
        err = process.stderr.read()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0 and "Traceback" not in err, err
    assert training.read_checkpoint(tmp_path / "chars-elman.npz")[0]["step"] > 0


def test_ctrl_c_while_sampling_exits_130_without_a_traceback(capsys, checkpoint, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "generate_text", interrupted)
    status, _, err = run(capsys, "sample", "--checkpoint", checkpoint)
    assert status == cli.INTERRUPTED and err == ""


def test_sampling_into_a_closed_pipe_exits_quietly(tmp_path, checkpoint):
    process = subprocess.Popen(
        [sys.executable, "-m", "rnn", "sample", "--checkpoint", str(checkpoint), "--length",
         "50"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        process.stdout.close()             # the reader is gone before the sample is printed
        err = process.stderr.read().decode()
        process.wait(timeout=120)
    finally:
        process.kill()
    assert process.returncode == cli.READER_GONE and err == "", err


# ---- --resume keeps the checkpoint's configuration ---------------------------------------
@pytest.fixture
def gru_checkpoint(tmp_path):
    assert cli.main(["train", "--task", "parity", "--model", "gru", "--hidden", "5",
                     "--layers", "2", "--seq-len", "4", "--steps", "2", "--out-dir",
                     str(tmp_path / "first"), *QUICK]) == 0
    return tmp_path / "first" / "parity-gru.npz"


def test_resume_restores_the_model_and_task_of_the_checkpoint(
        capsys, tmp_path, gru_checkpoint, monkeypatch):
    started_from = []
    original = training.fit

    def watched(model, *args):
        started_from.append({k: v.copy() for k, v in model.state_dict().items()})
        return original(model, *args)

    monkeypatch.setattr(training, "fit", watched)
    status, out, _ = run(capsys, "train", "--resume", gru_checkpoint, "--seq-len", "4",
                         "--steps", "3", "--out-dir", tmp_path / "second", *QUICK)
    assert status == 0, out
    assert "GRU(m=1, n=5, p=2, 2 layers) on the parity task" in out
    _, stored = training.read_checkpoint(gru_checkpoint)
    assert started_from[0].keys() == stored.keys()
    assert all(np.array_equal(started_from[0][k], stored[k]) for k in stored)
    config, _ = training.read_checkpoint(tmp_path / "second" / "parity-gru.npz")
    first, _ = training.read_checkpoint(gru_checkpoint)
    assert all(config[key] == first[key] for key in training.MODEL_KEYS)
    assert config["step"] == 2 + 3


@pytest.mark.parametrize("option, words", [
    (["--task", "copy"], "--task copy conflicts with its --task parity"),
    (["--model", "lstm"], "--model lstm conflicts with its --model gru"),
    (["--hidden", "6"], "--hidden 6 conflicts with its --hidden 5"),
    (["--layers", "1"], "--layers 1 conflicts with its --layers 2"),
    (["--bidirectional"], "--bidirectional conflicts with its one direction"),
])
def test_resume_refuses_each_conflicting_model_option(
        capsys, tmp_path, gru_checkpoint, steps_taken, option, words):
    status, _, err = run(capsys, "train", "--resume", gru_checkpoint, *option, "--seq-len",
                         "4", "--out-dir", tmp_path / "second", *QUICK)
    assert_one_line_error(status, err, words, "drop the option")
    assert steps_taken == []


def test_resume_accepts_model_options_equal_to_the_checkpoint(capsys, tmp_path, gru_checkpoint):
    status, _, err = run(capsys, "train", "--resume", gru_checkpoint, "--task", "parity",
                         "--model", "gru", "--hidden", "5", "--layers", "2", "--seq-len",
                         "4", "--steps", "1", "--out-dir", tmp_path / "second", *QUICK)
    assert status == 0, err


def test_resume_trains_on_the_text_the_checkpoint_was_trained_on(capsys, tmp_path):
    text = tmp_path / "poem.txt"
    text.write_text("the cat sat on the mat, and the rat sat on the hat. " * 4)
    assert cli.main(["train", *SMALL, "--text", str(text), "--out-dir",
                     str(tmp_path / "first")]) == 0
    status, _, err = run(capsys, "train", *SMALL, "--resume",
                         tmp_path / "first" / "chars-elman.npz", "--out-dir",
                         tmp_path / "second")
    assert status == 0, err
    config, _ = training.read_checkpoint(tmp_path / "second" / "chars-elman.npz")
    assert config["text"] == str(text.resolve())
    assert config["vocab"] == sorted(set(text.read_text()))


def test_resume_refuses_a_text_of_other_characters_naming_both(capsys, tmp_path, checkpoint):
    other = tmp_path / "other.txt"
    other.write_text("abcabcabcabcabcabcabcabc")
    status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path, "--resume",
                         checkpoint, "--text", other)
    assert_one_line_error(status, err, "the built-in text", str(other), "characters differ")


def test_resume_whose_training_text_is_gone_names_it(capsys, tmp_path):
    text = tmp_path / "poem.txt"
    text.write_text("the cat sat on the mat, and the rat sat on the hat. " * 4)
    assert cli.main(["train", *SMALL, "--text", str(text), "--out-dir", str(tmp_path)]) == 0
    text.unlink()
    status, _, err = run(capsys, "train", *SMALL, "--out-dir", tmp_path, "--resume",
                         tmp_path / "chars-elman.npz")
    assert_one_line_error(status, err, "the training text of --resume", "does not exist")
