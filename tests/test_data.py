"""The generated tasks: layouts, targets that follow their definition, stated chance
levels, and determinism for a fixed seed."""
import numpy as np
import pytest

import tinygraph as tg
from rnn import data

TASKS = {
    "char_lm": lambda rng: data.load_corpus().batch(T=12, B=5, rng=rng),
    "adding": lambda rng: data.adding(T=12, B=5, rng=rng),
    "copy": lambda rng: data.copy(T=12, B=5, vocab_size=4, delay=3, rng=rng),
    "parity": lambda rng: data.parity(T=12, B=5, rng=rng),
    "sentiment": lambda rng: data.sentiment(T=12, B=5, rng=rng),
    "entity": lambda rng: data.entity(T=12, B=5, rng=rng),
}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_gives_same_arrays(task):
    first, second = TASKS[task](7), TASKS[task](np.random.default_rng(7))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_different_seeds_give_different_inputs(task):
    assert not np.array_equal(TASKS[task](1)[0], TASKS[task](2)[0])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_inputs_are_time_major(task):
    xs = TASKS[task](0)[0]
    assert xs.ndim == 3 and xs.shape[:2] == (12, 5) and xs.dtype == np.float64


def test_corpus_encode_decode_round_trip():
    corpus = data.load_corpus()
    assert corpus.decode(corpus.encode(corpus.text)) == corpus.text


def test_corpus_vocabulary_is_sorted_set_of_characters():
    corpus = data.CharCorpus("abcab ")
    assert corpus.chars == [" ", "a", "b", "c"] and corpus.vocab_size == 4


def test_corpus_encode_names_unknown_characters():
    with pytest.raises(KeyError, match=r"\['z'\]"):
        data.CharCorpus("abc").encode("abz")


def test_shipped_corpus_is_listed_and_loads():
    assert "graphs" in data.corpus_names()
    assert len(data.load_corpus("graphs").text) > 4000


def test_unknown_corpus_name_lists_the_available_ones():
    with pytest.raises(KeyError, match="graphs"):
        data.load_corpus("no-such-text")


def test_char_lm_targets_are_inputs_shifted_by_one():
    corpus = data.load_corpus()
    xs, ys = corpus.batch(T=20, B=4, rng=3)
    ids = xs.argmax(axis=-1)
    np.testing.assert_array_equal(ids[1:], ys[:-1])
    for b in range(4):
        window = corpus.decode(ids[:, b]) + corpus.decode(ys[-1:, b])
        assert window in corpus.text


def test_char_lm_inputs_are_one_hot():
    xs, _ = data.load_corpus().batch(T=8, B=3, rng=0)
    np.testing.assert_array_equal(xs.sum(axis=-1), 1.0)


def test_sequential_batches_continue_each_stream_across_windows():
    corpus = data.CharCorpus("the quick brown fox jumps over the lazy dog, again and again")
    windows = list(corpus.sequential_batches(T=4, B=3))
    assert len(windows) >= 2
    for (xs_k, ys_k), (xs_next, _) in zip(windows, windows[1:]):
        np.testing.assert_array_equal(ys_k[-1], xs_next[0].argmax(axis=-1))
        np.testing.assert_array_equal(xs_k.argmax(axis=-1)[1:], ys_k[:-1])


def test_sequential_batches_reject_windows_longer_than_a_stream():
    with pytest.raises(ValueError, match="fewer than T=10"):
        next(data.CharCorpus("abcdefghij").sequential_batches(T=10, B=2))


def test_uniform_prediction_loss_is_ln_vocab_per_step():
    corpus = data.load_corpus()
    _, ys = corpus.batch(T=10, B=2, rng=0)
    log_uniform = np.full((10, 2, corpus.vocab_size), -np.log(corpus.vocab_size))
    loss = -np.take_along_axis(log_uniform, ys[..., None], axis=-1).sum()
    np.testing.assert_allclose(loss, 10 * 2 * np.log(corpus.vocab_size))


