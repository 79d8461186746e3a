"""Training the trainer's models (``rnn.models``) on a task (``rnn.data``), and checkpoints.

    task = data.make_task("parity")
    config = training.model_config(task, "gru", hidden=16)
    model = models.build_model(config)
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    outcome = training.fit(model, task, optimizer, training.Schedule(500, seq_len=8), rng)
    training.save_checkpoint(model, {**config, "step": outcome.steps}, "parity-gru.npz")
    config, arrays = training.read_checkpoint("parity-gru.npz")

A training step is forward, ``loss.backward()`` (BPTT on the unrolled graph), clipping
and an update; with truncated BPTT the sequence is cut into chunks and the state
carried across them detached.

Checkpoints are ``tg.save`` archives (.npz, no pickle): the model's state dict plus
``CONFIG_KEY``, the model's configuration (task, kind, sizes, vocabulary; see
``model_config``) as UTF-8 JSON bytes in a uint8 array, so that a checkpoint alone
rebuilds its model. They are written to a temporary file and renamed, so a run that
stops while saving leaves the previous checkpoint whole.
"""
import contextlib
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

import numpy as np

import tinygraph as tg
from tinygraph import functional as F
from tinygraph import optim

from . import data
from .layers import detach_state
from .models import MODELS

CONFIG_KEY = "__config__"
CHECKPOINT_FORMAT = "rnn-checkpoint/1"
MODEL_KEYS = ("task", "model", "input_size", "hidden", "output_size", "layers",
              "bidirectional")
"""The configuration that fixes a model's weights: a resumed run must keep all of it."""


class UsageError(Exception):
    """A bad path, file or setting. The message is one line that names the problem and
    the fix; the command line prints it and exits with status 2."""


# ---- checkpoints --------------------------------------------------------------------------
def model_config(task, model, hidden, layers=1, bidirectional=False, text=None):
    """The configuration a checkpoint stores: enough to rebuild the model
    (``rnn.models.build_model``) and, for "chars", to encode text (vocab, prefix) and
    to find the training text again (``text``: its path, None for the built-in one)."""
    return {"format": CHECKPOINT_FORMAT, "task": task.name, "model": model,
            "input_size": task.input_size, "hidden": hidden,
            "output_size": task.output_size, "layers": layers,
            "bidirectional": bidirectional, "vocab": task.vocab, "prefix": task.prefix,
            "text": text}


def why(err):
    """An OSError's reason in words ("Permission denied")."""
    return err.strerror or str(err)


