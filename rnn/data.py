"""Small sequence tasks generated in code: nothing is downloaded.

Every task takes its sizes and ``rng`` (an ``np.random.Generator`` or an int seed;
None draws from tinygraph's generator, so ``tg.manual_seed`` fixes it) and returns inputs in the (T, B, features) layout of
``rnn``'s models, plus integer class targets or float regression targets. The same
seed gives the same arrays. Each docstring states the chance-level baseline a model
must beat before it can be said to have learned anything.

    xs, ys = data.parity(T=10, B=32, rng=0)          # xs (10, 32, 1), ys (10, 32)
    corpus = data.load_corpus()                      # the text shipped with rnn
    xs, ys = corpus.batch(T=25, B=8, rng=0)          # one-hot (25, 8, V), next chars
    task = data.make_task("parity")                  # the same, as the trainer runs it
"""
import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from tinygraph import random as tg_random

IGNORE_INDEX = -100
"""Target for steps that carry no label (as PyTorch's default ``ignore_index``)."""


def _generator(rng):
    return tg_random.generator() if rng is None else np.random.default_rng(rng)


def one_hot(ids, size):
    """Integer ids of any shape -> float64 array of shape ids.shape + (size,)."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= size):
        raise ValueError(f"one_hot: ids must lie in [0, {size}), got {ids.min()}..{ids.max()}")
    return np.eye(size)[ids]


# ---- character-level language modelling -------------------------------------------
class CharCorpus:
    """A text and its character vocabulary, for a character-level language model.

    The vocabulary is the sorted set of characters in the text, so ids do not depend
    on the order characters first appear. A model that knows nothing predicts each
    of the V characters with probability 1/V: ln V nats per step (T ln V for a
    window summed over T steps), the loss an untrained model should start near.
    """

    def __init__(self, text):
        if len(text) < 2:
            raise ValueError("CharCorpus: the text needs at least two characters")
        self.text = text
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.ids = self.encode(text)

    @property
    def vocab_size(self):
        """V, the number of distinct characters."""
        return len(self.chars)

    def encode(self, text):
        """A string -> int64 array of character ids."""
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise KeyError(f"CharCorpus.encode: characters not in the vocabulary: {unknown}")
        return np.array([self.index[c] for c in text], dtype=np.int64)

    def decode(self, ids):
        """Character ids (any iterable of ints) -> the string they spell."""
        return "".join(self.chars[int(i)] for i in np.ravel(ids))

    def one_hot(self, ids):
        """Character ids -> one-hot float64 vectors, shape ids.shape + (V,)."""
        return one_hot(ids, self.vocab_size)

    def batch(self, T, B, rng=None):
        """B windows of T steps from random places in the text, for teacher forcing.

        Returns xs (T, B, V), the one-hot characters x<1>..x<T>, and ys (T, B), the
        ids of the characters that follow them: y<t> = x<t+1>, so at every step the
        model is fed the true previous character and asked for the next one.
        Chance: ln V per step.
        """
        if not 1 <= T < len(self.ids):
            raise ValueError(f"CharCorpus.batch: T must be in [1, {len(self.ids) - 1}] "
                             f"for a text of {len(self.ids)} characters, not {T}")
        starts = _generator(rng).integers(0, len(self.ids) - T, size=B)
        windows = self.ids[starts[None, :] + np.arange(T + 1)[:, None]]  # (T + 1, B)
        return self.one_hot(windows[:-1]), windows[1:]

    def sequential_batches(self, T, B):
        """The text cut into B parallel streams, yielded T steps at a time, in order.

        Window k+1 of row b continues exactly where window k of row b ended, so the
        hidden state can be carried from one window to the next and detached at the
        border (truncated BPTT). Yields (xs (T, B, V), ys (T, B)) as ``batch`` does.
        """
        length = (len(self.ids) - 1) // B
        if length < T:
            raise ValueError(f"CharCorpus.sequential_batches: {len(self.ids)} characters "
                             f"make {B} streams of {length} steps, fewer than T={T}")
        streams = self.ids[:length * B + 1]
        inputs = streams[:-1].reshape(B, length).T                         # (length, B)
        targets = streams[1:].reshape(B, length).T
        for start in range(0, length - T + 1, T):
            yield (self.one_hot(inputs[start:start + T]), targets[start:start + T])


def corpus_names():
    """The names of the texts shipped in ``rnn/corpus/`` (file names without .txt)."""
    folder = resources.files("rnn") / "corpus"
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


def load_corpus(name="graphs"):
    """A ``CharCorpus`` of a text shipped with rnn, written for the project."""
    path = resources.files("rnn") / "corpus" / f"{name}.txt"
    if not path.is_file():
        raise KeyError(f"load_corpus: no corpus named {name!r}; there are {corpus_names()}")
    return CharCorpus(path.read_text(encoding="utf-8"))


# ---- memory tasks -----------------------------------------------------------------
def adding(T, B, rng=None):
    """The adding problem (Hochreiter & Schmidhuber 1997): many-to-one regression.

    Each step carries two features: a value drawn uniformly from [0, 1) and a marker.
    Exactly two steps are marked, one in each half of the sequence; the target is
    the sum of the two marked values. Returns xs (T, B, 2) and ys (B, 1).

    Chance: always predicting 1 (the mean of the sum) gives MSE = Var(U1 + U2) = 1/6.
    The marked values may lie up to T - 1 steps before the end, so the task tests
    how far back a gradient can reach.
    """
    if T < 2:
        raise ValueError(f"adding: T must be at least 2 (one marker in each half), not {T}")
    rng = _generator(rng)
    values = rng.random((T, B))
    first = rng.integers(0, T // 2, size=B)
    second = rng.integers(T // 2, T, size=B)
    markers = np.zeros((T, B))
    rows = np.arange(B)
    markers[first, rows] = 1.0
    markers[second, rows] = 1.0
    ys = (values[first, rows] + values[second, rows])[:, None]
    return np.stack([values, markers], axis=-1), ys


def copy(T, B, vocab_size=4, delay=2, rng=None):
    """The delayed copy (echo): output at step t the symbol read at step t - delay.

    Symbols are drawn uniformly from ``vocab_size`` values. Returns xs (T, B,
    vocab_size) one-hot and ys (T, B) ids; the first ``delay`` steps have nothing to
    copy yet and hold ``IGNORE_INDEX``. The model has to keep the last ``delay``
    symbols in its state.

    Chance: accuracy 1/vocab_size and cross-entropy ln(vocab_size) per labelled step.
    """
    if not 0 <= delay < T:
        raise ValueError(f"copy: delay must be in [0, T) = [0, {T}), not {delay}")
    symbols = _generator(rng).integers(0, vocab_size, size=(T, B))
    ys = np.full((T, B), IGNORE_INDEX, dtype=np.int64)
    ys[delay:] = symbols[:T - delay]
    return one_hot(symbols, vocab_size), ys


def parity(T, B, rng=None):
    """Running parity: after each bit, is the count of ones so far odd?

    Returns xs (T, B, 1) of bits (0.0 or 1.0) and ys (T, B) with y<t> = x<1> xor ...
    xor x<t>; the last step's target is the parity of the whole sequence. One bit
    flipped anywhere before t flips y<t>, so nothing short of the whole prefix helps.

    Chance: 50% at every step.
    """
    bits = _generator(rng).integers(0, 2, size=(T, B))
    return bits[..., None].astype(np.float64), np.cumsum(bits, axis=0) % 2


# ---- toy language tasks -----------------------------------------------------------
SENTIMENT_VOCAB = ("the", "graph", "model", "this", "run", "was", "is", "really", "quite",
                   "not", "good", "great", "clear", "bad", "dull", "wrong")
_FILLERS = [SENTIMENT_VOCAB.index(w) for w in SENTIMENT_VOCAB[:9]]
_POSITIVE = [SENTIMENT_VOCAB.index(w) for w in ("good", "great", "clear")]
_NEGATIVE = [SENTIMENT_VOCAB.index(w) for w in ("bad", "dull", "wrong")]


def sentiment(T, B, rng=None):
    """A toy sentiment task with negation: many-to-one classification.

    Each sequence is T words of ``SENTIMENT_VOCAB``: filler words, exactly one
    sentiment word (positive: good, great, clear; negative: bad, dull, wrong) and,
    half of the time, "not" right before it. The label is 1 (positive) when the word
    is positive and not negated or negative and negated, else 0. Returns xs (T, B,
    len(SENTIMENT_VOCAB)) one-hot and ys (B,).

    Chance: 50%. Polarity and negation are independent, so a model that reads either
    one alone also stays at 50%.
    """
    if T < 2:
        raise ValueError(f"sentiment: T must be at least 2 (room for 'not' + word), not {T}")
    rng = _generator(rng)
    words = rng.choice(_FILLERS, size=(T, B))
    rows = np.arange(B)
    position = rng.integers(1, T, size=B)
    positive = rng.integers(0, 2, size=B).astype(bool)
    negated = rng.integers(0, 2, size=B).astype(bool)
    words[position, rows] = np.where(positive, rng.choice(_POSITIVE, size=B),
                                     rng.choice(_NEGATIVE, size=B))
    words[position[negated] - 1, rows[negated]] = SENTIMENT_VOCAB.index("not")
    return one_hot(words, len(SENTIMENT_VOCAB)), (positive != negated).astype(np.int64)


ENTITY_VOCAB = ("he", "said", "the", "was", "a", "on", "sale", "are", "great",
                "ada", "alan", "grace",
                "teddy", "washington", "roosevelt", "bears", "irving", "state")
# An ambiguous first word, and the words that may follow it with the label (1 =
# person) that the follower gives to both of them.
_AMBIGUOUS = {"teddy": {"roosevelt": 1, "bears": 0},
              "washington": {"irving": 1, "state": 0}}
_ENTITY_SINGLES = {**{w: 0 for w in ENTITY_VOCAB[:9]}, "ada": 1, "alan": 1, "grace": 1}


def entity(T, B, pair_probability=0.3, rng=None):
    """A toy named-entity tagger task where a word's label depends on the next word.

    Sequences of T words from ``ENTITY_VOCAB``, each tagged 1 (part of a person's
    name) or 0. Most words always have the same tag, but "teddy" is a person before
    "roosevelt" and not before "bears" (the notes' example), and likewise
    "washington" before "irving" or "state". Each chunk of a sentence is such a pair
    with ``pair_probability``, else one unambiguous word. The follower is drawn
    independently of everything before it. Returns xs (T, B, len(ENTITY_VOCAB))
    one-hot, ys (T, B) tags, and ambiguous (T, B), True where the word is "teddy" or
    "washington".

    Chance: 50% on the ambiguous positions, and a left-to-right tagger can do no
    better there: what decides the tag has not been read yet. A bidirectional tagger
    sees the next word and can be right every time.
    """
    rng = _generator(rng)
    words = np.empty((T, B), dtype=np.int64)
    tags = np.empty((T, B), dtype=np.int64)
    singles = list(_ENTITY_SINGLES)
    heads = list(_AMBIGUOUS)
    for b in range(B):
        t = 0
        while t < T:
            if t + 1 < T and rng.random() < pair_probability:
                head = heads[rng.integers(len(heads))]
                followers = list(_AMBIGUOUS[head])
                follower = followers[rng.integers(len(followers))]
                tag = _AMBIGUOUS[head][follower]
                words[t:t + 2, b] = ENTITY_VOCAB.index(head), ENTITY_VOCAB.index(follower)
                tags[t:t + 2, b] = tag
                t += 2
            else:
                word = singles[rng.integers(len(singles))]
                words[t, b], tags[t, b] = ENTITY_VOCAB.index(word), _ENTITY_SINGLES[word]
                t += 1
    ambiguous = np.isin(words, [ENTITY_VOCAB.index(h) for h in heads])
    return one_hot(words, len(ENTITY_VOCAB)), tags, ambiguous


# ---- the tasks as the trainer runs them -------------------------------------------
TASKS = ("chars", "copy", "parity", "adding", "sentiment", "entities")


@dataclass
class Task:
    """A training task: how to draw a batch and how to score the model on it.

    ``sample(T, B, rng)`` returns (xs (T, B, m), targets, ambiguous or None).
    ``many_to_one``: one target per sequence (from the final state), else one per step.
    ``regression``: mean squared error, else cross-entropy. ``baseline``: the loss of
    a model that has learned nothing (ln of the number of classes, or 1/6 for adding),
    described by ``baseline_text``. ``vocab`` and ``prefix``: the characters and the
    first word of the text, for the character task.
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
    """The task called ``name`` (one of ``TASKS``); "chars" learns ``corpus`` (a
    CharCorpus; default: the built-in text)."""
    if name not in TASKS:
        raise ValueError(f"make_task: no task called {name!r}; there are {TASKS}")
    if name == "chars":
        corpus = corpus or load_corpus()
        V = corpus.vocab_size
        return Task("chars", V, V, lambda T, B, rng: corpus.batch(T, B, rng) + (None,),
                    baseline=math.log(V), baseline_text=f"ln V = ln {V}, uniform over "
                    f"the vocabulary", vocab=corpus.chars,
                    prefix=(corpus.text.split() or [corpus.text])[0][:20])
    if name == "copy":
        return Task("copy", 4, 4, lambda T, B, rng: copy(T, B, rng=rng) + (None,),
                    baseline=math.log(4), baseline_text="ln 4, uniform over 4 symbols")
    if name == "parity":
        return Task("parity", 1, 2, lambda T, B, rng: parity(T, B, rng) + (None,),
                    baseline=math.log(2), baseline_text="ln 2, a coin flip")
    if name == "adding":
        return Task("adding", 2, 1, lambda T, B, rng: adding(T, B, rng) + (None,),
                    many_to_one=True, regression=True, baseline=1 / 6,
                    baseline_text="1/6, the MSE of always answering 1")
    if name == "sentiment":
        return Task("sentiment", len(SENTIMENT_VOCAB), 2,
                    lambda T, B, rng: sentiment(T, B, rng) + (None,),
                    many_to_one=True, baseline=math.log(2), baseline_text="ln 2, a coin flip")
    return Task("entities", len(ENTITY_VOCAB), 2,
                lambda T, B, rng: entity(T, B, rng=rng),
                baseline=math.log(2), baseline_text="ln 2, a coin flip")
