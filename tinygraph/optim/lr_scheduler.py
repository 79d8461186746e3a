"""Learning-rate schedules, as ``torch.optim.lr_scheduler`` (same path, names and rules).

A schedule writes ``group['lr']`` into its optimizer's parameter groups; call its
``step()`` once per epoch (or per batch), after ``optimizer.step()``:

    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    schedule = optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    for epoch in range(100):
        train(model, optimizer)
        schedule.step()              # ReduceLROnPlateau: schedule.step(validation_loss)

As in PyTorch, each step is computed from the groups' current ``lr`` (the "chainable"
form), so schedules compose and a learning rate set by hand carries on from where it
was set. A schedule notes each group's starting rate as ``group['initial_lr']`` (saved
with the optimizer). ``state_dict()`` holds numbers and lists only, so ``tg.save`` writes
it; LambdaLR's functions are not saved (give them again when you rebuild it).
"""
import math


class LRScheduler:
    """Base class: ``base_lrs`` (the groups' starting rates), ``last_epoch`` (how many
    steps so far: 0 after construction) and ``get_last_lr()``; a subclass defines
    ``get_lr()``, the groups' rates for the epoch ``last_epoch`` just reached."""

    fields = ()  # what a subclass saves besides the base's bookkeeping

    def __init__(self, optimizer, last_epoch=-1):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"{type(self).__name__} takes an optimizer, "
                            f"not {type(optimizer).__name__}")
        self.optimizer = optimizer
        for i, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"{type(self).__name__}: param_groups[{i}] has no "
                               f"'initial_lr', needed to resume at last_epoch={last_epoch}: "
                               f"load the optimizer's state_dict first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch, self._step_count, self._is_initial = last_epoch, 0, True
        self.step()
        self._is_initial = False

    def get_lr(self):
        raise NotImplementedError

    def get_last_lr(self):
        """The learning rates the last step set, one per group."""
        return list(self._last_lr)

    def step(self):
        """Move on one epoch: set every group's ``lr`` to the schedule's next value."""
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _current(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        """Everything but the optimizer: numbers and lists of numbers."""
        names = ("base_lrs", "last_epoch", "_step_count", "_last_lr") + self.fields
        return {name: (list(getattr(self, name)) if isinstance(getattr(self, name), list)
                       else getattr(self, name)) for name in names}

    def load_state_dict(self, state_dict):
        """Continue from ``state_dict`` (from ``state_dict()`` of the same kind of schedule)."""
        missing = set(self.state_dict()) - set(state_dict)
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state dict lacks "
                             f"{sorted(missing)}; is it from another kind of schedule?")
        for name in self.state_dict():
            value = state_dict[name]
            setattr(self, name, list(value) if isinstance(value, (list, tuple)) else value)


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(epoch); ``lr_lambda`` is a function of the epoch (an int),
    or a list of them, one per parameter group. The functions are not saved."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        groups = len(optimizer.param_groups)
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * groups
        if len(lambdas) != groups:
            raise ValueError(f"LambdaLR: expected {groups} lr_lambdas (one per parameter "
                             f"group), got {len(lambdas)}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return [base_lr * fn(self.last_epoch) for fn, base_lr in zip(self.lr_lambdas, self.base_lrs)]


class StepLR(LRScheduler):
    """lr = base_lr * gamma^(epoch // step_size): multiplied by gamma every step_size epochs."""

    fields = ("step_size", "gamma")

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive int, got {step_size!r}")
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma^epoch: multiplied by gamma every epoch."""

    fields = ("gamma",)

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        return self._current() if self._is_initial else [lr * self.gamma for lr in self._current()]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2 (Loshchilov &
    Hutter's SGDR without restarts): from base_lr down to eta_min over T_max epochs,
    then back up, a period of 2 T_max. Computed step to step as PyTorch does, as the
    ratio of consecutive cosines, so a rate changed by hand carries on."""

    fields = ("T_max", "eta_min")

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max!r}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return self._current()
        if self._step_count == 1 and t > 0:
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / T)) / 2
                    for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:  # at the bottom the ratio is 0 / 0: add the step up
            return [lr + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for lr, base in zip(self._current(), self.base_lrs)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - eta_min) + eta_min for lr in self._current()]


class ReduceLROnPlateau(LRScheduler):
    """Multiply each group's lr by ``factor`` (not below ``min_lr``) once the metric passed
    to ``step(metric)`` has not improved for more than ``patience`` epochs, then wait
    ``cooldown`` epochs before counting again. Improving means, for mode 'min', going
    below best * (1 - threshold) ('rel') or best - threshold ('abs'); 'max' mirrors it.
    A reduction smaller than ``eps`` is skipped."""

    fields = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
              "min_lrs", "eps", "best", "num_bad_epochs", "cooldown_counter")

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4,
                 threshold_mode="rel", cooldown=0, min_lr=0.0, eps=1e-8):
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max' and "
                             f"threshold_mode 'rel' or 'abs', got {mode!r}, {threshold_mode!r}")
        if not factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be below 1, got {factor}")
        groups = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * groups
        if len(min_lrs) != groups:
            raise ValueError(f"ReduceLROnPlateau: expected {groups} min_lrs (one per "
                             f"parameter group), got {len(min_lrs)}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown = threshold, threshold_mode, cooldown
        self.min_lrs, self.eps = min_lrs, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = self.cooldown_counter = 0
        self.base_lrs = self._last_lr = self._current()
        self.last_epoch, self._step_count = 0, 0

    def step(self, metrics):
        """Note this epoch's metric (a number or a one-element tensor)."""
        current = float(metrics)
        self.last_epoch += 1
        self._step_count += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(group["lr"] * self.factor, min_lr)
                if group["lr"] - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0
        self._last_lr = self._current()

    def _is_better(self, value):
        if self.threshold_mode == "rel":
            scale = 1 - self.threshold if self.mode == "min" else 1 + self.threshold
            return value < self.best * scale if self.mode == "min" else value > self.best * scale
        return (value < self.best - self.threshold if self.mode == "min"
                else value > self.best + self.threshold)
