"""functional: softmax, losses, dropout, and the softplus primitive.

PyTorch is the oracle for values and gradients (float64, 1e-10) where it is installed;
central differences check the gradients everywhere.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygraph as tg
from tinygraph import functional as F

TOL = dict(rtol=1e-10, atol=1e-10)


def rng(seed=0):
    return np.random.default_rng(seed)


def value_and_grad(loss_fn, x_array, *args, **kwargs):
    """Our loss and its gradient with respect to the first argument."""
    x = tg.tensor(x_array, requires_grad=True)
    loss = loss_fn(x, *args, **kwargs)
    loss.backward(np.ones(loss.shape))
    return loss.data, x.grad


def torch_value_and_grad(torch_fn, x_array, *args, **kwargs):
    torch = pytest.importorskip("torch")
    x = torch.tensor(x_array, requires_grad=True)
    loss = torch_fn(x, *args, **kwargs)
    loss.backward(torch.ones_like(loss))
    return loss.detach().numpy(), x.grad.numpy()


def assert_matches_torch(ours, theirs):
    np.testing.assert_allclose(ours[0], theirs[0], **TOL)
    np.testing.assert_allclose(ours[1], theirs[1], **TOL)


def as_torch(array):
    return pytest.importorskip("torch").tensor(array)


def torch_functional():
    return pytest.importorskip("torch").nn.functional


# ---- softmax ------------------------------------------------------------------------------
def test_softmax_rows_sum_to_one():
    probs = F.softmax(tg.tensor(rng().normal(size=(4, 6))), axis=1).data
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("axis", [0, -1])
def test_softmax_matches_torch(axis):
    TF = torch_functional()
    x = rng().normal(size=(3, 5))
    upstream = rng(1).normal(size=(3, 5))
    assert_matches_torch(value_and_grad(lambda t: F.softmax(t, axis) * upstream, x),
                         torch_value_and_grad(lambda t: TF.softmax(t, axis) * as_torch(upstream), x))


def test_softmax_is_stable_for_logits_of_plus_minus_1000():
    probs = F.softmax(tg.tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0]])).data
    e = np.exp(-1.0)
    np.testing.assert_allclose(probs, [[1, 0, 0], [e / (2 * e + 1), e / (2 * e + 1),
                                                   1 / (2 * e + 1)]], rtol=1e-14)


def test_log_softmax_is_finite_and_matches_torch_for_huge_logits():
    TF = torch_functional()
    x = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 999.0]])
    upstream = rng().normal(size=x.shape)
    ours = value_and_grad(lambda t: F.log_softmax(t, -1) * upstream, x)
    assert np.isfinite(ours[0]).all() and np.isfinite(ours[1]).all()
    assert_matches_torch(ours, torch_value_and_grad(
        lambda t: TF.log_softmax(t, -1) * as_torch(upstream), x))


# ---- cross_entropy ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    logits, targets = rng().normal(size=(6, 4)), rng(1).integers(0, 4, size=6)
    assert_matches_torch(
        value_and_grad(F.cross_entropy, logits, targets, reduction=reduction),
        torch_value_and_grad(torch.nn.functional.cross_entropy, logits,
                             torch.tensor(targets), reduction=reduction))


def test_cross_entropy_over_time_and_batch_matches_torch():
    # Ours takes (T, B, C) with classes last; PyTorch wants (B, C, T).
    torch = pytest.importorskip("torch")
    logits, targets = rng().normal(size=(5, 3, 4)), rng(1).integers(0, 4, size=(5, 3))
    ours = value_and_grad(F.cross_entropy, logits, targets)
    theirs = torch_value_and_grad(
        lambda x: torch.nn.functional.cross_entropy(x.permute(1, 2, 0),
                                                    torch.tensor(targets.T)), logits)
    assert_matches_torch(ours, theirs)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_ignore_index_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    logits = rng().normal(size=(4, 3, 5))
    targets = rng(1).integers(0, 5, size=(4, 3))
    targets[2:, 0] = -100  # the first sequence is two steps shorter: padded
    targets[3, 2] = -100
    theirs = torch_value_and_grad(
        lambda x: torch.nn.functional.cross_entropy(x.reshape(-1, 5),
                                                    torch.tensor(targets.ravel()),
                                                    reduction=reduction), logits)
    ours = value_and_grad(F.cross_entropy, logits, targets, reduction=reduction)
    assert_matches_torch((ours[0].ravel(), ours[1]), theirs)


def test_cross_entropy_padded_steps_contribute_nothing():
    logits, targets = rng().normal(size=(4, 2, 3)), rng(1).integers(0, 3, size=(4, 2))
    padded_targets = targets.copy()
    padded_targets[3, 1] = 7
    padded_logits = logits.copy()
    padded_logits[3, 1] = 1e3  # whatever the model says at a padded step
    loss, grad = value_and_grad(F.cross_entropy, padded_logits, padded_targets,
                                ignore_index=7)
    kept = np.ones((4, 2), bool)
    kept[3, 1] = False
    expected = F.cross_entropy(tg.tensor(logits[kept]), targets[kept]).data
    np.testing.assert_allclose(loss, expected, rtol=1e-14)
    assert not grad[3, 1].any()


def test_cross_entropy_equals_minus_log_softmax_at_the_target():
    logits, targets = rng().normal(size=(3, 4)), np.array([0, 3, 1])
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(F.cross_entropy(logits, targets, reduction="none").data,
                               -log_probs[np.arange(3), targets], rtol=1e-14)


def test_cross_entropy_gradients_pass_gradcheck():
    logits = tg.tensor(rng().normal(size=(3, 2, 4)), requires_grad=True)
    targets = rng(1).integers(0, 4, size=(3, 2))
    tg.gradcheck(lambda x: F.cross_entropy(x, targets), [logits])


@given(st.lists(st.integers(1, 3), min_size=0, max_size=2), st.integers(2, 4),
       st.integers(0, 2**16))
def test_cross_entropy_with_ignored_entries_passes_gradcheck(batch_shape, n_classes, seed):
    generator = rng(seed)
    logits = tg.tensor(generator.normal(size=(*batch_shape, n_classes)), requires_grad=True)
    targets = generator.integers(-1, n_classes, size=batch_shape)
    targets.flat[0] = 0  # at least one entry counts, so the mean is defined
    tg.gradcheck(lambda x: F.cross_entropy(x, targets, ignore_index=-1), [logits])


def test_cross_entropy_is_finite_for_huge_logits():
    loss, grad = value_and_grad(F.cross_entropy, np.array([[1000.0, -1000.0]]), np.array([1]))
    np.testing.assert_allclose(loss, 2000.0)
    np.testing.assert_allclose(grad, [[1.0, -1.0]])


def test_cross_entropy_keeps_float32():
    logits = tg.tensor(rng().normal(size=(2, 3)).astype(np.float32))
    assert F.cross_entropy(logits, np.array([0, 1])).dtype == np.float32


def test_cross_entropy_refuses_float_targets():
    with pytest.raises(TypeError, match="integer class indices, not float64"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))


def test_cross_entropy_names_shapes_on_mismatched_targets():
    with pytest.raises(tg.ShapeError, match=r"\(3,\).*\(2, 3\).*\(2,\)"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2]))


def test_cross_entropy_refuses_out_of_range_targets():
    with pytest.raises(IndexError, match=r"\[0, 3\).*found 3"):
        F.cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


def test_unknown_reduction_is_named():
    with pytest.raises(ValueError, match="not 'avg'"):
        F.mse_loss(np.zeros(2), np.zeros(2), reduction="avg")


# ---- binary cross-entropy ------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    probs, targets = rng().uniform(0.01, 0.99, size=(4, 3)), rng(1).uniform(size=(4, 3))
    assert_matches_torch(
        value_and_grad(F.binary_cross_entropy, probs, targets, reduction=reduction),
        torch_value_and_grad(torch.nn.functional.binary_cross_entropy, probs,
                             torch.tensor(targets), reduction=reduction))


def test_binary_cross_entropy_is_the_notes_formula_with_y_weighing_the_logs():
    probs, targets = np.array([0.9, 0.2, 0.6]), np.array([1.0, 0.0, 0.25])
    expected = -targets * np.log(probs) - (1 - targets) * np.log(1 - probs)
    np.testing.assert_allclose(F.binary_cross_entropy(probs, targets, reduction="none").data,
                               expected, rtol=1e-14)


def test_binary_cross_entropy_clamps_the_log_at_minus_100_as_torch():
    torch = pytest.importorskip("torch")
    probs, targets = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0, 1.0])
    ours = F.binary_cross_entropy(probs, targets, reduction="none").data
    theirs = torch.nn.functional.binary_cross_entropy(
        torch.tensor(probs), torch.tensor(targets), reduction="none").numpy()
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(ours, [100.0, 100.0, 0.0, 0.0])


def test_binary_cross_entropy_refuses_probabilities_outside_0_1():
    with pytest.raises(ValueError, match=r"\[0, 1\].*with_logits"):
        F.binary_cross_entropy(np.array([1.5]), np.array([1.0]))


def test_binary_cross_entropy_names_mismatched_shapes():
    with pytest.raises(tg.ShapeError, match=r"binary_cross_entropy: .*\(3,\).*\(3, 1\)"):
        F.binary_cross_entropy(np.full(3, 0.5), np.ones((3, 1)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_binary_cross_entropy_with_logits_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    logits, targets = 3 * rng().normal(size=(4, 3)), rng(1).uniform(size=(4, 3))
    assert_matches_torch(
        value_and_grad(F.binary_cross_entropy_with_logits, logits, targets,
                       reduction=reduction),
        torch_value_and_grad(torch.nn.functional.binary_cross_entropy_with_logits, logits,
                             torch.tensor(targets), reduction=reduction))


def test_binary_cross_entropy_with_logits_is_exact_past_100():
    torch = pytest.importorskip("torch")
    logits = np.array([150.0, -150.0, 1000.0, -1000.0, 40.0, -40.0])
    targets = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.3])
    ours = value_and_grad(F.binary_cross_entropy_with_logits, logits, targets,
                          reduction="none")
    theirs = torch_value_and_grad(torch.nn.functional.binary_cross_entropy_with_logits,
                                  logits, torch.tensor(targets), reduction="none")
    assert np.isfinite(ours[0]).all() and np.isfinite(ours[1]).all()
    assert_matches_torch(ours, theirs)
    np.testing.assert_allclose(ours[0][:2], [150.0, 150.0], rtol=1e-15)
    np.testing.assert_allclose(ours[0][4], np.exp(-40.0), rtol=1e-12)


def test_binary_cross_entropy_with_logits_equals_bce_of_the_sigmoid():
    logits, targets = rng().normal(size=5), rng(1).uniform(size=5)
    probs = 1 / (1 + np.exp(-logits))
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(logits, targets).data,
                               F.binary_cross_entropy(probs, targets).data, rtol=1e-13)


def test_binary_cross_entropy_with_logits_gradient_is_sigmoid_minus_target():
    logits, targets = rng().normal(size=5), rng(1).uniform(size=5)
    _, grad = value_and_grad(F.binary_cross_entropy_with_logits, logits, targets,
                             reduction="sum")
    np.testing.assert_allclose(grad, 1 / (1 + np.exp(-logits)) - targets, rtol=1e-13)


# ---- mse ------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_matches_torch(reduction):
    torch = pytest.importorskip("torch")
    x, y = rng().normal(size=(3, 4)), rng(1).normal(size=(3, 4))
    assert_matches_torch(value_and_grad(F.mse_loss, x, y, reduction=reduction),
                         torch_value_and_grad(torch.nn.functional.mse_loss, x,
                                              torch.tensor(y), reduction=reduction))


def test_mse_loss_refuses_to_broadcast():
    with pytest.raises(tg.ShapeError, match="mse_loss.*silently compare every pair"):
        F.mse_loss(np.zeros(3), np.zeros((3, 1)))


def test_mse_loss_sends_gradient_to_a_target_that_requires_grad():
    x = tg.tensor([1.0, 2.0])
    y = tg.tensor([0.0, 0.0], requires_grad=True)
    F.mse_loss(x, y, reduction="sum").backward()
    np.testing.assert_array_equal(y.grad, [-2.0, -4.0])


# ---- dropout --------------------------------------------------------------------------------
def test_dropout_is_identity_when_not_training():
    x = tg.tensor(np.ones(10))
    assert F.dropout(x, 0.5, training=False) is x


def test_dropout_scales_survivors_by_one_over_keep_probability():
    tg.manual_seed(0)
    out = F.dropout(np.ones(10_000), 0.2).data
    assert set(np.unique(out)) == {0.0, 1.25}
    assert abs((out == 0).mean() - 0.2) < 0.02


def test_dropout_is_reproducible_under_manual_seed():
    tg.manual_seed(3)
    first = F.dropout(np.ones(50), 0.5).data
    tg.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(np.ones(50), 0.5).data, first)


def test_dropout_gradient_is_the_scaled_mask():
    tg.manual_seed(0)
    x = tg.tensor(rng().normal(size=(4, 5)), requires_grad=True)
    out = F.dropout(x, 0.3)
    out.sum().backward()
    np.testing.assert_allclose(x.grad, (out.data != 0) / 0.7, rtol=1e-15)


def test_dropout_with_p_1_zeros_everything():
    assert not F.dropout(np.ones(5), 1.0).data.any()


def test_dropout_refuses_p_outside_0_1():
    with pytest.raises(ValueError, match="p must lie in"):
        F.dropout(np.ones(3), 1.5)


# ---- softplus, the primitive behind the stable losses --------------------------------------
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4),
                  elements=st.floats(-30, 30)))
def test_softplus_gradient_passes_gradcheck(x):
    tg.gradcheck(tg.softplus, [tg.tensor(x, requires_grad=True)])


def test_softplus_matches_torch_from_minus_1000_to_1000():
    TF = torch_functional()
    x = np.array([-1000.0, -50.0, -1.0, 0.0, 1e-8, 3.0, 50.0, 1000.0])
    assert_matches_torch(value_and_grad(tg.softplus, x),
                         torch_value_and_grad(TF.softplus, x))


def test_softplus_keeps_precision_for_very_negative_inputs():
    np.testing.assert_allclose(tg.softplus(np.array([-700.0])).data, np.exp(-700.0),
                               rtol=1e-14)
