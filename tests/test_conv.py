"""Convolution, pooling, layer norm, GELU, one_hot, nll_loss and the modules around them.

The oracles: PyTorch in float64 to 1e-10 (values and every input's gradient) where it
is installed, central differences (``tg.gradcheck``) and central differences of the
first gradient (``tg.gradgradcheck``) everywhere. Convolution configurations
(batch, channels, sizes, kernel, stride, padding, dilation) are drawn by hypothesis,
zero-size batches included.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinygraph as tg
from tinygraph import functional as F
from tinygraph import nn

try:
    import torch
    TF = torch.nn.functional
except ImportError:
    torch = TF = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")
TOLERANCE = dict(rtol=1e-10, atol=1e-10)


def normal(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def same_as_torch(ours, theirs, arrays, grad_seed=2):
    """Equal values and equal gradients of every input, for one random output gradient."""
    xs = [tg.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, expected = ours(*xs), theirs(*ts)
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TOLERANCE)
    g = np.random.default_rng(grad_seed).standard_normal(out.shape)
    out.backward(g)
    expected.backward(torch.from_numpy(g))
    for x, t in zip(xs, ts):
        np.testing.assert_allclose(x.grad, t.grad.numpy(), **TOLERANCE)


# ---- conv1d / conv2d -----------------------------------------------------------------------
@st.composite
def conv_configs(draw, n):
    """(input shape, weight shape, bias?, stride, padding, dilation, groups) for ``n``
    spatial axes, with the kernel's span fitting in the padded input."""
    batch = draw(st.sampled_from([0, 1, 2]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    c_in, c_out = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(n))
    sizes = tuple(max(d * (k - 1) + 1 - 2 * p, 1) + draw(st.integers(0, 3))
                  for k, d, p in zip(kernel, dilation, padding))
    return ((batch, c_in) + sizes, (c_out, c_in // groups) + kernel, draw(st.booleans()),
            stride, padding, dilation, groups)


def conv_function(n, stride, padding, dilation, groups, library):
    f = {("tg", 1): F.conv1d, ("tg", 2): F.conv2d}.get((library, n)) or (
        TF.conv1d if n == 1 else TF.conv2d)
    return lambda x, w, *b: f(x, w, *b, stride=stride, padding=padding, dilation=dilation,
                              groups=groups)


@needs_torch
@pytest.mark.parametrize("n", [1, 2], ids=["conv1d", "conv2d"])
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_conv_value_and_gradients_equal_torch(n, data, seed):
    x_shape, w_shape, bias, stride, padding, dilation, groups = data.draw(conv_configs(n))
    arrays = [normal(seed, x_shape), normal(seed + 1, w_shape)] + (
        [normal(seed + 2, w_shape[:1])] if bias else [])
    same_as_torch(conv_function(n, stride, padding, dilation, groups, "tg"),
                  conv_function(n, stride, padding, dilation, groups, "torch"), arrays)


@pytest.mark.parametrize("n", [1, 2], ids=["conv1d", "conv2d"])
@settings(max_examples=10)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_conv_gradients_and_second_derivatives_match_central_differences(n, data, seed):
    x_shape, w_shape, bias, stride, padding, dilation, groups = data.draw(conv_configs(n))
    arrays = [normal(seed, x_shape), normal(seed + 1, w_shape)] + (
        [normal(seed + 2, w_shape[:1])] if bias else [])
    inputs = [tg.tensor(a, requires_grad=True) for a in arrays]
    f = conv_function(n, stride, padding, dilation, groups, "tg")
    assert tg.gradcheck(f, inputs)
    assert tg.gradgradcheck(lambda *xs: f(*xs).tanh(), inputs)


@needs_torch
def test_conv_second_derivative_equals_torch_autograd_grad_taken_twice():
    x, w = normal(0, (2, 2, 5, 4)), normal(1, (3, 2, 2, 3))
    ours = [tg.tensor(a, requires_grad=True) for a in (x, w)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w)]
    loss = F.conv2d(*ours, stride=(2, 1), padding=1).tanh().sum()
    loss_t = TF.conv2d(*theirs, stride=(2, 1), padding=1).tanh().sum()
    first = tg.grad(loss, ours, create_graph=True)
    first_t = torch.autograd.grad(loss_t, theirs, create_graph=True)
    second = tg.grad((first[0] * first[0]).sum() + first[1].sum(), ours)
    second_t = torch.autograd.grad((first_t[0] * first_t[0]).sum() + first_t[1].sum(), theirs)
    for g, g_t in zip(list(first) + list(second), list(first_t) + list(second_t)):
        np.testing.assert_allclose(g.data, g_t.detach().numpy(), **TOLERANCE)


@needs_torch
@pytest.mark.parametrize("padding, dilation", [("same", 1), ("same", (2, 1)), ("valid", (1, 2))])
def test_conv2d_with_same_or_valid_padding_equals_torch(padding, dilation):
    arrays = [normal(3, (2, 2, 6, 5)), normal(4, (3, 2, 4, 3)), normal(5, (3,))]
    same_as_torch(lambda x, w, b: F.conv2d(x, w, b, padding=padding, dilation=dilation),
                  lambda x, w, b: TF.conv2d(x, w, b, padding=padding, dilation=dilation),
                  arrays)


@needs_torch
def test_conv_takes_one_unbatched_example_as_torch():
    same_as_torch(lambda x, w: F.conv1d(x, w, padding=1),
                  lambda x, w: TF.conv1d(x, w, padding=1),
                  [normal(0, (2, 6)), normal(1, (4, 2, 3))])
    same_as_torch(lambda x, w: F.conv2d(x, w), lambda x, w: TF.conv2d(x, w),
                  [normal(0, (2, 4, 4)), normal(1, (1, 2, 2, 2))])


def test_conv_errors_name_the_function_and_the_shapes():
    x = tg.tensor(np.zeros((1, 2, 4, 4)))
    with pytest.raises(tg.ShapeError, match=r"conv2d: the weight must be .*in_channels / "
                                            r"groups = 2"):
        F.conv2d(x, tg.tensor(np.zeros((3, 1, 2, 2))))
    with pytest.raises(tg.ShapeError, match=r"conv2d: the kernel \(5, 5\) .* spans \(5, 5\)"):
        F.conv2d(x, tg.tensor(np.zeros((3, 2, 5, 5))))
    with pytest.raises(tg.ShapeError, match=r"conv1d: the input must be \(N, C, L\)"):
        F.conv1d(x, tg.tensor(np.zeros((3, 2, 2))))
    with pytest.raises(ValueError, match="conv2d: padding='same' needs stride 1"):
        F.conv2d(x, tg.tensor(np.zeros((3, 2, 2, 2))), stride=2, padding="same")
    with pytest.raises(ValueError, match=r"conv2d: groups \(3\) must .* divides in_channels"):
        F.conv2d(x, tg.tensor(np.zeros((3, 1, 2, 2))), groups=3)


# ---- max pooling ----------------------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("options", [dict(kernel_size=2), dict(kernel_size=3, stride=1),
                                     dict(kernel_size=3, stride=2, padding=1),
                                     dict(kernel_size=(2, 3), stride=(1, 2), dilation=2)],
                         ids=["2", "3 stride 1", "3 stride 2 padding 1", "2x3 dilated"])
