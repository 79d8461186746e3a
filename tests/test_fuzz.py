"""Fuzzing backward: random small programs (``programs.py``) checked against central
differences and against PyTorch running the same program.

A program chains the primitive ops over leaves of broadcast-compatible shapes and
reuses intermediate values (fan-in): broadcasting and reuse are where small engines'
gradients most often go wrong. Each property runs FUZZ_EXAMPLES programs (200 by
default, derandomized under the "ci" profile) after the hand-written KNOWN_BUGS. For a
longer search with fresh programs every run:

    TINYGRAPH_FUZZ_EXAMPLES=5000 HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py

A failure prints the shrunk program (``Program.__str__``) through ``note``.
"""
import os

import numpy as np
import pytest
from hypothesis import assume, example, given, note, settings

import tinygraph as tg
from programs import (TINYGRAPH_OPS, ill_conditioned, loss, make_program, programs, run,
                      torch_ops)

FUZZ_EXAMPLES = int(os.environ.get("TINYGRAPH_FUZZ_EXAMPLES", "200"))
FORWARD_RTOL = 1e-10
GRAD_RTOL = 1e-8


def grid(*shape):
    """Distinct values in [-1.5, 1.5] of ``shape``: a readable fixed leaf."""
    return np.linspace(-1.5, 1.5, int(np.prod(shape))).reshape(shape)


# The bugs small engines are known for (shared/research/autodiff-anchors.md, section 2),
# written as programs that both properties run before the generated ones.
KNOWN_BUGS = [
    # micrograd #2 and PR #64: a reused non-leaf, b = a + a; c = b + b (dc/da = 4)
    make_program([1.0], [("add", (0, 0)), ("add", (1, 1))]),
    # paradox PR #3: d(a - a)/da is 0, not 2
    make_program([grid(2)], [("sub", (0, 0))]),
    # tinygrad #9597: two leaves with equal values are two leaves (identity, not value)
    make_program([3.0, 3.0], [("mul", (0, 1))]),
    # pytorch #107007: x - x.mean(axis) sends the mean's gradient back over the axis
    make_program([grid(2, 3)], [("mean", (0,), {"axis": 1, "keepdims": True}),
                                ("sub", (0, 1))]),
    # burn #181, tt-metal #40008: broadcasting across ranks and size-1 axes sums back
    make_program([grid(2, 1, 3), grid(4, 1)], [("mul", (0, 1)), ("add", (2, 1))]),
    # indexing with a repeated integer index adds the repeats' gradients up
    make_program([grid(3, 2)], [("getitem", (0,), {"index": np.array([0, 2, 0, 0])})]),
    # one intermediate feeding an elementwise op, a reduction and a matmul
    make_program([grid(2, 3)], [("tanh", (0,)), ("sum", (1,), {"axis": 0, "keepdims": False}),
                                ("mul", (1, 2)), ("transpose", (1,), {"axes": (1, 0)}),
                                ("matmul", (1, 4))]),
]


def known_bugs_first(test):
    """Run every program of KNOWN_BUGS as an explicit example of ``test``."""
    for program in KNOWN_BUGS:
        test = example(program)(test)
    return test


def tinygraph_run(program):
    """Leaves and values of ``program`` on tinygraph, after the loss's backward()."""
    leaves = [tg.tensor(x, requires_grad=True) for x in program.leaves]
    values = run(program, leaves, TINYGRAPH_OPS)
    loss(program, values, TINYGRAPH_OPS).backward()
    return leaves, values


@settings(max_examples=FUZZ_EXAMPLES)
@given(programs())
@known_bugs_first
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
@known_bugs_first
def test_random_program_matches_pytorch_forward_and_backward(program):
    torch = pytest.importorskip("torch")
    note(str(program))
    torch_leaves = [torch.tensor(x, requires_grad=True) for x in program.leaves]
    torch_values = run(program, torch_leaves, torch_ops(torch))
    torch_loss = loss(program, torch_values, torch_ops(torch))
    assume(torch.isfinite(torch_loss).item())  # the reference must be a number
    torch_loss.backward()
    leaves, values = tinygraph_run(program)

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
