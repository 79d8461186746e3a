"""The command line: ``python -m rnn`` (or the ``rnn`` console script).

    rnn                       # = rnn train: a character model on the built-in text, ~1 min
    rnn train --task parity --model gru --hidden 16 --seq-len 8 --steps 500
    rnn sample --prefix "A graph" --length 300 --temperature 0.7
    rnn draw --model elman --steps 4 --grads --out docs/unrolled.svg
    rnn params --input 10 --hidden 20 --output 5

Every command returns an exit status: 0 on success, 2 for bad arguments (a one-line
message, never a traceback), 1 when a figure could not be rendered (its DOT source is
written instead), 130 when training was interrupted with Ctrl-C (after saving the
checkpoint it had).

Checkpoints are ``tg.save`` archives (.npz, no pickle): the model's state dict plus
``CONFIG_KEY``, the model's configuration (task, kind, sizes, vocabulary) as UTF-8
JSON bytes in a uint8 array, so that ``sample`` can rebuild the model.
"""
import argparse
import json
import math
import pathlib
import sys
import time
from dataclasses import dataclass

import numpy as np

import tinygraph as tg
from tinygraph import functional as F
from tinygraph import nn, optim

from . import data, viz
from .counting import GATES, count_parameters
from .layers import GRU, LSTM, RNN, detach_state
from .models import ElmanRNN

TASKS = ("chars", "copy", "parity", "adding", "sentiment", "entities")
MODELS = ("elman", "rnn", "lstm", "gru")
OPTIMIZERS = ("adagrad", "adam", "sgd")
CONFIG_KEY = "__config__"
CHECKPOINT_FORMAT = "rnn-checkpoint/1"
DRAW_FORMATS = ("svg", "png", "pdf", "dot")
DRAWN_STEPS = 4         # time steps in the graph the trainer draws
INTERRUPTED = 130       # the shell's status for a process stopped by SIGINT


class UsageError(Exception):
    """Bad arguments or inputs: main() prints the message on one line, exits with 2."""


# ---- models -------------------------------------------------------------------------------
class Elman(ElmanRNN):
    """The notes' ElmanRNN, with the interface the trainer drives every model through."""

    def run(self, xs, state=None):
        """Per-step logits o<t> (T, B, p) and the last state a<T> (B, n)."""
        logits, _ = self(xs, state, stack_states=False)
        return logits, self.last_states[-1]

    def run_last(self, xs):
        """Many-to-one: o<T> = W_ya a<T> + b_y, (B, p)."""
        logits, _ = self.run(xs)
        return logits[-1]


class Stacked(nn.Module):
    """A PyTorch-style recurrent layer (rnn.RNN, LSTM or GRU: stacked, bidirectional)
    with the output layer o<t> = W_ya a<t> + b_y on its D*n outputs."""

    LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}

    def __init__(self, kind, input_size, hidden_size, output_size, num_layers=1,
                 bidirectional=False):
        super().__init__()
        self.layers = self.LAYERS[kind](input_size, hidden_size, num_layers=num_layers,
                                        bidirectional=bidirectional)
        width = (2 if bidirectional else 1) * hidden_size
        bound = 1 / math.sqrt(width)
        self.W_ya = nn.uniform_parameter((output_size, width), bound)
        self.b_y = nn.uniform_parameter((output_size,), bound)

    def forward(self, xs, state=None):
        """(logits (T, B, p), h_n): the layer's outputs through the output layer."""
        out, h_n = self.layers(xs, state)
        return tg.linear(out, self.W_ya, self.b_y), h_n

    def run(self, xs, state=None):
        return self(xs, state)

    def run_last(self, xs):
        """Many-to-one from the last layer's final states. For a bidirectional layer
        these are [a→<T> ; a←<1>]: out[-1] would hold a←<T>, which has read x<T> only."""
        _, h_n = self.layers(xs)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n
        directions = 2 if self.layers.bidirectional else 1
        last = h_n[-1] if directions == 1 else tg.concat([h_n[-2], h_n[-1]], axis=1)
        return tg.linear(last, self.W_ya, self.b_y)


def build_model(config):
    """The model a configuration dict describes (see ``model_config``)."""
    kind = config["model"]
    sizes = (config["input_size"], config["hidden"], config["output_size"])
    if kind == "elman":
        return Elman(*sizes)
    return Stacked(kind, *sizes, num_layers=config["layers"],
                   bidirectional=config["bidirectional"])


