"""BPTT derived by hand (rnn.bptt) against central differences, and autodiff on the
unrolled ElmanRNN against the hand derivation: all five gradients, dL/da<t>, and each
time step's contribution, to 1e-10 in float64."""
import numpy as np
import pytest

import rnn
import tinygraph as tg
from rnn import bptt
from tinygraph import functional as F

NONLINEARITIES = ("tanh", "relu")


def random_weights(rng, m=3, n=4, p=5):
    return {"W_ax": rng.normal(size=(n, m)), "W_aa": rng.normal(size=(n, n)) * 0.6,
            "b_a": rng.normal(size=n), "W_ya": rng.normal(size=(p, n)),
            "b_y": rng.normal(size=p)}


def numerical_gradient(f, array, eps=1e-6):
    """Central differences of the scalar f() with respect to ``array``, in place."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        saved = array[i]
        array[i] = saved + eps
        f_plus = f()
        array[i] = saved - eps
        f_minus = f()
        array[i] = saved
        grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


# ---- the reference on its own --------------------------------------------------------
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_reference_gradients_match_central_differences(nonlinearity):
    rng = np.random.default_rng(0)
    weights = random_weights(rng)
    xs, targets = rng.normal(size=(5, 2, 3)), rng.integers(0, 5, size=(5, 2))
    result = bptt.bptt(weights, xs, targets, nonlinearity=nonlinearity)

    def loss():
        logits = bptt.forward(weights, xs, nonlinearity=nonlinearity)[2]
        return bptt.cross_entropy(logits, targets)[0]

    for name in bptt.PARAM_NAMES:
        np.testing.assert_allclose(result.grads[name],
                                   numerical_gradient(loss, weights[name]), atol=1e-7)


def test_reference_accepts_any_loss_through_dL_do():
    rng = np.random.default_rng(1)
    weights = random_weights(rng)
    xs, goal = rng.normal(size=(4, 3, 3)), rng.normal(size=(4, 3, 5))

    def squared_error():
        return np.sum((bptt.forward(weights, xs)[2] - goal) ** 2)

    logits = bptt.forward(weights, xs)[2]
    result = bptt.bptt(weights, xs, dL_do=2 * (logits - goal))
    assert result.loss is None
    for name in bptt.PARAM_NAMES:
        np.testing.assert_allclose(result.grads[name],
                                   numerical_gradient(squared_error, weights[name]), atol=1e-7)


def test_reference_gradient_of_initial_state_matches_central_differences():
    rng = np.random.default_rng(2)
    weights = random_weights(rng)
    xs, targets, a0 = rng.normal(size=(4, 2, 3)), rng.integers(0, 5, (4, 2)), rng.normal(size=(2, 4))
    result = bptt.bptt(weights, xs, targets, a0=a0)

    def loss():
        return bptt.cross_entropy(bptt.forward(weights, xs, a0=a0)[2], targets)[0]

    np.testing.assert_allclose(result.dL_da0, numerical_gradient(loss, a0), atol=1e-7)


def test_reference_loss_is_summed_cross_entropy():
    logits = np.log(np.array([[[0.5, 0.25, 0.25]], [[0.1, 0.1, 0.8]]]))  # (T=2, B=1, p=3)
    loss, dL_do = bptt.cross_entropy(logits, np.array([[0], [2]]))
    np.testing.assert_allclose(loss, -np.log(0.5) - np.log(0.8))
    np.testing.assert_allclose(dL_do[1, 0], [0.1, 0.1, -0.2])


def test_reference_per_step_contributions_sum_to_the_gradients():
    rng = np.random.default_rng(3)
    result = bptt.bptt(random_weights(rng), rng.normal(size=(6, 2, 3)), rng.integers(0, 5, (6, 2)))
    for name in bptt.PARAM_NAMES:
        assert result.per_step[name].shape[0] == 6
        np.testing.assert_allclose(result.per_step[name].sum(axis=0), result.grads[name],
                                   rtol=0, atol=1e-12)


def test_reference_needs_exactly_one_of_targets_and_dL_do():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="exactly one"):
        bptt.bptt(random_weights(rng), rng.normal(size=(2, 1, 3)))


def test_reference_names_the_weight_whose_shape_is_wrong():
    weights = random_weights(np.random.default_rng(0))
    weights["W_aa"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"W_aa has shape \(4, 3\)"):
        bptt.bptt(weights, np.zeros((2, 1, 3)), np.zeros((2, 1), dtype=int))


def test_reference_names_a_missing_weight():
    weights = random_weights(np.random.default_rng(0))
    del weights["b_y"]
    with pytest.raises(KeyError, match="b_y"):
        bptt.bptt(weights, np.zeros((2, 1, 3)), np.zeros((2, 1), dtype=int))


def test_reference_rejects_inputs_of_the_wrong_width():
    weights = random_weights(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"xs must be \(T, B, 3\)"):
        bptt.bptt(weights, np.zeros((2, 1, 4)), np.zeros((2, 1), dtype=int))


def test_reference_rejects_an_unknown_nonlinearity():
    weights = random_weights(np.random.default_rng(0))
    with pytest.raises(ValueError, match="sigmoid"):
        bptt.bptt(weights, np.zeros((2, 1, 3)), np.zeros((2, 1), dtype=int),
                  nonlinearity="sigmoid")


# ---- compare: finding the step where two BPTTs part ------------------------------------
def reference_result(seed=4, T=6):
    rng = np.random.default_rng(seed)
    return bptt.bptt(random_weights(rng), rng.normal(size=(T, 3, 3)),
                     rng.integers(0, 5, (T, 3)))


def test_compare_finds_no_mismatch_between_equal_results():
    assert bptt.compare(reference_result(), reference_result()) is None


def test_compare_names_the_step_and_weight_that_differ():
    reference = reference_result()
    per_step = {name: steps.copy() for name, steps in reference.per_step.items()}
    per_step["W_aa"][2] += 1e-5                    # step t=3
    mismatch = bptt.compare(per_step, reference)
    assert (mismatch.t, mismatch.name) == (3, "W_aa")
    assert mismatch.max_error == pytest.approx(1e-5)
    assert "t=3" in str(mismatch) and "W_aa" in str(mismatch)


def test_compare_reports_the_latest_differing_step_where_the_error_entered():
    reference = reference_result()
    per_step = {name: steps.copy() for name, steps in reference.per_step.items()}
    per_step["b_a"][:4] += 1.0                     # steps 1..4 spoiled, as a bug at t=4 does
    assert bptt.compare(per_step, reference).t == 4


def test_compare_rejects_per_step_arrays_of_another_length():
    reference = reference_result()
    with pytest.raises(ValueError, match="per-step W_ax has shape"):
        bptt.compare(reference_result(T=5), reference)


# ---- autodiff on the unrolled ElmanRNN against the hand derivation ----------------------
def elman_and_batch(nonlinearity, T, B, seed=0):
    """An ElmanRNN (m=3, n=4, p=5) with random weights, and a batch of inputs and targets."""
    tg.manual_seed(seed)
    model = rnn.ElmanRNN(input_size=3, hidden_size=4, output_size=5, nonlinearity=nonlinearity)
    rng = np.random.default_rng(seed)
    return model, rng.normal(size=(T, B, 3)), rng.integers(0, 5, size=(T, B))


def summed_cross_entropy(logits, targets):
    return F.cross_entropy(logits, targets, reduction="sum")


SIZES = [(T, B) for T in (1, 3, 7) for B in (1, 4)]


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("T, B", SIZES)
def test_autodiff_gradients_equal_hand_derived_bptt(nonlinearity, T, B):
    model, xs, targets = elman_and_batch(nonlinearity, T, B)
    logits, _ = model(tg.tensor(xs))
    summed_cross_entropy(logits, targets).backward()
    reference = bptt.bptt(model, xs, targets)
    for name in bptt.PARAM_NAMES:
        np.testing.assert_allclose(getattr(model, name).grad, reference.grads[name],
                                   rtol=0, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("T, B", SIZES)
def test_autodiff_dL_da_equals_hand_derived_bptt(nonlinearity, T, B):
    model, xs, targets = elman_and_batch(nonlinearity, T, B)
    logits, _ = model(tg.tensor(xs))
    for a_t in model.last_states:
        a_t.retain_grad()
    summed_cross_entropy(logits, targets).backward()
    dL_da = np.stack([a_t.grad for a_t in model.last_states])
    np.testing.assert_allclose(dL_da, bptt.bptt(model, xs, targets).dL_da, rtol=0, atol=1e-10)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_autodiff_forward_and_loss_equal_hand_derived(nonlinearity):
    model, xs, targets = elman_and_batch(nonlinearity, T=5, B=3)
    logits, states = model(tg.tensor(xs))
    reference = bptt.bptt(model, xs, targets)
    np.testing.assert_allclose(states.data, reference.states, rtol=0, atol=1e-12)
    np.testing.assert_allclose(logits.data, reference.logits, rtol=0, atol=1e-12)
    np.testing.assert_allclose(summed_cross_entropy(logits, targets).item(), reference.loss,
                               rtol=1e-12)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_autodiff_per_step_contributions_equal_hand_derived(nonlinearity):
    model, xs, targets = elman_and_batch(nonlinearity, T=6, B=4)
    logits, _ = model(tg.tensor(xs))
    with tg.record_contributions() as recorded:
        summed_cross_entropy(logits, targets).backward()
    reference = bptt.bptt(model, xs, targets)
    per_step = bptt.contributions_per_step(recorded, model, T=6)
    for name in bptt.PARAM_NAMES:
        np.testing.assert_allclose(per_step[name], reference.per_step[name], rtol=0,
                                   atol=1e-10, err_msg=name)
    assert bptt.compare(recorded, reference, params=model, atol=1e-10, rtol=0) is None


def test_recorded_contributions_sum_to_the_weight_gradient():
    model, xs, targets = elman_and_batch("tanh", T=7, B=4)
    logits, _ = model(tg.tensor(xs))
    with tg.record_contributions() as recorded:
        summed_cross_entropy(logits, targets).backward()
    per_step = bptt.contributions_per_step(recorded, model, T=7)
    for name in bptt.PARAM_NAMES:
        np.testing.assert_allclose(per_step[name].sum(axis=0), getattr(model, name).grad,
                                   rtol=0, atol=1e-12, err_msg=name)


def logits_detaching_at(model, xs, k):
    """A learner's unroll with one bug: at step k the previous state is detached, so
    a<k-1> never hears from the future, and dL/da<k-1> lacks W_aa^T dz<k>."""
    a_t = model.initial_state(xs.shape[1])
    logits = []
    for t in range(1, len(xs) + 1):
        with tg.scope(f"t={t}"):
            a_t = model.step(tg.tensor(xs[t - 1]), a_t.detach() if t == k else a_t)
            logits.append(model.output_layer(a_t))
    return tg.stack(logits)


def test_compare_names_the_step_whose_recurrent_term_a_broken_model_drops():
    model, xs, targets = elman_and_batch("tanh", T=6, B=4)
    with tg.record_contributions() as recorded:
        summed_cross_entropy(logits_detaching_at(model, xs, k=4), targets).backward()
    mismatch = bptt.compare(recorded, bptt.bptt(model, xs, targets), params=model,
                            atol=1e-10, rtol=0)
    assert mismatch is not None and mismatch.t == 3
    assert mismatch.name in ("W_ax", "W_aa", "b_a")


def test_compare_needs_params_to_read_recorded_contributions():
    model, xs, targets = elman_and_batch("tanh", T=2, B=1)
    logits, _ = model(tg.tensor(xs))
    with tg.record_contributions() as recorded:
        summed_cross_entropy(logits, targets).backward()
    with pytest.raises(ValueError, match="params="):
        bptt.compare(recorded, bptt.bptt(model, xs, targets))


def test_reference_refuses_a_model_without_biases():
    tg.manual_seed(0)
    model = rnn.ElmanRNN(input_size=3, hidden_size=4, output_size=5, bias=False)
    with pytest.raises(ValueError, match="b_a is None"):
        bptt.bptt(model, np.zeros((2, 1, 3)), np.zeros((2, 1), dtype=int))