def test_adding_target_is_sum_of_the_two_marked_values():
    xs, ys = data.adding(T=10, B=50, rng=0)
    values, markers = xs[..., 0], xs[..., 1]
    np.testing.assert_array_equal(markers.sum(axis=0), 2.0)
    np.testing.assert_array_equal(markers[:5].sum(axis=0), 1.0)
    np.testing.assert_allclose(ys[:, 0], (values * markers).sum(axis=0))


def test_adding_constant_one_baseline_is_one_sixth():
    _, ys = data.adding(T=20, B=200_000, rng=0)
    assert abs(np.mean((ys - 1.0) ** 2) - 1 / 6) < 2e-3


def test_copy_target_is_input_delayed():
    xs, ys = data.copy(T=9, B=6, vocab_size=5, delay=3, rng=0)
    np.testing.assert_array_equal(ys[:3], data.IGNORE_INDEX)
    np.testing.assert_array_equal(ys[3:], xs.argmax(axis=-1)[:-3])


def test_copy_rejects_delay_not_shorter_than_sequence():
    with pytest.raises(ValueError, match="delay"):
        data.copy(T=3, B=1, delay=3)


def test_parity_target_is_running_xor():
    xs, ys = data.parity(T=15, B=8, rng=0)
    bits = xs[..., 0].astype(int)
    for t in range(15):
        np.testing.assert_array_equal(ys[t], np.bitwise_xor.reduce(bits[:t + 1], axis=0))


def test_parity_labels_are_balanced():
    _, ys = data.parity(T=20, B=5000, rng=0)
    assert abs(ys.mean() - 0.5) < 0.01


def _words(xs, vocab):
    return [[vocab[i] for i in column] for column in xs.argmax(axis=-1).T]


def test_sentiment_label_is_polarity_flipped_by_not():
    xs, ys = data.sentiment(T=7, B=200, rng=0)
    for sentence, label in zip(_words(xs, data.SENTIMENT_VOCAB), ys):
        polar = [i for i, w in enumerate(sentence) if w in ("good", "great", "clear",
                                                            "bad", "dull", "wrong")]
        assert len(polar) == 1
        positive = sentence[polar[0]] in ("good", "great", "clear")
        negated = sentence[polar[0] - 1] == "not"
        assert sentence.count("not") == int(negated)
        assert label == int(positive != negated)


def test_sentiment_polarity_alone_is_at_chance():
    xs, ys = data.sentiment(T=6, B=20_000, rng=0)
    positive_ids = [data.SENTIMENT_VOCAB.index(w) for w in ("good", "great", "clear")]
    has_positive = np.isin(xs.argmax(axis=-1), positive_ids).any(axis=0)
    assert abs(np.mean(has_positive == ys) - 0.5) < 0.02


def test_entity_ambiguous_tag_is_decided_by_the_next_word():
    xs, ys, ambiguous = data.entity(T=10, B=300, rng=0)
    person_followers = {"roosevelt", "irving"}
    sentences = _words(xs, data.ENTITY_VOCAB)
    checked = 0
    for b, sentence in enumerate(sentences):
        for t, word in enumerate(sentence):
            assert ambiguous[t, b] == (word in ("teddy", "washington"))
            if ambiguous[t, b]:
                assert ys[t, b] == ys[t + 1, b] == int(sentence[t + 1] in person_followers)
                checked += 1
    assert checked > 100


def test_entity_ambiguous_tags_are_balanced():
    xs, ys, ambiguous = data.entity(T=10, B=5000, rng=0)
    teddy = xs.argmax(axis=-1) == data.ENTITY_VOCAB.index("teddy")
    assert abs(ys[teddy].mean() - 0.5) < 0.03
    assert abs(ys[ambiguous].mean() - 0.5) < 0.02


def test_one_hot_rejects_ids_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        data.one_hot([0, 3], 3)


def test_without_rng_tasks_draw_from_tinygraphs_seeded_generator():
    tg.manual_seed(3)
    first = data.parity(T=6, B=4)[0]
    tg.manual_seed(3)
    np.testing.assert_array_equal(data.parity(T=6, B=4)[0], first)