# ---- tasks --------------------------------------------------------------------------------
@dataclass
class Task:
    """A training task: how to draw a batch and how to score the model on it.

    ``sample(T, B, rng)`` returns (xs (T, B, m), targets, ambiguous or None).
    ``many_to_one``: one target per sequence (from the final state), else one per step.
    ``regression``: mean squared error, else cross-entropy. ``baseline``: the loss of
    a model that has learned nothing (ln of the number of classes, or 1/6 for adding),
    described by ``baseline_text``.
    """

    name: str
    input_size: int
    output_size: int
    sample: object
    many_to_one: bool = False
    regression: bool = False
    baseline: float = 0.0
    baseline_text: str = ""
    vocab: list = None
    prefix: str = None


def make_task(name, corpus=None):
    if name == "chars":
        V = corpus.vocab_size
        return Task("chars", V, V, lambda T, B, rng: corpus.batch(T, B, rng) + (None,),
                    baseline=math.log(V), baseline_text=f"ln V = ln {V}, uniform over "
                    f"the vocabulary", vocab=corpus.chars,
                    prefix=(corpus.text.split() or [corpus.text])[0][:20])
    if name == "copy":
        return Task("copy", 4, 4, lambda T, B, rng: data.copy(T, B, rng=rng) + (None,),
                    baseline=math.log(4), baseline_text="ln 4, uniform over 4 symbols")
    if name == "parity":
        return Task("parity", 1, 2, lambda T, B, rng: data.parity(T, B, rng) + (None,),
                    baseline=math.log(2), baseline_text="ln 2, a coin flip")
    if name == "adding":
        return Task("adding", 2, 1, lambda T, B, rng: data.adding(T, B, rng) + (None,),
                    many_to_one=True, regression=True, baseline=1 / 6,
                    baseline_text="1/6, the MSE of always answering 1")
    if name == "sentiment":
        return Task("sentiment", len(data.SENTIMENT_VOCAB), 2,
                    lambda T, B, rng: data.sentiment(T, B, rng) + (None,),
                    many_to_one=True, baseline=math.log(2), baseline_text="ln 2, a coin flip")
    return Task("entities", len(data.ENTITY_VOCAB), 2,
                lambda T, B, rng: data.entity(T, B, rng=rng),
                baseline=math.log(2), baseline_text="ln 2, a coin flip")


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


# ---- checkpoints --------------------------------------------------------------------------
def ensure_folder(folder):
    """Create ``folder`` if needed; UsageError if it cannot be (a file has its name, say)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot write into {folder}: {err.strerror}") from None


def save_checkpoint(model, config, path):
    path = pathlib.Path(path)
    blob = np.frombuffer(json.dumps(config).encode("utf-8"), dtype=np.uint8)
    tg.save({**model.state_dict(), CONFIG_KEY: blob}, path)
    return path


def read_checkpoint(path):
    """(config, state_dict) from a checkpoint; UsageError when it is missing or not one."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UsageError(f"checkpoint {path} does not exist (train one with: "
                         f"python -m rnn train --checkpoint {path})")
    try:
        arrays = tg.load(path)
    except (ValueError, OSError) as err:
        raise UsageError(f"{path} is not a checkpoint: {err}") from None
    blob = arrays.pop(CONFIG_KEY, None)
    try:
        config = json.loads(bytes(blob.astype(np.uint8)).decode("utf-8"))
    except (AttributeError, ValueError):
        config = None
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path} holds no rnn model configuration: it was not written "
                         f"by python -m rnn train")
    return config, arrays


def load_weights(model, arrays, path):
    try:
        model.load_state_dict(arrays)
    except RuntimeError as err:
        raise UsageError(f"checkpoint {path} does not match its model: {err}") from None


def model_config(args, task):
    return {"format": CHECKPOINT_FORMAT, "task": task.name, "model": args.model,
            "input_size": task.input_size, "hidden": args.hidden,
            "output_size": task.output_size, "layers": args.layers,
            "bidirectional": args.bidirectional, "vocab": task.vocab,
            "prefix": task.prefix}


def check_resume(config, resumed, path):
    keys = ("task", "model", "input_size", "hidden", "output_size", "layers",
            "bidirectional")
    different = [f"{key} {resumed.get(key)!r} (asked for {config[key]!r})"
                 for key in keys if resumed.get(key) != config[key]]
    if resumed.get("vocab") != config["vocab"]:
        different.append("its vocabulary (it was trained on another text)")
    if different:
        raise UsageError(f"checkpoint {path} does not match the model asked for: it has "
                         + ", ".join(different))