@given(seed=st.integers(0, 2**16))
def test_max_pool2d_with_ties_equals_torch_which_gives_the_first_maximum_the_gradient(
        options, seed):
    x = np.random.default_rng(seed).integers(0, 3, (2, 2, 7, 6)).astype(np.float64)
    same_as_torch(lambda x: F.max_pool2d(x, **options), lambda x: TF.max_pool2d(x, **options),
                  [x])


@needs_torch
def test_max_pool1d_and_unbatched_max_pool2d_equal_torch():
    same_as_torch(lambda x: F.max_pool1d(x, 3, 2, 1), lambda x: TF.max_pool1d(x, 3, 2, 1),
                  [normal(0, (2, 3, 9))])
    same_as_torch(lambda x: F.max_pool2d(x, 2), lambda x: TF.max_pool2d(x, 2),
                  [normal(0, (3, 4, 5))])


@needs_torch
@pytest.mark.parametrize("options", [dict(kernel_size=2), dict(kernel_size=3, stride=1),
                                     dict(kernel_size=3, stride=2, padding=1),
                                     dict(kernel_size=(2, 3), padding=(1, 1),
                                          count_include_pad=False)],
                         ids=["2", "3 stride 1", "3 stride 2 padding 1", "excluding padding"])
def test_avg_pool2d_and_avg_pool1d_equal_torch(options):
    same_as_torch(lambda x: F.avg_pool2d(x, **options), lambda x: TF.avg_pool2d(x, **options),
                  [normal(0, (2, 2, 7, 6))])
    options = {k: v[0] if isinstance(v, tuple) else v for k, v in options.items()}
    same_as_torch(lambda x: F.avg_pool1d(x, **options), lambda x: TF.avg_pool1d(x, **options),
                  [normal(0, (2, 9))])


