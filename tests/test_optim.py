"""optim: update rules equal PyTorch's over 10 steps; bookkeeping; gradient clipping."""
import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn, optim

TOL = dict(rtol=1e-10, atol=1e-10)
SHAPES = [(3, 4), (4,)]


def start_values():
    rng = np.random.default_rng(0)
    return [rng.normal(size=shape) for shape in SHAPES]


def gradient(theta, step):
    """A gradient that depends on where the parameter is and changes from step to step."""
    return np.sin(3 * theta) + 0.1 * (step + 1) * np.cos(theta)


def run_ours(make_optimizer, steps=10):
    params = [nn.Parameter(v.copy()) for v in start_values()]
    optimizer = make_optimizer(params)
    for step in range(steps):
        optimizer.zero_grad()
        for p in params:
            p.grad = gradient(p.data, step)
        optimizer.step()
    return [p.data for p in params]


def run_torch(make_optimizer, steps=10):
    torch = pytest.importorskip("torch")
    params = [torch.tensor(v.copy(), requires_grad=True) for v in start_values()]
    optimizer = make_optimizer(params)
    for step in range(steps):
        optimizer.zero_grad()
        for p in params:
            p.grad = torch.tensor(gradient(p.detach().numpy(), step))
        optimizer.step()
    return [p.detach().numpy() for p in params]


CASES = {
    "sgd": ("SGD", dict(lr=0.1)),
    "sgd_momentum": ("SGD", dict(lr=0.1, momentum=0.9)),
    "sgd_dampening_weight_decay": ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3,
                                               weight_decay=0.01)),
    "sgd_nesterov": ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "adam": ("Adam", dict()),
    "adam_tuned": ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adam_amsgrad": ("Adam", dict(lr=0.05, amsgrad=True, weight_decay=0.01)),
    "adam_maximize": ("Adam", dict(lr=0.05, maximize=True)),
    "adamw": ("AdamW", dict()),
    "adamw_tuned": ("AdamW", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    "adamw_amsgrad": ("AdamW", dict(lr=0.05, amsgrad=True)),
    "rmsprop": ("RMSprop", dict()),
    "rmsprop_weight_decay": ("RMSprop", dict(lr=0.02, alpha=0.9, eps=1e-6, weight_decay=0.1)),
    "rmsprop_momentum": ("RMSprop", dict(lr=0.01, momentum=0.9)),
    "rmsprop_centered": ("RMSprop", dict(lr=0.01, centered=True)),
    "rmsprop_centered_momentum": ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True,
                                                  weight_decay=0.05)),
    "sgd_maximize": ("SGD", dict(lr=0.1, momentum=0.9, maximize=True)),
    "adagrad": ("Adagrad", dict()),
    "adagrad_tuned": ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.05,
                                      initial_accumulator_value=0.1, eps=1e-8)),
}


@pytest.mark.parametrize("case", CASES)
def test_update_rule_equals_torch_over_10_steps(case):
    torch = pytest.importorskip("torch")
    name, kwargs = CASES[case]
    ours = run_ours(lambda ps: getattr(optim, name)(ps, **kwargs))
    theirs = run_torch(lambda ps: getattr(torch.optim, name)(ps, **kwargs))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("case", CASES)
def test_update_rule_equals_torch_with_per_group_options(case):
    torch = pytest.importorskip("torch")
    name, kwargs = CASES[case]

    def groups(params):  # the second group overrides the learning rate
        lr = kwargs.get("lr", 1e-3 if name in ("SGD", "Adam", "AdamW") else 1e-2)
        return [{"params": params[:1]}, {"params": params[1:], "lr": 3 * lr}]
    ours = run_ours(lambda ps: getattr(optim, name)(groups(ps), **kwargs))
    theirs = run_torch(lambda ps: getattr(torch.optim, name)(groups(ps), **kwargs))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("case", CASES)
def test_update_moves_the_parameters(case):
    name, kwargs = CASES[case]
    for before, after in zip(start_values(), run_ours(
            lambda ps: getattr(optim, name)(ps, **kwargs), steps=1)):
        assert not np.allclose(before, after)


def test_plain_sgd_step_is_theta_minus_lr_times_grad():
    p = nn.Parameter([1.0, 2.0])
    p.grad = np.array([0.5, -1.0])
    optim.SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, 2.1])


def test_step_skips_parameters_without_grad():
    used, unused = nn.Parameter([1.0]), nn.Parameter([2.0])
    optimizer = optim.Adam([used, unused], lr=0.1)
    used.grad = np.array([1.0])
    optimizer.step()
    assert unused.data[0] == 2.0 and used.data[0] != 1.0
    assert optimizer.state[unused] == {}