# ---- progress -----------------------------------------------------------------------------
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


# ---- train --------------------------------------------------------------------------------
def make_optimizer(name, params, lr):
    if name == "adagrad":
        return optim.Adagrad(params, lr=lr)
    if name == "adam":
        return optim.Adam(params, lr=lr)
    return optim.SGD(params, lr=lr, momentum=0.9)


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
    if args.text is not None and args.task != "chars":
        raise UsageError("--text is the training text of --task chars")


def train(args):
    check_train_args(args)
    corpus = None
    if args.task == "chars":
        corpus = load_text(args.text)
        if len(corpus.ids) <= args.seq_len:
            raise UsageError(f"--seq-len {args.seq_len} is longer than the text "
                             f"({len(corpus.ids)} characters)")
    task = make_task(args.task, corpus)
    try:
        task.sample(args.seq_len, 1, np.random.default_rng(0))
    except ValueError as err:
        raise UsageError(f"--seq-len {args.seq_len} does not suit --task {args.task}: "
                         f"{err}") from None
    out_dir = pathlib.Path(args.out_dir)
    name = f"{args.task}-{args.model}"
    checkpoint = pathlib.Path(args.checkpoint or out_dir / f"{name}.npz")
    for folder in (out_dir, checkpoint.parent):    # before a minute of training, not after
        ensure_folder(folder)

    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = model_config(args, task)
    model = build_model(config)
    if args.resume:
        resumed, arrays = read_checkpoint(args.resume)
        check_resume(config, resumed, args.resume)
        load_weights(model, arrays, args.resume)
    optimizer = make_optimizer(args.optimizer, list(model.parameters()), args.lr)
    out = sys.stdout

    print(f"training {describe(config)} on the {task.name} task: "
          f"{model.num_parameters():,} parameters, T = {args.seq_len}, B = {args.batch}, "
          f"{args.optimizer} lr {args.lr}"
          + (f", clip {args.clip}" if args.clip else "")
          + (f", truncated BPTT every {args.tbptt} steps" if args.tbptt else ""), file=out)
    print(f"baseline (a model that learned nothing): {task.baseline:.4f} "
          f"({task.baseline_text})", file=out, flush=True)

    progress = Progress(out, args.steps, args.max_time)
    smooth, step, loss_value = task.baseline, 0, float("nan")
    try:
        for step in range(1, args.steps + 1):
            loss_value = train_step(model, task, optimizer, args, rng)
            smooth = 0.95 * smooth + 0.05 * loss_value
            progress.update(step, loss_value, smooth)
            if args.max_time and progress.elapsed() >= args.max_time:
                break
    except KeyboardInterrupt:
        if progress.tty:
            out.write("\n")
        config.update(step=step - 1, loss=smooth)
        path = save_checkpoint(model, config, checkpoint)
        print(f"interrupted at step {step}: checkpoint of step {step - 1} saved to {path}",
              file=out, flush=True)
        return INTERRUPTED
    progress.close(step, loss_value, smooth)
    seconds = progress.elapsed()

    loss, accuracy = evaluate(model, task, args.seq_len, 64, np.random.default_rng(args.seed + 1))
    where = "random windows of the text" if task.name == "chars" else "fresh sequences"
    print(f"{step} steps in {seconds:.1f}s; loss on 64 {where} {loss:.4f} vs "
          f"baseline {task.baseline:.4f} ({task.baseline_text})"
          + (f"; accuracy {accuracy:.1%}" + (" on the ambiguous words (teddy, washington)"
                                             if task.name == "entities" else "")
             if accuracy is not None else ""), file=out)
    if task.name == "chars":
        print(f"sample (temperature {args.temperature}):", file=out)
        text = generate(model, config, task.prefix, args.sample_length, args.temperature,
                        np.random.default_rng(args.seed))
        print(text, file=out)
    config.update(step=step, loss=loss)
    path = save_checkpoint(model, config, checkpoint)
    print(f"checkpoint: {path}", file=out)
    # without Graphviz the trainer still succeeds: the figure is then the .dot
    _, figure = draw_trained(model, task, out_dir / f"{name}-unrolled.svg", rng)
    print(f"unrolled graph ({DRAWN_STEPS} steps, after one backward): {figure}", file=out)
    print(f"output directory: {out_dir}", file=out)
    return 0