def ensure_folder(folder, option):
    """Create ``folder`` if needed; UsageError naming ``option`` if it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        blocker = next((p for p in (folder, *folder.parents) if p.exists()), folder)
        reason = f"{blocker} is a file, not a folder" if blocker.is_file() else why(err)
        raise UsageError(f"cannot write into {folder} ({option}): {reason}; choose a "
                         f"folder you can write to") from None


def check_writable(path, option, example):
    """Fail now, before any work, if ``path`` could not be written later: it is a
    directory, a read-only file, or in a folder that cannot be created or written
    into. ``example`` is a file name to suggest when ``path`` is a directory."""
    path = pathlib.Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory, not a file: give a file path, "
                         f"such as {path / example}")
    ensure_folder(path.parent, option)
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{option} {path} is read-only: make it writable or choose "
                         f"another path")
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}."):
            pass
    except OSError as err:
        raise UsageError(f"cannot write {option} {path}: {why(err)} in {path.parent}; "
                         f"choose a folder you can write to") from None


def save_checkpoint(model, config, path):
    """Write the model's weights and ``config`` to ``path`` (through a temporary file in
    the same folder, renamed over ``path`` once complete). Returns the path."""
    path = pathlib.Path(path)
    blob = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    fd, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix=".partial")
    os.close(fd)
    try:
        tg.save({**model.state_dict(), CONFIG_KEY: blob}, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


def save_or_rescue(model, config, path):
    """Save to ``path``, or, when that fails, beside the run: into the current folder,
    else the temporary folder, under a new name. The model is never lost silently.

    Returns (the path written, None), or (the rescue path, why ``path`` failed).
    """
    path = pathlib.Path(path)
    try:
        return save_checkpoint(model, config, path), None
    except OSError as err:
        problem = f"cannot write the checkpoint {path}: {why(err)}"
    for folder in (os.curdir, tempfile.gettempdir()):
        try:
            fd, rescue = tempfile.mkstemp(dir=folder, prefix=f"{path.stem}-rescued-",
                                          suffix=".npz")
            os.close(fd)
        except OSError:     # the current folder may be read-only, or gone
            continue
        try:
            return save_checkpoint(model, config, os.path.abspath(rescue)), problem
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(rescue)
    raise UsageError(f"{problem}, nor into the current folder or {tempfile.gettempdir()}: "
                     f"the model could not be saved anywhere; free some space and train again")


def read_checkpoint(path, option="--checkpoint"):
    """(config, state_dict) from a checkpoint written by ``save_checkpoint``.

    Whatever is wrong (missing, a directory, unreadable, empty, truncated, not an .npz,
    an .npz without a configuration, a configuration this version cannot build) is a
    UsageError naming ``option``, the path, the problem and the fix.
    """
    path = pathlib.Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.npz"))
        hint = f"one of its checkpoints ({', '.join(found[:3])})" if found else "a checkpoint file"
        raise UsageError(f"{option} {path} is a directory, not a checkpoint: give {hint}")
    if not path.exists():
        raise UsageError(f"{option} {path} does not exist (train one with: "
                         f"python -m rnn train --checkpoint {path})")
    try:
        arrays = tg.load(path)
    except ValueError as err:     # tg.load says what is wrong with the file, and the fix
        raise UsageError(f"{option} {path} is not an rnn checkpoint: "
                         f"{str(err).removeprefix('load: ')}") from None
    except OSError as err:
        raise UsageError(f"cannot read {option} {path}: {why(err)}") from None
    blob = arrays.pop(CONFIG_KEY, None)
    try:
        config = json.loads(bytes(blob.astype(np.uint8)).decode("utf-8"))
    except (AttributeError, TypeError, ValueError):
        config = None
    if not isinstance(config, dict) or not str(config.get("format")).startswith(
            "rnn-checkpoint/"):
        raise UsageError(f"{option} {path} holds no rnn model configuration: it is an .npz "
                         f"archive, but it was not written by python -m rnn train")
    problem = config_problem(config)
    if problem:
        raise UsageError(f"{option} {path} cannot be used: {problem}; train it again with "
                         f"python -m rnn train")
    return config, arrays


def config_problem(config):
    """What in a checkpoint's configuration this version cannot build, or None."""
    if config["format"] != CHECKPOINT_FORMAT:
        return f"it is in the format {config['format']}, this version reads {CHECKPOINT_FORMAT}"
    missing = [key for key in MODEL_KEYS if key not in config]
    if missing:
        return f"its configuration lacks {', '.join(missing)}"
    if config["task"] not in data.TASKS or config["model"] not in MODELS:
        return f"its task {config['task']!r} or model {config['model']!r} is unknown here"
    sizes = ("input_size", "hidden", "output_size", "layers")
    if not all(type(config[key]) is int and config[key] >= 1 for key in sizes) or \
            type(config["bidirectional"]) is not bool:
        return "its sizes are not positive whole numbers"
    vocab = config.get("vocab")
    if config["task"] == "chars" and not (
            isinstance(vocab, list) and len(vocab) == config["input_size"]
            and all(isinstance(c, str) and len(c) == 1 for c in vocab)
            and isinstance(config.get("prefix"), str)):
        return "its character vocabulary is missing or does not fit its input size"
    return None


def load_weights(model, arrays, path, option="--checkpoint"):
    """The checkpoint's weights into ``model``; UsageError when they do not fit it."""
    try:
        model.load_state_dict(arrays)
    except RuntimeError as err:
        raise UsageError(f"{option} {path} does not match its model: {err}") from None


# ---- one training step --------------------------------------------------------------------
@dataclass
class Schedule:
    """How to train: ``steps`` batches of ``batch`` sequences of ``seq_len`` steps,
    stopping after ``max_time`` seconds (0: no limit); clip the gradients' joint norm
    to ``clip`` (0: no clipping); truncated BPTT every ``tbptt`` steps (0: full BPTT)."""

    steps: int
    seq_len: int = 25
    batch: int = 16
    tbptt: int = 0
    clip: float = 0.0
    max_time: float = 0.0


def make_optimizer(name, params, lr):
    """"adagrad", "adam", or "sgd" (with momentum 0.9) over ``params``."""
    if name == "adagrad":
        return optim.Adagrad(params, lr=lr)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    return optim.SGD(params, lr=lr, momentum=0.9)


def chunk_loss(model, task, xs, targets, state):
    """The loss on one chunk of time steps, and the state after it.

    Per-step tasks score every step of the chunk; many-to-one tasks only the final
    state (then ``state`` must be None: the whole sequence is one chunk).
    Returns (loss, logits, state).
    """
    if task.many_to_one:
        logits = model.run_last(tg.tensor(xs))
        if task.regression:
            return F.mse_loss(logits, targets), logits, None
        return F.cross_entropy(logits, targets), logits, None
    logits, state = model.run(tg.tensor(xs), state)
    return F.cross_entropy(logits, targets, ignore_index=data.IGNORE_INDEX), logits, state


