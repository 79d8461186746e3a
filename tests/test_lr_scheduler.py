"""optim.lr_scheduler: each schedule's learning rate equals torch's, step for step."""
import math

import numpy as np
import pytest

from tinygraph import nn, optim
from tinygraph.optim import lr_scheduler

STEPS = 30
METRICS = [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.79999, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.6, 0.6,
           0.65, 0.65, 0.65, 0.65, 0.65, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
CASES = {
    "step": ("StepLR", dict(step_size=7)),
    "step_gamma": ("StepLR", dict(step_size=3, gamma=0.5)),
    "exponential": ("ExponentialLR", dict(gamma=0.9)),
    "cosine": ("CosineAnnealingLR", dict(T_max=10)),
    "cosine_eta_min": ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01)),
    "lambda": ("LambdaLR", dict(lr_lambda=lambda epoch: 0.95 ** epoch)),
    "lambda_per_group": ("LambdaLR", dict(lr_lambda=[lambda e: 1 / (1 + e), lambda e: 0.9 ** e])),
    "plateau": ("ReduceLROnPlateau", dict(patience=2, factor=0.5)),
    "plateau_cooldown_min_lr": ("ReduceLROnPlateau", dict(patience=1, cooldown=2,
                                                          min_lr=[0.01, 0.02])),
    "plateau_abs": ("ReduceLROnPlateau", dict(patience=0, threshold=0.05,
                                              threshold_mode="abs")),
    "plateau_max": ("ReduceLROnPlateau", dict(mode="max", patience=1, factor=0.3)),
}


def learning_rates(module, make_parameter, name, kwargs):
    """The groups' learning rates after each of STEPS steps, for two groups."""
    first, second = make_parameter([1.0]), make_parameter([2.0])
    optimizer = module.SGD([{"params": [first]}, {"params": [second], "lr": 0.5}], lr=0.1,
                           momentum=0.9)
    schedule = getattr(module.lr_scheduler, name)(optimizer, **kwargs)
    rates = []
    for epoch in range(STEPS):
        optimizer.step()
        if name == "ReduceLROnPlateau":
            schedule.step(METRICS[epoch])
        else:
            schedule.step()
        rates.append(schedule.get_last_lr())
        assert rates[-1] == [g["lr"] for g in optimizer.param_groups]
    return rates


@pytest.mark.parametrize("case", CASES)
def test_learning_rate_equals_torchs_step_for_step(case):
    torch = pytest.importorskip("torch")
    name, kwargs = CASES[case]
    ours = learning_rates(optim, nn.Parameter, name, kwargs)
    theirs = learning_rates(torch.optim, lambda v: torch.tensor(v, requires_grad=True),
                            name, kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-13, atol=0)
    assert len({tuple(r) for r in ours}) > 1  # the schedule did change the rate


def optimizer(lr=0.1):
    return optim.SGD([nn.Parameter([1.0])], lr=lr)


def test_step_lr_follows_its_closed_form():
    schedule = lr_scheduler.StepLR(optimizer(), step_size=3, gamma=0.5)
    for epoch in range(1, 10):
        schedule.step()
        assert schedule.get_last_lr() == pytest.approx([0.1 * 0.5 ** (epoch // 3)], rel=1e-14)


def test_cosine_reaches_eta_min_at_t_max_and_returns():
    schedule = lr_scheduler.CosineAnnealingLR(optimizer(), T_max=5, eta_min=0.02)
    rates = []
    for _ in range(10):
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert rates[4] == pytest.approx(0.02, abs=1e-15)
    assert rates[9] == pytest.approx(0.1, rel=1e-12)
    expected = [0.02 + 0.08 * (1 + math.cos(math.pi * t / 5)) / 2 for t in range(1, 11)]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)


def test_lambda_lr_sets_lambda_0_at_construction():
    opt = optimizer()
    lr_scheduler.LambdaLR(opt, lambda epoch: 0.5 + epoch)
    assert opt.param_groups[0]["lr"] == 0.05


def test_a_schedule_writes_the_rate_the_next_optimizer_step_uses():
    p = nn.Parameter([1.0])
    opt = optim.SGD([p], lr=1.0)
    schedule = lr_scheduler.ExponentialLR(opt, gamma=0.1)
    schedule.step()
    p.grad = np.array([1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.9])


def test_schedule_notes_initial_lr_in_each_group():
    opt = optimizer(0.3)
    lr_scheduler.StepLR(opt, step_size=2)
    assert opt.param_groups[0]["initial_lr"] == 0.3


def test_resuming_with_last_epoch_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(optimizer(), step_size=2, last_epoch=4)


def test_lambda_lr_needs_one_function_per_group():
    with pytest.raises(ValueError, match="expected 1 lr_lambdas"):
        lr_scheduler.LambdaLR(optimizer(), [lambda e: 1.0, lambda e: 2.0])


def test_plateau_refuses_a_factor_of_one_or_more():
    with pytest.raises(ValueError, match="factor must be below 1"):
        lr_scheduler.ReduceLROnPlateau(optimizer(), factor=1.0)


def test_plateau_refuses_an_unknown_mode():
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        lr_scheduler.ReduceLROnPlateau(optimizer(), mode="lowest")


def test_step_lr_refuses_a_step_size_below_one():
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        lr_scheduler.StepLR(optimizer(), step_size=0)


def test_a_schedule_needs_an_optimizer():
    with pytest.raises(TypeError, match="takes an optimizer"):
        lr_scheduler.StepLR([nn.Parameter([1.0])], step_size=1)


@pytest.mark.parametrize("case", CASES)
def test_state_dict_resumes_the_schedule(case):
    name, kwargs = CASES[case]

    def build():
        opt = optim.SGD([{"params": [nn.Parameter([1.0])]},
                         {"params": [nn.Parameter([1.0])], "lr": 0.5}], lr=0.1)
        return opt, getattr(lr_scheduler, name)(opt, **kwargs)

    def advance(opt, schedule, epochs):
        for epoch in epochs:
            schedule.step(METRICS[epoch]) if name == "ReduceLROnPlateau" else schedule.step()
        return schedule.get_last_lr()

    straight = advance(*build(), range(STEPS))
    opt, schedule = build()
    advance(opt, schedule, range(12))
    saved_optimizer, saved_schedule = opt.state_dict(), schedule.state_dict()
    opt, schedule = build()
    opt.load_state_dict(saved_optimizer)
    schedule.load_state_dict(saved_schedule)
    assert advance(opt, schedule, range(12, STEPS)) == straight


def test_load_state_dict_refuses_another_kind_of_schedule():
    saved = lr_scheduler.ExponentialLR(optimizer(), gamma=0.5).state_dict()
    with pytest.raises(ValueError, match="lacks.*step_size"):
        lr_scheduler.StepLR(optimizer(), step_size=2).load_state_dict(saved)