def train_step(model, task, optimizer, args, rng):
    """One batch: forward, backward, clip, update; in chunks of ``args.tbptt`` steps
    with the state carried over and detached between them (truncated BPTT).
    Returns the batch's mean loss."""
    xs, targets, _ = task.sample(args.seq_len, args.batch, rng)
    chunk = args.tbptt or args.seq_len
    losses, state = [], None
    for start in range(0, args.seq_len, chunk):
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
        if args.clip:
            optim.clip_grad_norm_(model.parameters(), args.clip)
        optimizer.step()
        losses.append(loss.item())
        state = detach_state(state)
    return float(np.mean(losses))


def describe(config):
    kind = {"elman": "ElmanRNN", "rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[config["model"]]
    extra = ""
    if config["model"] != "elman":
        extra = (f", {config['layers']} layer{'s' if config['layers'] > 1 else ''}"
                 + (", bidirectional" if config["bidirectional"] else ""))
    return (f"{kind}(m={config['input_size']}, n={config['hidden']}, "
            f"p={config['output_size']}{extra})")


def load_text(path):
    if path is None:
        return data.load_corpus()
    try:
        return data.CharCorpus(pathlib.Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"cannot use --text {path}: {err}") from None


# ---- sample -------------------------------------------------------------------------------
def generate(model, config, prefix, length, temperature, rng):
    """``prefix`` followed by ``length`` characters sampled one at a time from
    softmax(o<t> / temperature) (argmax at temperature 0), each fed back as x<t+1>."""
    vocab = config["vocab"]
    index = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(prefix) - index.keys())
    if unknown:
        raise UsageError(f"--prefix holds characters the model never saw: "
                         f"{''.join(unknown)!r}")
    if not prefix:
        raise UsageError("--prefix must hold at least one character")
    eye = np.eye(len(vocab))
    ids = [index[c] for c in prefix]
    with tg.no_grad():
        logits, state = model.run(tg.tensor(eye[ids][:, None, :]))
        for _ in range(length):
            o = logits.data[-1, 0]
            if temperature == 0:
                next_id = int(o.argmax())
            else:
                p = np.exp((o - o.max()) / temperature)
                next_id = int(rng.choice(len(vocab), p=p / p.sum()))
            ids.append(next_id)
            logits, state = model.run(tg.tensor(eye[[next_id]][:, None, :]), state)
    return "".join(vocab[i] for i in ids)


def sample(args):
    config, arrays = read_checkpoint(args.checkpoint)
    if config["task"] != "chars":
        raise UsageError(f"{args.checkpoint} was trained on the {config['task']} task; "
                         f"sample needs a character model (python -m rnn train --task chars)")
    model = build_model(config)
    load_weights(model, arrays, args.checkpoint)
    prefix = args.prefix if args.prefix is not None else config["prefix"]
    print(generate(model, config, prefix, args.length, args.temperature,
                   np.random.default_rng(args.seed)))
    return 0


# ---- draw ---------------------------------------------------------------------------------
def traced_figure(model, xs, targets=None, loss_fn=None, detail="cell"):
    """The unrolled graph after one backward pass of the summed loss L, as a Digraph."""
    run = viz.trace(model, xs, targets, loss_fn=loss_fn)
    run.loss.name = "L"
    return run.to_dot(detail=detail)


def write_figure(digraph, path):
    """Render ``digraph`` to ``path`` (format from the suffix) and write its DOT source
    beside it; without Graphviz's ``dot``, only the .dot. Returns (status, message)."""
    path = pathlib.Path(path)
    dot_path = tg.viz.render(digraph, path.with_suffix(".dot"))
    if path.suffix == ".dot":
        return 0, str(dot_path)
    try:
        tg.viz.render(digraph, path)
    except tg.viz.GraphvizNotFound:
        return 1, (f"{dot_path} (Graphviz's dot was not found, so no {path.suffix}: "
                   f"install it, e.g. apt-get install graphviz or brew install graphviz)")
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