def test_step_writes_through_the_data_setter_keeping_the_object():
    p = nn.Parameter([1.0])
    version = p._version
    optimizer = optim.SGD([p], lr=0.1)
    p.grad = np.array([1.0])
    optimizer.step()
    assert optimizer.params[0] is p and p._version == version + 1


def test_step_keeps_float32_parameters_float32():
    p = nn.Parameter(np.ones(3, dtype=np.float32))
    p.grad = np.ones(3, dtype=np.float32)
    optim.Adam([p]).step()
    assert p.dtype == np.float32


def test_zero_grad_sets_grads_to_none():
    p = nn.Parameter([1.0])
    p.grad = np.array([1.0])
    optim.SGD([p], lr=0.1).zero_grad()
    assert p.grad is None


def test_optimizer_accepts_a_parameter_generator_and_keeps_it():
    model = nn.Linear(2, 2)
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    assert len(optimizer.params) == 2


def test_empty_parameter_list_is_refused():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])


def test_non_leaf_tensors_are_refused_with_their_op():
    p = nn.Parameter([1.0])
    with pytest.raises(ValueError, match="leaf tensors.*'mul'"):
        optim.SGD([p * 2], lr=0.1)


def test_negative_learning_rate_is_refused():
    with pytest.raises(ValueError, match="lr must not be negative"):
        optim.SGD([nn.Parameter([1.0])], lr=-1)


def test_nesterov_without_momentum_is_refused():
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([nn.Parameter([1.0])], lr=0.1, nesterov=True)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_defaults_equal_torchs(name):
    torch = pytest.importorskip("torch")
    ours = getattr(optim, name)([nn.Parameter([1.0])]).param_groups[0]
    theirs = getattr(torch.optim, name)([torch.ones(1, requires_grad=True)]).param_groups[0]
    for key, value in ours.items():
        if key != "params":
            assert theirs[key] == value, key


# ---- parameter groups ---------------------------------------------------------------------
def test_param_groups_hold_params_and_every_hyperparameter():
    first, second = nn.Parameter([1.0]), nn.Parameter([2.0])
    optimizer = optim.SGD([{"params": [first]}, {"params": [second], "lr": 0.5}],
                          lr=0.1, momentum=0.9)
    assert [g["params"] for g in optimizer.param_groups] == [[first], [second]]
    assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.5]
    assert all(g["momentum"] == 0.9 for g in optimizer.param_groups)


def test_writing_lr_into_a_group_changes_the_next_step():
    p = nn.Parameter([1.0])
    optimizer = optim.SGD([p], lr=0.1)
    optimizer.param_groups[0]["lr"] = 0.01
    p.grad = np.array([1.0])
    optimizer.step()
    np.testing.assert_allclose(p.data, [0.99])


def test_writing_weight_decay_into_a_group_changes_the_next_step():
    p = nn.Parameter([2.0])
    optimizer = optim.Adam([p], lr=0.1)
    optimizer.param_groups[0]["weight_decay"] = 1.0
    p.grad = np.array([0.0])  # only the decay moves it
    optimizer.step()
    assert p.data[0] < 2.0


def test_add_param_group_takes_the_defaults_for_what_it_leaves_out():
    first, second = nn.Parameter([1.0]), nn.Parameter([1.0])
    optimizer = optim.Adam([first], lr=0.1, betas=(0.8, 0.9))
    optimizer.add_param_group({"params": second, "lr": 0.2})
    assert optimizer.param_groups[1]["lr"] == 0.2
    assert optimizer.param_groups[1]["betas"] == (0.8, 0.9)
    assert optimizer.params == [first, second]


def test_a_parameter_in_two_groups_is_refused():
    p = nn.Parameter([1.0])
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([{"params": [p]}, {"params": [p], "lr": 1.0}], lr=0.1)


def test_named_parameters_are_accepted():
    model = nn.Linear(2, 3)
    optimizer = optim.SGD(model.named_parameters(), lr=0.1)
    assert optimizer.params == list(model.parameters())


def test_a_group_without_params_is_refused():
    with pytest.raises(TypeError, match="'params'"):
        optim.SGD([{"lr": 0.1}], lr=0.1)


def test_a_negative_option_in_a_group_is_refused():
    with pytest.raises(ValueError, match="weight_decay must not be negative"):
        optim.SGD([{"params": [nn.Parameter([1.0])], "weight_decay": -1}], lr=0.1)


def test_step_runs_the_closure_and_returns_its_loss():
    p = nn.Parameter([3.0])
    optimizer = optim.SGD([p], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss
    with tg.no_grad():  # the closure records its graph all the same
        loss = optimizer.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_allclose(p.data, [3.0 - 0.1 * 6.0])


def test_zero_grad_without_set_to_none_keeps_zeros():
    p = nn.Parameter([1.0, 2.0])
    p.grad = np.array([1.0, 1.0])
    optim.SGD([p], lr=0.1).zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad, [0.0, 0.0])


