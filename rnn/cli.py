"""The command line: ``python -m rnn`` (or the ``rnn`` console script).

    rnn                       # = rnn train: a character model on the built-in text, ~1 min
    rnn train --task parity --model gru --hidden 16 --seq-len 8 --steps 500
    rnn train --resume runs/parity-gru.npz --steps 500      # its task and model, 500 more
    rnn sample --prefix "A graph" --length 300 --temperature 0.7
    rnn draw --model elman --steps 4 --grads --out docs/unrolled.svg
    rnn explore --model lstm --steps 6 --out explore.html
    rnn params --input 10 --hidden 20 --output 5

This module parses the arguments, checks every path and file a command will read or
write before any work starts, and wires together ``rnn.data`` (the tasks),
``rnn.models`` (the models), ``rnn.training`` (the loop and the checkpoints) and
``rnn.viz`` (the figures and the explorer page).

Every command returns an exit status: 0 on success; 2 for a bad argument, path or
file (one line on stderr naming the problem and the fix, never a traceback), also when
a trained model could not be saved where asked (it is then saved beside the run, and
the line says where); 1 when a figure could not be rendered (its DOT source is written
instead); 130 when interrupted with Ctrl-C (training first saves the checkpoint it had);
141 when the reader of the output has gone (``rnn sample | head``; training goes on
quietly instead, and saves its model).
"""
import argparse
import math
import os
import pathlib
import sys

import numpy as np

import tinygraph as tg
from tinygraph import functional as F

from . import data, training, viz
from .counting import conventions, count_parameters
from .models import MODELS, build_model, describe, generate_text
from .training import UsageError, check_writable, read_checkpoint
from .viz.explore import RADII

OPTIMIZERS = ("adagrad", "adam", "sgd")
DRAW_FORMATS = ("svg", "png", "pdf", "dot")
DRAWN_STEPS = 4         # time steps in the graph the trainer draws
INTERRUPTED = 130       # the shell's status for a process stopped by SIGINT
READER_GONE = 141       # ... and by SIGPIPE: the reader of the output has gone (| head)
MODEL_DEFAULTS = {"task": "chars", "model": "elman", "hidden": 100, "layers": 1,
                  "bidirectional": False}
"""train's options that fix the model: taken from the checkpoint under --resume."""


# ---- train --------------------------------------------------------------------------------
def settle_model_options(args):
    """Fill in train's model options: from the --resume checkpoint, refusing any given
    on the command line that differs from it, else the defaults.
    Returns (the checkpoint's config, its weights), or (None, None)."""
    resumed = arrays = None
    if args.resume:
        resumed, arrays = read_checkpoint(args.resume, "--resume")
        conflicts = [conflict(key, getattr(args, key), resumed[key])
                     for key in MODEL_DEFAULTS
                     if getattr(args, key) is not None and getattr(args, key) != resumed[key]]
        if conflicts:
            raise UsageError(f"--resume {args.resume} holds {describe(resumed)} trained on "
                             f"the {resumed['task']} task: " + "; ".join(conflicts)
                             + "; drop the option to resume it as it is, or train a new "
                             "model without --resume")
    for key, default in MODEL_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, resumed[key] if resumed else default)
    return resumed, arrays


def conflict(key, given, stored):
    """One option against the checkpoint's value, in words."""
    if key == "bidirectional":
        return "--bidirectional conflicts with its one direction"
    return f"--{key} {given} conflicts with its --{key} {stored}"


def check_elman_shape(args):
    if args.model == "elman" and (args.layers != 1 or args.bidirectional):
        raise UsageError("--model elman is the notes' one-layer, one-direction model; "
                         "use --model rnn (or lstm, gru) for --layers > 1 or --bidirectional")


def check_train_args(args):
    check_elman_shape(args)
    if args.task == "chars" and args.bidirectional:
        raise UsageError("--bidirectional with --task chars would read the answer: the "
                         "reverse direction has already seen the next character")
    if args.task in ("adding", "sentiment") and args.tbptt:
        raise UsageError(f"--tbptt does not apply to --task {args.task}: its one target "
                         f"comes at the end of the sequence")
    if args.tbptt and args.bidirectional:
        raise UsageError("--tbptt with --bidirectional: the reverse direction of a chunk "
                         "would start from a state of the chunk before it (the past); "
                         "train a bidirectional model on whole sequences")
    if args.text is not None and args.task != "chars":
        raise UsageError("--text is the training text of --task chars")