def draw(args):
    path = pathlib.Path(args.out)
    if path.suffix.lstrip(".") not in DRAW_FORMATS:
        raise UsageError(f"--out {path} must end in one of "
                         + ", ".join(f".{f}" for f in DRAW_FORMATS))
    ensure_folder(path.parent)
    check_elman_shape(args)
    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = {"model": args.model, "input_size": args.input, "hidden": args.hidden,
              "output_size": args.output, "layers": args.layers,
              "bidirectional": args.bidirectional}
    model = build_model(config)
    xs = data.one_hot(rng.integers(0, args.input, size=(args.steps, args.batch)), args.input)
    targets = rng.integers(0, args.output, size=(args.steps, args.batch))
    if args.grads:
        digraph = traced_figure(model, xs, targets, detail=args.detail)
    else:
        digraph = viz.to_dot(model, xs, detail=args.detail)
    status, message = write_figure(digraph, path)
    print(f"{describe(config)} unrolled over T = {args.steps} steps"
          + (", after one backward pass" if args.grads else "") + f": {message}")
    return status


# ---- params -------------------------------------------------------------------------------
def params(args):
    m, n, p, layers = args.input, args.hidden, args.output, args.layers
    check_elman_shape(args)
    if args.model == "elman" and p is None:
        raise UsageError("--model elman needs --output (the size p of y^<t>)")
    kind = "rnn" if args.model == "elman" else args.model
    ours = count_parameters(args.model, m, n, p, layers, args.bidirectional)
    print(ours)
    torch_count = count_parameters(kind, m, n, p, layers, args.bidirectional)
    # the notes (and Keras's SimpleRNN and LSTM) keep one bias vector per cell where
    # PyTorch keeps two; Keras's GRU (reset_after=True) keeps two as well
    cells = layers * (2 if args.bidirectional else 1)
    one_bias = torch_count.total - cells * GATES[kind] * n
    keras = torch_count.total if kind == "gru" else one_bias
    torch_name = {"rnn": "nn.RNN", "lstm": "nn.LSTM", "gru": "nn.GRU"}[kind]
    keras_name = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}[kind]
    head = f" + nn.Linear({(2 if args.bidirectional else 1) * n}, {p})" if p else ""
    rows = [("the notes (one bias per cell)", torch_count.weights, one_bias),
            (f"PyTorch: {torch_name}({m}, {n}){head}", torch_count.weights,
             torch_count.total),
            (f"Keras: {keras_name}({n})" + (f" + Dense({p})" if p else ""),
             torch_count.weights, keras)]
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
                    "sample, draw the unrolled graph, count parameters. With no command: "
                    "train a character model on the built-in text (about a minute).")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train_parser = commands.add_parser(
        "train", help="train a model on a generated task (default: characters)",
        description="Train a model on one of rnn.data's tasks; print progress, save a "
                    "checkpoint and draw the unrolled graph.")
    train_parser.add_argument("--task", choices=TASKS, default="chars",
                              help="chars (next character of a text), copy, parity, adding, "
                                   "sentiment, entities (default: chars)")
    add_model_arguments(train_parser, hidden=100)
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
    train_parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    train_parser.add_argument("--out-dir", default="runs",
                              help="where the checkpoint and the graph go (default: runs)")
    train_parser.add_argument("--checkpoint",
                              help="checkpoint path (default: OUT_DIR/TASK-MODEL.npz)")
    train_parser.add_argument("--resume", help="start from this checkpoint's weights")
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
    sample_parser.add_argument("--seed", type=int, default=0)

    draw_parser = commands.add_parser(
        "draw", help="draw the unrolled graph of a model",
        description="Draw a model unrolled over T steps, forward only or after one "
                    "backward pass with the gradients through time.")
    add_model_arguments(draw_parser, hidden=4)
    draw_parser.add_argument("--input", type=positive_int, default=3,
                             help="input size m (default: 3)")
    draw_parser.add_argument("--output", type=positive_int, default=3,
                             help="output size p (default: 3)")
    draw_parser.add_argument("--steps", type=positive_int, default=4,
                             help="time steps T (default: 4)")
    draw_parser.add_argument("--batch", type=positive_int, default=1)
    draw_parser.add_argument("--grads", action="store_true",
                             help="run one backward pass and show the gradients")
    draw_parser.add_argument("--detail", choices=("cell", "ops"), default="cell",
                             help="one node per cell application, or every op")
    draw_parser.add_argument("--seed", type=int, default=0)
    draw_parser.add_argument("--out", default="unrolled.svg",
                             help="the figure: .svg, .png, .pdf or .dot; the DOT source "
                                  "is written beside it (default: unrolled.svg)")

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


COMMANDS = {"train": train, "sample": sample, "draw": draw, "params": params}


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