def test_adam_refuses_betas_outside_0_1():
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([nn.Parameter([1.0])], betas=(0.9, 1.0))


# ---- clipping -----------------------------------------------------------------------------
def params_with_grads(scale):
    rng = np.random.default_rng(1)
    params = [nn.Parameter(np.zeros(shape)) for shape in SHAPES]
    for p in params:
        p.grad = scale * rng.normal(size=p.shape)
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 0.5, np.inf, "inf", -np.inf, 0, -1.0])
@pytest.mark.parametrize("scale", [0.01, 10.0])
def test_clip_grad_norm_equals_torch(norm_type, scale):
    torch = pytest.importorskip("torch")
    ours = params_with_grads(scale)
    theirs = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=True) for p in ours]
    for p, t in zip(ours, theirs):
        t.grad = torch.tensor(p.grad)
    ours[0].grad[0] = 0.0  # (a zero entry: what the 0 and negative orders count)
    theirs[0].grad[0] = 0.0
    total = optim.clip_grad_norm_(ours, max_norm=1.0, norm_type=norm_type)
    total_torch = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.0, norm_type=norm_type)
    np.testing.assert_allclose(total, total_torch.item(), **TOL)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), **TOL)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_lets_a_non_finite_norm_reach_every_gradient_as_torch(bad):
    torch = pytest.importorskip("torch")
    ours = params_with_grads(1.0)
    ours[1].grad[2] = bad
    theirs = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=True) for p in ours]
    for p, t in zip(ours, theirs):
        t.grad = torch.tensor(p.grad)
    total = optim.clip_grad_norm_(ours, max_norm=1.0)
    total_torch = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.0)
    np.testing.assert_equal(total, total_torch.item())
    for p, t in zip(ours, theirs):
        np.testing.assert_equal(p.grad, t.grad.numpy())
    ours[1].grad[2] = bad
    with pytest.raises(RuntimeError, match="non-finite|nan|inf"):
        optim.clip_grad_norm_(ours, max_norm=1.0, error_if_nonfinite=True)


def test_clipping_and_steps_use_the_values_of_a_recorded_gradient():
    """After backward(create_graph=True) .grad is a tensor; clipping and every update
    use its values, as PyTorch's do."""
    for make in (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), optim.Adam, optim.RMSprop,
                 optim.Adagrad):
        w = nn.Parameter(np.array([1.0, 2.0, -1.0]))
        (w * w * w).sum().backward(create_graph=True)
        assert isinstance(w.grad, tg.Tensor)
        total = optim.clip_grad_norm_([w], max_norm=1.0)
        np.testing.assert_allclose(total, np.linalg.norm(3 * np.array([1.0, 4.0, 1.0])))
        optim.clip_grad_value_([w], 0.2)
        expected = np.clip(3 * np.array([1.0, 4.0, 1.0]) / total, -0.2, 0.2)
        np.testing.assert_allclose(w.grad.data, expected, rtol=1e-5)
        reference = nn.Parameter(np.array([1.0, 2.0, -1.0]))
        reference.grad = np.array(w.grad.data)
        make([w]).step(), make([reference]).step()
        np.testing.assert_array_equal(w.data, reference.data)


def test_a_gradient_of_another_shape_than_its_parameter_raises():
    w = nn.Parameter(np.ones(3), name="w")
    w.grad = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"gradient of w has shape \(2, 3\).*\(3,\)"):
        optim.SGD([w], lr=0.1).step()
    assert w.shape == (3,)
    with pytest.raises(ValueError, match="gradient of w"):
        optim.clip_grad_norm_([w], 1.0)


def test_clip_grad_norm_returns_the_norm_before_clipping_and_keeps_direction():
    params = params_with_grads(10.0)
    before = np.concatenate([p.grad.ravel() for p in params])
    total = optim.clip_grad_norm_(params, max_norm=2.0)
    after = np.concatenate([p.grad.ravel() for p in params])
    np.testing.assert_allclose(total, np.linalg.norm(before), rtol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(after), 2.0, rtol=1e-6)
    np.testing.assert_allclose(after / np.linalg.norm(after), before / total, rtol=1e-12)


def test_clip_grad_norm_leaves_small_gradients_alone():
    params = params_with_grads(0.01)
    before = [p.grad.copy() for p in params]
    optim.clip_grad_norm_(params, max_norm=1.0)
    for p, grad in zip(params, before):
        np.testing.assert_array_equal(p.grad, grad)


def test_clip_grad_norm_works_on_a_generator():
    model = nn.Linear(3, 3)
    for p in model.parameters():
        p.grad = np.full(p.shape, 10.0)
    optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
    total = np.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_clip_grad_norm_skips_parameters_without_grad():
    used, unused = nn.Parameter([0.0]), nn.Parameter([0.0])
    used.grad = np.array([3.0])
    assert optim.clip_grad_norm_([used, unused], max_norm=1.0) == 3.0
    assert unused.grad is None