def test_max_pool2d_gradient_and_second_derivative_match_central_differences():
    x = tg.tensor(normal(0, (1, 2, 5, 5)), requires_grad=True)
    assert tg.gradcheck(lambda x: F.max_pool2d(x, 2, 1), [x])
    assert tg.gradgradcheck(lambda x: F.max_pool2d(x * x, 3, 2, padding=1), [x])


def test_max_pool_padding_larger_than_half_the_kernel_is_an_error():
    with pytest.raises(ValueError, match="max_pool2d: padding 2 must be at most half"):
        F.max_pool2d(tg.tensor(np.zeros((1, 1, 4, 4))), 2, padding=2)


# ---- layer_norm, gelu, one_hot, pad -------------------------------------------------------------
@needs_torch
@pytest.mark.parametrize("shape, normalized", [((4, 5), (5,)), ((2, 3, 4), (3, 4)), ((3,), 3)])
def test_layer_norm_equals_torch_with_and_without_weight_and_bias(shape, normalized):
    last = (normalized,) if isinstance(normalized, int) else normalized
    arrays = [normal(0, shape), normal(1, last), normal(2, last)]
    same_as_torch(lambda x, w, b: F.layer_norm(x, normalized, w, b, 1e-5),
                  lambda x, w, b: TF.layer_norm(x, last, w, b, 1e-5), arrays)
    same_as_torch(lambda x: F.layer_norm(x, normalized), lambda x: TF.layer_norm(x, last),
                  arrays[:1])


def test_layer_norm_second_derivative_matches_central_differences():
    x, w = [tg.tensor(normal(s, shape), requires_grad=True) for s, shape in [(0, (3, 4)), (1, 4)]]
    assert tg.gradgradcheck(lambda x, w: F.layer_norm(x, 4, w), [x, w])


def test_layer_norm_names_a_shape_that_is_not_the_last_axes():
    with pytest.raises(tg.ShapeError, match=r"layer_norm: normalized_shape \(3,\)"):
        F.layer_norm(tg.tensor(np.zeros((3, 4))), 3)


@needs_torch
@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_equals_torch_and_its_second_derivative_matches_differences(approximate):
    x = np.linspace(-5, 5, 23)
    same_as_torch(lambda x: F.gelu(x, approximate), lambda x: TF.gelu(x, approximate=approximate),
                  [x])
    assert tg.gradgradcheck(lambda x: F.gelu(x, approximate), [tg.tensor(x, requires_grad=True)])


@needs_torch
def test_erf_equals_torch_at_large_and_small_arguments():
    same_as_torch(tg.erf, torch.erf, [np.array([-30.0, -2.0, -1e-8, 0.0, 0.5, 6.0])])


def test_gelu_with_an_unknown_approximation_names_the_choices():
    with pytest.raises(ValueError, match="'none' or 'tanh'"):
        F.gelu(tg.tensor(1.0), "erf")


@needs_torch
@pytest.mark.parametrize("indices, num_classes", [([0, 2, 1], -1), ([[1], [3]], 5),
                                                  (np.zeros(0, np.int64), 3)])
def test_one_hot_equals_torch(indices, num_classes):
    indices = np.asarray(indices, dtype=np.int64)
    out = F.one_hot(tg.tensor(indices), num_classes)
    expected = TF.one_hot(torch.from_numpy(indices), num_classes).numpy()
    assert out.dtype == np.int64 and not out.requires_grad
    np.testing.assert_array_equal(out.data, expected)


def test_one_hot_rejects_floats_and_out_of_range_indices():
    with pytest.raises(TypeError, match="one_hot: indices must be integers"):
        F.one_hot(np.array([0.0]))
    with pytest.raises(IndexError, match=r"one_hot: indices must lie in \[0, 2\)"):
        F.one_hot(np.array([0, 2]), 2)


