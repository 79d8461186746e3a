"""The benchmark suite computes what it claims to: every implementation's loss and
gradients equal the hand-written reference on a tiny problem (nothing is timed here)."""
import dataclasses

import numpy as np
import pytest

from benchmarks import impls, numpy_bptt, workload
from rnn import bptt

TINY_ONE_HOT = dataclasses.replace(workload.TINY, name="tiny-one-hot", batch=1,
                                   input=6, one_hot=True)
TINY_SIZES = [workload.TINY, TINY_ONE_HOT]


@pytest.fixture(params=TINY_SIZES, ids=lambda size: size.name)
def problem(request):
    return workload.make_problem(request.param, seed=3)


@pytest.mark.parametrize("bptt_function", [numpy_bptt.per_step, numpy_bptt.batched],
                         ids=["per_step", "batched"])
def test_hand_written_bptt_matches_rnn_reference(problem, bptt_function):
    expected = bptt.bptt(problem.params, problem.xs, problem.targets)
    loss, grads = bptt_function(problem.params, problem.xs, problem.targets)
    assert loss == pytest.approx(expected.loss, rel=1e-12)
    for name in workload.PARAM_NAMES:
        np.testing.assert_allclose(grads[name], expected.grads[name], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("impl", impls.IMPLEMENTATIONS, ids=lambda impl: impl.name)
def test_implementation_gradients_equal_hand_written_reference(problem, impl):
    if not impl.available():
        pytest.skip(f"{impl.requires} is not installed")
    reference = impls.REFERENCE.build(problem)()
    errors = impls.check_gradients(impl.name, impl.build(problem)(), reference)
    assert max(errors.values()) <= impls.GRADIENT_TOLERANCE


@pytest.mark.parametrize("impl", [impls.BY_NAME["tinygraph-unroll"],
                                  impls.BY_NAME["tinygraph-layers"]],
                         ids=lambda impl: impl.name)
def test_repeated_steps_give_the_same_gradients(impl):
    step = impl.build(workload.make_problem(workload.TINY))
    first = step()
    first = first[0], {name: grad.copy() for name, grad in first[1].items()}
    assert max(impls.relative_errors(step(), first).values()) == 0.0


def test_check_gradients_names_the_parameter_that_differs(problem):
    reference = impls.REFERENCE.build(problem)()
    loss, grads = reference
    wrong = dict(grads, W_aa=grads["W_aa"] * (1 + 1e-6))
    with pytest.raises(impls.GradientMismatch, match="W_aa"):
        impls.check_gradients("perturbed", (loss, wrong), reference)


def test_same_seed_gives_identical_problems():
    first, second = (workload.make_problem(workload.SIZES["S"], seed=1) for _ in range(2))
    for name in workload.PARAM_NAMES:
        np.testing.assert_array_equal(first.params[name], second.params[name])
    np.testing.assert_array_equal(first.xs, second.xs)
    np.testing.assert_array_equal(first.targets, second.targets)


def test_one_hot_inputs_predict_the_next_character():
    problem = workload.make_problem(TINY_ONE_HOT)
    np.testing.assert_array_equal(problem.xs[1:].argmax(axis=-1), problem.targets[:-1])


def test_paired_ratio_divides_within_each_round_then_takes_the_median():
    from benchmarks.run import paired_ratio
    # Rounds 2 and 3 ran on a machine twice as slow for both; pairing cancels that.
    times = {"numpy-per-step": [1.0, 2.0, 2.0], "tinygraph-unroll": [3.0, 6.0, 6.0]}
    assert paired_ratio(times, "tinygraph-unroll", "numpy-per-step") == pytest.approx(3.0)
    assert paired_ratio(times, "tinygraph-unroll", "numpy-batched") is None


def test_targets_report_missed_and_unmeasured_sizes():
    from benchmarks.run import target_lines
    run = {"sizes": {"S": {"times": {"numpy-per-step": [1.0], "tinygraph-unroll": [1.1],
                                     "numpy-batched": [1.0], "tinygraph-layers": [2.0]},
                           "failed": {}}}}
    cost = {"forward": 1e-6, "backward": 1e-6}
    micro = {"chains": {"tinygraph": {"tanh": cost}, "torch": {"tanh": dict(cost)}}}
    lines = "\n".join(target_lines(run, {}, micro))
    assert "| tinygraph-unroll at S <= 1.2x numpy-per-step | 1.10x | met |" in lines
    assert "| tinygraph-layers at S <= 1.5x numpy-batched | 2.00x | MISSED |" in lines
    assert "| tinygraph-unroll at L <= 1.2x numpy-per-step | n/a | not measured |" in lines
    assert "1.00x PyTorch's | MISSED |" in lines