def test_clip_grad_value_equals_torch():
    torch = pytest.importorskip("torch")
    ours = params_with_grads(3.0)
    theirs = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=True) for p in ours]
    for p, t in zip(ours, theirs):
        t.grad = torch.tensor(p.grad)
    optim.clip_grad_value_(ours, 0.5)
    torch.nn.utils.clip_grad_value_(theirs, 0.5)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
    assert max(np.abs(p.grad).max() for p in ours) == 0.5


def test_a_training_step_lowers_the_loss():
    tg.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = np.random.default_rng(0).normal(size=(20, 3)), np.ones((20, 1))
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(2):
        optimizer.zero_grad()
        loss = tg.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[1] < losses[0]


# ---- state_dict: a run resumes exactly ------------------------------------------------------
def train(model, optimizer, schedule, steps):
    x = np.random.default_rng(2).normal(size=(8, 3))
    y = np.random.default_rng(3).normal(size=(8, 2))
    for _ in range(steps):
        optimizer.zero_grad()
        tg.functional.mse_loss(model(tg.tensor(x)), y).backward()
        optimizer.step()
        schedule.step()


def fresh_run(name, kwargs):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    groups = [{"params": model[0].parameters()}, {"params": model[1].parameters()}]
    optimizer = getattr(optim, name)(groups, **kwargs)
    optimizer.param_groups[1]["lr"] = optimizer.param_groups[1]["lr"] / 2
    return model, optimizer, optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.7)


@pytest.mark.parametrize("case", CASES)
def test_training_resumes_bitwise_after_save_and_load(case, tmp_path):
    name, kwargs = CASES[case]
    straight = fresh_run(name, kwargs)
    train(*straight, steps=10)
    model, optimizer, schedule = fresh_run(name, kwargs)
    train(model, optimizer, schedule, steps=4)
    tg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "schedule": schedule.state_dict()}, tmp_path / "run.npz")
    del model, optimizer, schedule
    tg.manual_seed(123)  # the fresh model starts elsewhere: everything comes from the file
    model, optimizer, schedule = fresh_run(name, kwargs)
    checkpoint = tg.load(tmp_path / "run.npz")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    schedule.load_state_dict(checkpoint["schedule"])
    train(model, optimizer, schedule, steps=6)
    for (key, a), (_, b) in zip(straight[0].state_dict().items(), model.state_dict().items()):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=key)
    assert optimizer.param_groups[1]["lr"] == straight[1].param_groups[1]["lr"]


def test_state_dict_has_torchs_layout():
    torch = pytest.importorskip("torch")
    ours_p = nn.Parameter(np.ones(2))
    theirs_p = torch.ones(2, dtype=torch.float64, requires_grad=True)
    ours, theirs = optim.Adam([ours_p], lr=0.1), torch.optim.Adam([theirs_p], lr=0.1)
    ours_p.grad, theirs_p.grad = np.ones(2), torch.ones(2, dtype=torch.float64)
    ours.step()
    theirs.step()
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert set(mine) == set(reference)
    assert mine["param_groups"][0]["params"] == reference["param_groups"][0]["params"]
    assert set(mine["state"][0]) == set(reference["state"][0])
    np.testing.assert_allclose(mine["state"][0]["exp_avg_sq"],
                               reference["state"][0]["exp_avg_sq"].numpy(), rtol=1e-12)


def test_state_dict_copies_the_buffers():
    p = nn.Parameter([1.0])
    optimizer = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0])
    optimizer.step()
    saved = optimizer.state_dict()
    optimizer.step()
    assert saved["state"][0]["momentum_buffer"][0] == 1.0


def test_load_state_dict_refuses_other_group_sizes_and_changes_nothing():
    first = optim.SGD([nn.Parameter([1.0]), nn.Parameter([2.0])], lr=0.1)
    second = optim.SGD([nn.Parameter([1.0])], lr=0.5)
    with pytest.raises(ValueError, match="groups of sizes \\[2\\], this one \\[1\\]"):
        second.load_state_dict(first.state_dict())
    assert second.param_groups[0]["lr"] == 0.5


def test_load_state_dict_refuses_a_buffer_of_another_shape():
    p = nn.Parameter(np.ones(3))
    optimizer = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.ones(3)
    optimizer.step()
    saved = optimizer.state_dict()
    other = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="'momentum_buffer' has shape \\(3,\\).*shape \\(2,\\)"):
        other.load_state_dict(saved)
    assert len(other.state[other.params[0]]) == 0


def test_load_state_dict_refuses_something_else():
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        optim.SGD([nn.Parameter([1.0])], lr=0.1).load_state_dict({"W": np.ones(1)})