def train_step(model, task, optimizer, schedule, rng):
    """One batch: forward, backward, clip, update; in chunks of ``schedule.tbptt`` steps
    with the state carried over and detached between them (truncated BPTT).
    Returns the batch's mean loss."""
    T = schedule.seq_len
    xs, targets, _ = task.sample(T, schedule.batch, rng)
    chunk = schedule.tbptt or T
    losses, state = [], None
    for start in range(0, T, chunk):
        piece = slice(start, start + chunk)
        chunk_targets = targets if task.many_to_one else targets[piece]
        if not task.many_to_one and (chunk_targets == data.IGNORE_INDEX).all():
            with tg.no_grad():
                _, state = model.run(tg.tensor(xs[piece]), state)
            continue
        loss, _, state = chunk_loss(model, task, xs if task.many_to_one else xs[piece],
                                    chunk_targets, state)
        optimizer.zero_grad()
        loss.backward()
        if schedule.clip:
            optim.clip_grad_norm_(model.parameters(), schedule.clip)
        optimizer.step()
        losses.append(loss.item())
        state = detach_state(state)
    return float(np.mean(losses))


def evaluate(model, task, T, B, rng):
    """Loss and accuracy on a fresh batch (accuracy on the ambiguous words for the
    entity task, where the unidirectional/bidirectional difference lies)."""
    xs, targets, ambiguous = task.sample(T, B, rng)
    with tg.no_grad():
        loss, logits, _ = chunk_loss(model, task, xs, targets, None)
    if task.regression:
        return loss.item(), None
    predicted = logits.data.argmax(axis=-1)
    labelled = targets != data.IGNORE_INDEX if ambiguous is None else ambiguous
    return loss.item(), float((predicted == targets)[labelled].mean())


# ---- the loop -----------------------------------------------------------------------------
class Progress:
    """Step, loss, smoothed loss, steps/s and time left: one updating line on a
    terminal, or about twenty plain lines when the output is a file or a pipe."""

    def __init__(self, stream, steps, max_time):
        self.stream, self.steps, self.max_time = stream, steps, max_time
        self.tty = stream.isatty()
        self.every = max(1, steps // 20)
        self.start = self.last_draw = time.perf_counter()

    def elapsed(self):
        return time.perf_counter() - self.start

    def line(self, step, loss, smooth):
        elapsed = self.elapsed()
        rate = step / elapsed if elapsed > 0 else 0.0
        left = (self.steps - step) / rate if rate else float("inf")
        if self.max_time:
            left = min(left, max(0.0, self.max_time - elapsed))
        return (f"step {step:>{len(str(self.steps))}}/{self.steps}  loss {loss:.4f}  "
                f"smoothed {smooth:.4f}  {rate:.1f} steps/s  {left:.0f}s left")

    def update(self, step, loss, smooth):
        now = time.perf_counter()
        if self.tty:
            if now - self.last_draw >= 0.1 or step == self.steps:
                self.stream.write("\r" + self.line(step, loss, smooth) + "\x1b[K")
                self.stream.flush()
                self.last_draw = now
        elif step % self.every == 0 or step == 1:
            print(self.line(step, loss, smooth), file=self.stream, flush=True)

    def close(self, step, loss, smooth):
        """End the updating line with the last values."""
        if self.tty:
            self.stream.write("\r" + self.line(step, loss, smooth) + "\x1b[K\n")
        elif step % self.every:
            print(self.line(step, loss, smooth), file=self.stream)
        self.stream.flush()


@dataclass
class Outcome:
    """How a run ended: ``steps`` completed, the smoothed loss, the seconds it took,
    and whether Ctrl-C stopped it (then after step ``steps``)."""

    steps: int
    smoothed: float
    seconds: float
    interrupted: bool = False


def fit(model, task, optimizer, schedule, rng, out=sys.stdout):
    """Train for ``schedule.steps`` steps (or ``schedule.max_time`` seconds), showing
    progress on ``out``. Ctrl-C ends the run once the step it came in finishes (a
    second Ctrl-C at once), without a traceback: the Outcome says so, and the model
    holds the weights of its last whole step, ``steps``."""
    progress = Progress(out, schedule.steps, schedule.max_time)
    smooth, step, loss, noted = task.baseline, 0, float("nan"), []
    try:
        with _ctrl_c_noted(noted):
            for step in range(1, schedule.steps + 1):
                loss = train_step(model, task, optimizer, schedule, rng)
                smooth = 0.95 * smooth + 0.05 * loss
                progress.update(step, loss, smooth)
                if noted or schedule.max_time and progress.elapsed() >= schedule.max_time:
                    break
    except KeyboardInterrupt:  # raised inside a step: a second Ctrl-C, or no handler of ours
        noted, step = [True], step - 1
    if noted:  # (step is the last whole one)
        if progress.tty:
            out.write("\n")
        return Outcome(step, smooth, progress.elapsed(), interrupted=True)
    progress.close(step, loss, smooth)
    return Outcome(step, smooth, progress.elapsed())


@contextlib.contextmanager
def _ctrl_c_noted(noted):
    """Inside the block a first Ctrl-C (SIGINT) is appended to ``noted`` instead of
    raising KeyboardInterrupt wherever the program is. Raised inside a destructor (such
    as the one that gives a weight its writable array back once no graph holds it),
    a KeyboardInterrupt is printed and lost, and the run would go on: about one Ctrl-C
    in sixty, measured. Only where Python's own handler is in place, in the main thread."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def note(signum, frame):
        if noted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        noted.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