def load_text(path, option="--text"):
    """The CharCorpus of the UTF-8 file at ``path`` (None: the built-in text)."""
    if path is None:
        return data.load_corpus()
    path = pathlib.Path(path)
    if path.is_dir():
        problem = "is a directory, not a text file"
    elif not path.exists():
        problem = "does not exist"
    else:
        try:
            return data.CharCorpus(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            problem = "is not UTF-8 text"
        except OSError as err:
            problem = f"cannot be read: {training.why(err)}"
        except ValueError as err:
            problem = f"cannot be learned: {err}"
    raise UsageError(f"{option} {path} {problem}; give a UTF-8 text file of at least "
                     f"two characters")


def chars_corpus(args, resumed):
    """The text to train on, and the path the checkpoint records for it: --text, else
    the resumed checkpoint's, else the built-in one. A resumed model must meet the
    characters it was trained on."""
    text = args.text if args.text is not None else (resumed or {}).get("text")
    where = "--text" if args.text is not None else f"the training text of --resume {args.resume}"
    corpus = load_text(text, where)
    if resumed and corpus.chars != resumed["vocab"]:
        trained_on = resumed.get("text") or "the built-in text"
        given = text or "the built-in text"
        raise UsageError(f"--resume {args.resume} was trained on {trained_on}, whose "
                         f"{len(resumed['vocab'])} characters differ from the {len(corpus.chars)}"
                         f" of {given}: give --text with the text it was trained on")
    return corpus, None if text is None else str(pathlib.Path(text).resolve())


class PipeSafe:
    """An output stream that goes quiet once its reader has gone (``rnn train | head``)
    instead of raising BrokenPipeError: the run goes on, and still saves its model."""

    def __init__(self, stream):
        self.stream, self.gone = stream, False

    def isatty(self):
        return self.stream.isatty()

    def write(self, text):
        self._guard(self.stream.write, text)

    def flush(self):
        self._guard(self.stream.flush)

    def _guard(self, call, *args):
        if self.gone:
            return
        try:
            call(*args)
        except BrokenPipeError:
            self.gone = True
            silence(self.stream)


def silence(stream):
    """Point ``stream``'s file at the null device, so that what it still holds (and
    Python's flush at exit) goes nowhere instead of raising again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):    # no file behind it (a test's capture)
        pass


def train(args):
    resumed, arrays = settle_model_options(args)
    check_train_args(args)
    corpus = text = None
    if args.task == "chars":
        corpus, text = chars_corpus(args, resumed)
        if len(corpus.ids) <= args.seq_len:
            raise UsageError(f"--seq-len {args.seq_len} is longer than the text "
                             f"({len(corpus.ids)} characters)")
    task = data.make_task(args.task, corpus)
    try:
        task.sample(args.seq_len, 1, np.random.default_rng(0))
    except ValueError as err:
        raise UsageError(f"--seq-len {args.seq_len} does not suit --task {args.task}: "
                         f"{err}") from None
    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = training.model_config(task, args.model, args.hidden, args.layers,
                                   args.bidirectional, text)
    model = build_model(config)
    if resumed:
        training.load_weights(model, arrays, args.resume, "--resume")
    # what the run will write, checked now rather than after a minute of training
    out_dir = pathlib.Path(args.out_dir)
    name = f"{args.task}-{args.model}"
    checkpoint = pathlib.Path(args.checkpoint or out_dir / f"{name}.npz")
    figure = out_dir / f"{name}-unrolled.svg"
    check_writable(checkpoint, "--checkpoint" if args.checkpoint else "--out-dir",
                   f"{name}.npz")
    for path in (figure, figure.with_suffix(".dot")):
        check_writable(path, "--out-dir", figure.name)
    optimizer = training.make_optimizer(args.optimizer, list(model.parameters()), args.lr)
    schedule = training.Schedule(args.steps, args.seq_len, args.batch, args.tbptt,
                                 args.clip, args.max_time)
    out = PipeSafe(sys.stdout)
    print(f"training {describe(config)} on the {task.name} task: "
          f"{model.num_parameters():,} parameters, T = {args.seq_len}, B = {args.batch}, "
          f"{args.optimizer} lr {args.lr}"
          + (f", clip {args.clip}" if args.clip else "")
          + (f", truncated BPTT every {args.tbptt} steps" if args.tbptt else "")
          + (f", resumed from {args.resume} (step {resumed.get('step', 0)})"
             if resumed else ""), file=out)
    print(f"baseline (a model that learned nothing): {task.baseline:.4f} "
          f"({task.baseline_text})", file=out, flush=True)

    outcome = training.fit(model, task, optimizer, schedule, rng, out)
    config.update(step=(resumed or {}).get("step", 0) + outcome.steps, loss=outcome.smoothed)
    if outcome.interrupted:
        path = save(model, config, checkpoint)
        print(f"interrupted after step {outcome.steps}: checkpoint of step "
              f"{outcome.steps} saved to {path}", file=out, flush=True)
        return INTERRUPTED
    loss, accuracy = training.evaluate(model, task, args.seq_len, 64,
                                       np.random.default_rng(args.seed + 1))
    where = "random windows of the text" if task.name == "chars" else "fresh sequences"
    print(f"{outcome.steps} steps in {outcome.seconds:.1f}s; loss on 64 {where} {loss:.4f} "
          f"vs baseline {task.baseline:.4f} ({task.baseline_text})"
          + (f"; accuracy {accuracy:.1%}" + (" on the ambiguous words (teddy, washington)"
                                             if task.name == "entities" else "")
             if accuracy is not None else ""), file=out)
    config.update(loss=loss)
    # saved before the sample and the figure, so that Ctrl-C during those keeps it
    print(f"checkpoint: {save(model, config, checkpoint)}", file=out, flush=True)
    if task.name == "chars":
        print(f"sample (temperature {args.temperature}):", file=out)
        print(generate_text(model, task.vocab, task.prefix, args.sample_length,
                            args.temperature, np.random.default_rng(args.seed)), file=out)
    # without Graphviz the trainer still succeeds: the figure is then the .dot
    _, message = draw_trained(model, task, figure, rng)
    print(f"unrolled graph ({DRAWN_STEPS} steps, after one backward): {message}", file=out)
    print(f"output directory: {out_dir}", file=out)
    return 0


def save(model, config, path):
    """Save the checkpoint; if ``path`` fails after all, the UsageError says where the
    model was saved instead (the command then exits with 2)."""
    written, problem = training.save_or_rescue(model, config, path)
    if problem:
        raise UsageError(f"{problem}; the model was saved to {written} instead "
                         f"(move it where you want it)")
    return written


# ---- sample -------------------------------------------------------------------------------
def check_prefix(prefix, vocab):
    unknown = sorted(set(prefix) - set(vocab))
    if unknown:
        raise UsageError(f"--prefix holds characters the model never saw: "
                         f"{''.join(unknown)!r}")
    if not prefix:
        raise UsageError("--prefix must hold at least one character")


def sample(args):
    config, arrays = read_checkpoint(args.checkpoint)
    if config["task"] != "chars":
        raise UsageError(f"{args.checkpoint} was trained on the {config['task']} task; "
                         f"sample needs a character model (python -m rnn train --task chars)")
    prefix = args.prefix if args.prefix is not None else config["prefix"]
    check_prefix(prefix, config["vocab"])
    model = build_model(config)
    training.load_weights(model, arrays, args.checkpoint)
    print(generate_text(model, config["vocab"], prefix, args.length, args.temperature,
                        np.random.default_rng(args.seed)))
    return 0


# ---- draw ---------------------------------------------------------------------------------
def traced_figure(model, xs, targets=None, loss_fn=None, detail="cell", layout="proxy"):
    """The unrolled graph after one backward pass of the summed loss L, as a Digraph."""
    run = viz.trace(model, xs, targets, loss_fn=loss_fn)
    run.loss.name = "L"
    return run.to_dot(detail=detail, shared=layout)


def write_figure(digraph, path):
    """Render ``digraph`` to ``path`` (format from the suffix) and write its DOT source
    beside it; without Graphviz's ``dot``, only the .dot. Returns (status, message)."""
    path = pathlib.Path(path)
    try:
        dot_path = tg.viz.render(digraph, path.with_suffix(".dot"))
        if path.suffix == ".dot":
            return 0, str(dot_path)
        tg.viz.render(digraph, path)
    except tg.viz.GraphvizNotFound:
        return 1, (f"{dot_path} (Graphviz's dot was not found, so no {path.suffix}: "
                   f"install it, e.g. apt-get install graphviz or brew install graphviz)")
    except OSError as err:
        raise UsageError(f"cannot write the figure {err.filename or path}: "
                         f"{training.why(err)}; choose a folder you can write to") from None
    return 0, f"{path} (and {dot_path.name})"


def draw_trained(model, task, path, rng):
    xs, targets, _ = task.sample(DRAWN_STEPS, 1, rng)
    if not task.many_to_one:
        return write_figure(traced_figure(model, xs, targets), path)

    def loss_fn(logits):    # many-to-one: the loss is read at the last step only
        if task.regression:
            return F.mse_loss(logits[-1], targets, reduction="sum")
        return F.cross_entropy(logits[-1], targets, reduction="sum")
    return write_figure(traced_figure(model, xs, loss_fn=loss_fn), path)


def drawn_model(args):
    """(config, model, xs, targets) of draw's and explore's options: the model seeded
    with --seed, T = --steps one-hot inputs and random classes, B = --batch."""
    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = {"model": args.model, "input_size": args.input, "hidden": args.hidden,
              "output_size": args.output, "layers": args.layers,
              "bidirectional": args.bidirectional}
    model = build_model(config)
    xs = data.one_hot(rng.integers(0, args.input, size=(args.steps, args.batch)), args.input)
    targets = rng.integers(0, args.output, size=(args.steps, args.batch))
    return config, model, xs, targets


def draw(args):
    path = pathlib.Path(args.out)
    if path.suffix.lstrip(".") not in DRAW_FORMATS:
        raise UsageError(f"--out {path} must end in one of "
                         + ", ".join(f".{f}" for f in DRAW_FORMATS))
    check_elman_shape(args)
    for written in (path, path.with_suffix(".dot")):
        check_writable(written, "--out", "unrolled.svg")
    config, model, xs, targets = drawn_model(args)
    if args.grads:
        digraph = traced_figure(model, xs, targets, detail=args.detail, layout=args.layout)
    else:
        digraph = viz.to_dot(model, xs, detail=args.detail, shared=args.layout)
    status, message = write_figure(digraph, path)
    print(f"{describe(config)} unrolled over T = {args.steps} steps"
          + (", after one backward pass" if args.grads else "") + f": {message}")
    return status


# ---- explore ------------------------------------------------------------------------------
def explore(args):
    path = pathlib.Path(args.out)
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--out {path} must end in .html: the explorer is one web page")
    check_elman_shape(args)
    check_writable(path, "--out", "explore.html")
    config, model, xs, targets = drawn_model(args)
    run = viz.trace(model, xs, targets)
    run.loss.name = "L"
    try:
        viz.explore(run, path, radii=args.radii, title=f"{describe(config)}: backward "
                                                        f"through T = {args.steps} steps")
    except OSError as err:
        raise UsageError(f"cannot write the page {err.filename or path}: "
                         f"{training.why(err)}; choose a folder you can write to") from None
    radii = ", ".join(f"{r:g}" for r in args.radii)
    print(f"{describe(config)} unrolled over T = {args.steps} steps, its backward pass"
          + (f" and the runs with W_aa at spectral radius {radii}" if args.radii else "")
          + f": {path}")
    return 0


# ---- params -------------------------------------------------------------------------------
def params(args):
    m, n, p, layers = args.input, args.hidden, args.output, args.layers
    check_elman_shape(args)
    if args.model == "elman" and p is None:
        raise UsageError("--model elman needs --output (the size p of y^<t>)")
    print(count_parameters(args.model, m, n, p, layers, args.bidirectional))
    rows = conventions(args.model, m, n, p, layers, args.bidirectional)
    width = max(len(row[0]) for row in rows)
    print(f"\n{'convention':<{width}}  {'without biases':>14}  {'with biases':>11}")
    for label, weights, total in rows:
        print(f"{label:<{width}}  {weights:>14,}  {total:>11,}")
    return 0


# ---- the parser ---------------------------------------------------------------------------
class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole_number(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{text} must be at least {least}")
    return value


def positive_int(text):
    return _whole_number(text, 1)


def nonnegative_int(text):
    return _whole_number(text, 0)


def _number(text, zero_allowed):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        kind = "a finite number >= 0" if zero_allowed else "a positive number"
        raise argparse.ArgumentTypeError(f"{text} must be {kind}")
    return value


def positive_float(text):
    return _number(text, zero_allowed=False)


def nonnegative_float(text):
    return _number(text, zero_allowed=True)


def add_unrolled_sizes(parser):
    """The sizes of a small model drawn or explored unrolled: m, p, T and B."""
    parser.add_argument("--input", type=positive_int, default=3,
                        help="input size m (default: 3)")
    parser.add_argument("--output", type=positive_int, default=3,
                        help="output size p (default: 3)")
    parser.add_argument("--steps", type=positive_int, default=4,
                        help="time steps T (default: 4)")
    parser.add_argument("--batch", type=positive_int, default=1)


def add_model_arguments(parser, hidden):
    parser.add_argument("--model", choices=MODELS, default="elman",
                        help="elman: the notes' ElmanRNN; rnn, lstm, gru: PyTorch-style "
                             "layers with an output layer (default: elman)")
    parser.add_argument("--hidden", type=positive_int, default=hidden,
                        help=f"hidden size n (default: {hidden})")
    parser.add_argument("--layers", type=positive_int, default=1,
                        help="stacked layers (rnn, lstm, gru; default: 1)")
    parser.add_argument("--bidirectional", action="store_true",
                        help="a reverse direction too (rnn, lstm, gru)")


def make_parser():
    parser = Parser(prog="rnn", description="Recurrent networks on tinygraph: train, "
                    "sample, draw the unrolled graph, explore its backward pass, count "
                    "parameters. With no command: train a character model on the built-in "
                    "text (about a minute).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train_parser = commands.add_parser(
        "train", help="train a model on a generated task (default: characters)",
        description="Train a model on one of rnn.data's tasks; print progress, save a "
                    "checkpoint and draw the unrolled graph.")
    train_parser.add_argument("--task", choices=data.TASKS,
                              help="chars (next character of a text), copy, parity, adding, "
                                   "sentiment, entities (default: chars)")
    add_model_arguments(train_parser, hidden=100)
    # None marks a model option not given, so that --resume can tell a conflict
    # from a default: train fills them in (settle_model_options)
    train_parser.set_defaults(**dict.fromkeys(MODEL_DEFAULTS))
    train_parser.add_argument("--seq-len", type=positive_int, default=25,
                              help="time steps T per sequence (default: 25)")
    train_parser.add_argument("--batch", type=positive_int, default=16,
                              help="sequences per step (default: 16)")
    train_parser.add_argument("--steps", type=positive_int, default=12000,
                              help="training steps (default: 12000, or what --max-time "
                                   "allows)")
    train_parser.add_argument("--max-time", type=nonnegative_float, default=60.0,
                              help="stop after this many seconds even if steps remain; "
                                   "0: no limit (default: 60)")
    train_parser.add_argument("--lr", type=positive_float, default=0.1,
                              help="learning rate (default: 0.1)")
    train_parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adagrad",
                              help="adagrad (min-char-rnn's), adam, or sgd with momentum "
                                   "0.9 (default: adagrad)")
    train_parser.add_argument("--clip", type=nonnegative_float, default=5.0,
                              help="clip the gradients' joint norm to this; 0: no "
                                   "clipping (default: 5)")
    train_parser.add_argument("--tbptt", type=nonnegative_int, default=0,
                              help="truncated BPTT: backward and update every this many "
                                   "steps, carrying the state detached; 0: full BPTT")
    train_parser.add_argument("--seed", type=nonnegative_int, default=0,
                              help="random seed (default: 0)")
    train_parser.add_argument("--out-dir", default="runs",
                              help="where the checkpoint and the graph go (default: runs)")
    train_parser.add_argument("--checkpoint",
                              help="checkpoint path (default: OUT_DIR/TASK-MODEL.npz)")
    train_parser.add_argument("--resume", help="go on training this checkpoint: its task, "
                                               "model, sizes and text, its weights")
    train_parser.add_argument("--text", help="train --task chars on this UTF-8 file "
                                             "instead of the built-in text")
    train_parser.add_argument("--temperature", type=nonnegative_float, default=0.8,
                              help="sampling temperature of the final sample")
    train_parser.add_argument("--sample-length", type=nonnegative_int, default=200,
                              help="characters in the final sample (default: 200)")

    sample_parser = commands.add_parser(
        "sample", help="generate text from a character checkpoint",
        description="Sample text from a checkpoint written by train --task chars.")
    sample_parser.add_argument("--checkpoint", default="runs/chars-elman.npz",
                               help="default: runs/chars-elman.npz (the default train's)")
    sample_parser.add_argument("--prefix", help="text to start from (default: the "
                                                "training text's first word)")
    sample_parser.add_argument("--length", type=nonnegative_int, default=300,
                               help="characters to generate (default: 300)")
    sample_parser.add_argument("--temperature", type=nonnegative_float, default=0.8,
                               help="divide the logits by this; 0: always the most "
                                    "likely character (default: 0.8)")
    sample_parser.add_argument("--seed", type=nonnegative_int, default=0)

    draw_parser = commands.add_parser(
        "draw", help="draw the unrolled graph of a model",
        description="Draw a model unrolled over T steps, forward only or after one "
                    "backward pass with the gradients through time.")
    add_model_arguments(draw_parser, hidden=4)
    add_unrolled_sizes(draw_parser)
    draw_parser.add_argument("--grads", action="store_true",
                             help="run one backward pass and show the gradients")
    draw_parser.add_argument("--layout", choices=("proxy", "once", "auto"), default="proxy",
                             help="how a step shows each shared weight it uses: proxy, a "
                                  "slice W(t) inside the step; once, an edge from the "
                                  "weight; auto, once up to 20 steps (default: proxy)")
    draw_parser.add_argument("--detail", choices=("cell", "ops"), default="cell",
                             help="one node per cell application, or every op")
    draw_parser.add_argument("--seed", type=nonnegative_int, default=0)
    draw_parser.add_argument("--out", default="unrolled.svg",
                             help="the figure: .svg, .png, .pdf or .dot; the DOT source "
                                  "is written beside it (default: unrolled.svg)")

    explore_parser = commands.add_parser(
        "explore", help="write the interactive page of a model's backward pass",
        description="Write one self-contained HTML page that steps through the backward "
                    "pass of a model unrolled over T steps: each weight's sum over time, "
                    "the gradient through time, a slider over the spectral radius of "
                    "W_aa, and how strongly each input moves each step's loss.")
    add_model_arguments(explore_parser, hidden=4)
    add_unrolled_sizes(explore_parser)
    explore_parser.add_argument("--radii", type=nonnegative_float, nargs="*",
                                default=list(RADII), metavar="RHO",
                                help="spectral radii of W_aa for the page's slider, "
                                     "besides the model's own (default: 0.5 0.75 1 1.25 "
                                     "1.5; none: just the model)")
    explore_parser.add_argument("--seed", type=nonnegative_int, default=0)
    explore_parser.add_argument("--out", default="explore.html",
                                help="the page (default: explore.html)")

    params_parser = commands.add_parser(
        "params", help="the parameter table for given sizes",
        description="Shapes and counts of every parameter, as the notes count them, "
                    "with PyTorch's and Keras's totals beside them.")
    params_parser.add_argument("--model", choices=MODELS, default="elman")
    params_parser.add_argument("--input", type=positive_int, required=True,
                               help="input size m")
    params_parser.add_argument("--hidden", type=positive_int, required=True,
                               help="hidden size n")
    params_parser.add_argument("--output", type=positive_int,
                               help="output size p (an output layer W_ya, b_y)")
    params_parser.add_argument("--layers", type=positive_int, default=1)
    params_parser.add_argument("--bidirectional", action="store_true")
    return parser


COMMANDS = {"train": train, "sample": sample, "draw": draw, "explore": explore,
            "params": params}


def main(argv=None):
    """Run the command line; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser()
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["train", *argv]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 2
    try:
        return COMMANDS[args.command](args)
    except UsageError as err:
        print(f"rnn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except MemoryError:
        sizes = {"train": "--hidden, --layers, --batch or --seq-len",
                 "draw": "--hidden, --input, --output, --layers, --steps or --batch",
                 "explore": "--hidden, --input, --output, --layers, --steps or --batch"}
        print(f"rnn {args.command}: error: not enough memory for the sizes given: choose "
              f"a smaller {sizes.get(args.command, '--length')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        silence(sys.stdout)
        return READER_GONE