@needs_torch
@pytest.mark.parametrize("pad, value", [((1, 2), 0.0), ((0, 1, 2, 0), -3.0),
                                        ((1, 1, 0, 0, 2, 1), 1.0)])
def test_functional_pad_reads_pairs_from_the_last_axis_as_torch(pad, value):
    same_as_torch(lambda x: F.pad(x, pad, value=value), lambda x: TF.pad(x, pad, value=value),
                  [normal(0, (2, 3, 4))])


# ---- nll_loss, and cross_entropy's class weights ---------------------------------------------
@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_nll_loss_and_cross_entropy_equal_torch_with_weights_and_ignored_targets(reduction,
                                                                                  weighted):
    targets = np.array([0, 3, -100, 1, 3, 2])
    weight = np.array([0.5, 2.0, 1.0, 3.0]) if weighted else None
    tw = None if weight is None else torch.from_numpy(weight)
    same_as_torch(lambda x: F.nll_loss(F.log_softmax(x), targets, weight, reduction=reduction),
                  lambda x: TF.nll_loss(torch.log_softmax(x, -1), torch.from_numpy(targets), tw,
                                        reduction=reduction), [normal(0, (6, 4))])
    same_as_torch(lambda x: F.cross_entropy(x, targets, reduction, weight=weight),
                  lambda x: TF.cross_entropy(x, torch.from_numpy(targets), tw,
                                             reduction=reduction), [normal(0, (6, 4))])


def test_nll_loss_names_a_target_shape_that_does_not_fit_and_a_wrong_weight():
    log_probs = tg.tensor(np.zeros((3, 4)))
    with pytest.raises(tg.ShapeError, match=r"nll_loss: targets of shape \(2,\)"):
        F.nll_loss(log_probs, np.array([0, 1]))
    with pytest.raises(tg.ShapeError, match=r"nll_loss: weight must have one entry per class"):
        F.nll_loss(log_probs, np.array([0, 1, 2]), np.ones(3))


# ---- modules ----------------------------------------------------------------------------------
MODULES = [
    ("Conv1d", lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1),
     lambda: torch.nn.Conv1d(2, 3, 3, stride=2, padding=1), (4, 2, 9)),
    ("Conv2d", lambda: nn.Conv2d(2, 3, (3, 2), padding=1, dilation=(1, 2)),
     lambda: torch.nn.Conv2d(2, 3, (3, 2), padding=1, dilation=(1, 2)), (2, 2, 6, 6)),
    ("Conv2d grouped", lambda: nn.Conv2d(4, 6, 3, groups=2, stride=2),
     lambda: torch.nn.Conv2d(4, 6, 3, groups=2, stride=2), (2, 4, 7, 7)),
    ("Conv1d depthwise", lambda: nn.Conv1d(3, 3, 2, groups=3),
     lambda: torch.nn.Conv1d(3, 3, 2, groups=3), (2, 3, 5)),
    ("Conv2d without bias", lambda: nn.Conv2d(1, 2, 2, bias=False),
     lambda: torch.nn.Conv2d(1, 2, 2, bias=False), (2, 1, 4, 4)),
    ("LayerNorm", lambda: nn.LayerNorm(5), lambda: torch.nn.LayerNorm(5), (3, 5)),
    ("LayerNorm 2-D", lambda: nn.LayerNorm((2, 5), eps=1e-3),
     lambda: torch.nn.LayerNorm((2, 5), eps=1e-3), (3, 2, 5)),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2), (2, 3, 4, 6)),
    ("MaxPool1d", lambda: nn.MaxPool1d(3, 1), lambda: torch.nn.MaxPool1d(3, 1), (2, 3, 7)),
    ("AvgPool2d", lambda: nn.AvgPool2d(3, 2, 1), lambda: torch.nn.AvgPool2d(3, 2, 1),
     (2, 3, 5, 6)),
    ("AvgPool1d", lambda: nn.AvgPool1d(2), lambda: torch.nn.AvgPool1d(2), (2, 3, 7)),
    ("Identity", lambda: nn.Identity(), lambda: torch.nn.Identity(), (2, 3)),
    ("Flatten", lambda: nn.Flatten(), lambda: torch.nn.Flatten(), (2, 3, 4)),
    ("GELU", lambda: nn.GELU(), lambda: torch.nn.GELU(), (3, 4)),
    ("GELU tanh", lambda: nn.GELU("tanh"), lambda: torch.nn.GELU("tanh"), (3, 4)),
    ("Softmax", lambda: nn.Softmax(dim=0), lambda: torch.nn.Softmax(dim=0), (3, 4)),
    ("LogSoftmax", lambda: nn.LogSoftmax(1), lambda: torch.nn.LogSoftmax(1), (3, 4)),
]


