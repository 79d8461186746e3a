"""Fuzzing backward: random small programs (``programs.py``) checked against central
differences and against PyTorch running the same program.

A program chains the primitive ops over leaves of broadcast-compatible shapes and
reuses intermediate values (fan-in), the three things small engines get wrong. Each
property runs FUZZ_EXAMPLES programs (200 by default, derandomized under the "ci"
profile). For a longer search with fresh programs every run:

    TINYGRAPH_FUZZ_EXAMPLES=5000 HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py

A failure prints the shrunk program (``Program.__str__``) through ``note``.
"""
import os

import numpy as np
import pytest
from hypothesis import assume, given, note, settings

import tinygraph as tg
from programs import TINYGRAPH_OPS, ill_conditioned, loss, programs, run, torch_ops

FUZZ_EXAMPLES = int(os.environ.get("TINYGRAPH_FUZZ_EXAMPLES", "200"))
FORWARD_RTOL = 1e-10
GRAD_RTOL = 1e-8


def tinygraph_run(program):
    """Leaves, values and loss of ``program`` on tinygraph, after loss.backward()."""
    leaves = [tg.tensor(x, requires_grad=True) for x in program.leaves]
    values = run(program, leaves, TINYGRAPH_OPS)
    total = loss(program, values, TINYGRAPH_OPS)
    total.backward()
    return leaves, values, total


@settings(max_examples=FUZZ_EXAMPLES)
@given(programs())
def test_random_program_backward_matches_central_differences(program):
    note(str(program))
    leaves = [tg.tensor(x) for x in program.leaves]
    reason = ill_conditioned(program, [v.data for v in run(program, leaves, TINYGRAPH_OPS)])
    note(f"ill-conditioned: {reason}")
    assume(reason is None)

    def program_loss(*leaves):
        return loss(program, run(program, leaves, TINYGRAPH_OPS), TINYGRAPH_OPS)

    leaves = [tg.tensor(x, requires_grad=True) for x in program.leaves]
    assert tg.gradcheck(program_loss, leaves, eps=1e-6, atol=1e-6, rtol=1e-4)


@settings(max_examples=FUZZ_EXAMPLES)
@given(programs())
def test_random_program_matches_pytorch_forward_and_backward(program):
    torch = pytest.importorskip("torch")
    note(str(program))
    leaves, values, total = tinygraph_run(program)
    assume(np.isfinite(total.item()))

    torch_leaves = [torch.tensor(x, requires_grad=True) for x in program.leaves]
    torch_values = run(program, torch_leaves, torch_ops(torch))
    loss(program, torch_values, torch_ops(torch)).backward()

    for k, (value, expected) in enumerate(zip(values, torch_values)):
        expected = expected.detach().numpy()
        assert value.shape == expected.shape, f"v{k}"
        np.testing.assert_allclose(value.data, expected, rtol=FORWARD_RTOL,
                                   atol=FORWARD_RTOL * _scale(expected), err_msg=f"v{k}")
    for k, (leaf, expected) in enumerate(zip(leaves, torch_leaves)):
        assert (leaf.grad is None) == (expected.grad is None), f"v{k}.grad"
        if leaf.grad is None:  # the leaf does not reach the loss, in both
            continue
        expected = expected.grad.numpy()
        assert leaf.grad.shape == expected.shape, f"v{k}.grad"
        np.testing.assert_allclose(leaf.grad, expected, rtol=GRAD_RTOL,
                                   atol=GRAD_RTOL * _scale(expected), err_msg=f"v{k}.grad")


def _scale(array):
    """The largest magnitude in ``array`` (at least 1): entries that come out near 0
    by cancellation are compared relative to it, since rounding in both frameworks
    is relative to the terms that cancelled, not to their small difference."""
    return max(1.0, float(np.max(np.abs(array), initial=0.0)))