@needs_torch
@pytest.mark.parametrize("name, ours, theirs, shape", MODULES, ids=[m[0] for m in MODULES])
def test_module_loads_torchs_state_dict_by_copy_and_computes_the_same(name, ours, theirs,
                                                                      shape):
    module, reference = ours(), theirs().double()
    state = {k: v.detach().numpy() for k, v in reference.state_dict().items()}
    assert {k: v.shape for k, v in module.state_dict().items()} == {
        k: v.shape for k, v in state.items()}
    module.load_state_dict(state)
    params = [p for _, p in module.named_parameters()]
    x = normal(0, shape)
    X, X_t = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = module(X), reference(X_t)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), **TOLERANCE)
    g = normal(1, out.shape)
    out.backward(g)
    expected.backward(torch.from_numpy(g))
    np.testing.assert_allclose(X.grad, X_t.grad.numpy(), **TOLERANCE)
    for p, (_, p_t) in zip(params, reference.named_parameters()):
        np.testing.assert_allclose(p.grad, p_t.grad.numpy(), **TOLERANCE)


def test_conv_initial_values_are_bounded_by_one_over_sqrt_fan_in_as_torch():
    tg.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3)
    bound = 1 / math.sqrt(4 * 3 * 3)
    for p in (conv.weight, conv.bias):
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.8 * bound
    assert conv.weight.shape == (8, 4, 3, 3) and conv.bias.shape == (8,)


def test_layer_norm_starts_as_the_identity_affine_map():
    ln = nn.LayerNorm(3)
    np.testing.assert_array_equal(ln.weight.data, np.ones(3))
    np.testing.assert_array_equal(ln.bias.data, np.zeros(3))
    assert nn.LayerNorm(3, elementwise_affine=False).num_parameters() == 0


LOSSES = [
    ("CrossEntropyLoss", lambda: nn.CrossEntropyLoss(), lambda: torch.nn.CrossEntropyLoss(),
     lambda: np.array([2, 0, 1])),
    ("CrossEntropyLoss sum", lambda: nn.CrossEntropyLoss(reduction="sum"),
     lambda: torch.nn.CrossEntropyLoss(reduction="sum"), lambda: np.array([2, 0, 1])),
    ("NLLLoss", lambda: nn.NLLLoss(), lambda: torch.nn.NLLLoss(), lambda: np.array([1, 1, 0])),
    ("MSELoss", lambda: nn.MSELoss(), lambda: torch.nn.MSELoss(), lambda: normal(5, (3, 3))),
    ("BCEWithLogitsLoss none", lambda: nn.BCEWithLogitsLoss(reduction="none"),
     lambda: torch.nn.BCEWithLogitsLoss(reduction="none"),
     lambda: np.random.default_rng(0).random((3, 3))),
    ("BCELoss", lambda: nn.BCELoss(), lambda: torch.nn.BCELoss(),
     lambda: np.random.default_rng(0).random((3, 3))),
]


@needs_torch
@pytest.mark.parametrize("name, ours, theirs, target", LOSSES, ids=[m[0] for m in LOSSES])
def test_loss_module_equals_torchs(name, ours, theirs, target):
    y = target()
    x = normal(0, (3, 3))
    if name == "BCELoss":
        x = 1 / (1 + np.exp(-x))
    same_as_torch(lambda x: ours()(x, y), lambda x: theirs()(x, torch.from_numpy(y)), [x])


def test_loss_module_checks_its_reduction_when_made():
    with pytest.raises(ValueError, match="MSELoss: reduction must be"):
        nn.MSELoss(reduction="avg")


def test_a_small_cnn_is_a_sequential_of_the_new_modules_and_trains_one_step():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 3))
    x, y = tg.randn(5, 1, 4, 4), np.array([0, 1, 2, 1, 0])
    loss = nn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    before = loss.item()
    for p in model.parameters():
        p.data = p.data - 0.1 * p.grad
    assert nn.CrossEntropyLoss()(model(x), y).item() < before
