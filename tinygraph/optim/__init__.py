"""Optimizers and gradient clipping, with PyTorch's update rules and bookkeeping.

An optimizer holds its parameters in ``param_groups``, a list of dicts, each with
``'params'`` and that group's hyper-parameters (``lr``, ``weight_decay``, ...), as in
PyTorch. ``step()`` reads the hyper-parameters from the groups every time, so writing
``group['lr'] = x`` (what a schedule in ``optim.lr_scheduler`` does) takes effect at
the next step. ``step()`` moves each parameter that has a gradient, ``zero_grad()``
forgets the gradients. Updates go through ``p.data = ...`` (never by replacing the
Parameter), which bumps the tensor's version, so the engine can tell when a parameter
changed while a graph still needed its old value.

    optimizer = optim.Adam([{"params": model.body.parameters()},
                            {"params": model.head.parameters(), "lr": 1e-2}], lr=1e-3)
    for x, y in batches:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optim.clip_grad_norm_(model.parameters(), max_norm=5.0)
        optimizer.step()

``state_dict()`` is PyTorch's: ``{'state': {index: {...}}, 'param_groups': [...]}``
with parameters as indices in group order; ``tg.save`` writes it without pickle, so
a run resumes exactly after ``load_state_dict(tg.load(path))``.
"""
import warnings
import weakref
from collections import defaultdict

import numpy as np

from ..engine import enable_grad
from ..tensor import Tensor
from . import lr_scheduler

_optimizers = weakref.WeakSet()  # live optimizers, to notice clipping after their step


def _tensor_list(params, name):
    params = [params] if isinstance(params, Tensor) else list(params)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{name} takes tensors, not {type(p).__name__}")
    return params


class Optimizer:
    """Base class: the parameter groups, and a state dict per parameter
    (``optimizer.state[p]``); a subclass defines ``update(theta, grad, state, group)
    -> new data``, reading its hyper-parameters from ``group``.

    ``params`` is an iterable of tensors, of ``(name, tensor)`` pairs (as
    ``named_parameters()`` gives), or of dicts, each a group with ``'params'`` and
    any hyper-parameters that differ from the defaults given as keywords.
    """

    def __init__(self, params, defaults):
        name = type(self).__name__
        self.defaults, self.param_groups, self.state = defaults, [], defaultdict(dict)
        groups = [params] if isinstance(params, Tensor) else list(params)
        if not groups:
            raise ValueError(f"{name} got an empty parameter list")
        for group in groups if isinstance(groups[0], dict) else [{"params": groups}]:
            self.add_param_group(group)
        self.stepped_grads = []  # the gradients the last step() used (not copies)
        _optimizers.add(self)

    @property
    def params(self):
        """Every parameter, group after group."""
        return [p for group in self.param_groups for p in group["params"]]

    def add_param_group(self, param_group):
        """Add a group (a dict with ``'params'``); options it leaves out take the defaults."""
        name = type(self).__name__
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError(f"{name}: a parameter group is a dict with a 'params' entry, "
                            f"not {param_group!r:.80}")
        params = param_group["params"]
        if not isinstance(params, Tensor):
            params = [p[1] if isinstance(p, tuple) and len(p) == 2 else p for p in params]
        params = _tensor_list(params, name)
        for p in params:
            if not p.is_leaf:
                raise ValueError(f"{name} can only optimize leaf tensors, but one was "
                                 f"computed by '{p.op.name}'")
        taken = {id(p) for p in self.params}
        if len({id(p) for p in params}) < len(params) or taken & {id(p) for p in params}:
            raise ValueError(f"{name}: a parameter appears twice (in one group or in two); "
                             f"each parameter may be given once")
        group = {**self.defaults, **param_group, "params": params}
        for key, value in group.items():
            if isinstance(value, (int, float)) and value < 0:
                raise ValueError(f"{name}: {key} must not be negative, got {value}")
        self.check(group)
        self.param_groups.append(group)

    def check(self, group):
        """Raise on a group's hyper-parameters that the update rule cannot use."""

    def zero_grad(self, set_to_none=True):
        """Forget every parameter's gradient (``grad = None``, or zeros if not ``set_to_none``)."""
        for p in self.params:
            p.grad = None if set_to_none or p.grad is None else np.zeros(p.shape, p.dtype)

    def step(self, closure=None):
        """Update every parameter that has a gradient; parameters without one are
        skipped. ``closure``, if given, recomputes the loss (with gradients on) and
        returns it; step returns what it returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self.stepped_grads = [p.grad for p in self.params]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = _grad_values(p, type(self).__name__)
                    grad = -grad if group.get("maximize") else grad
                    p.data = self.update(p.data, grad, self.state[p], group).astype(
                        p.dtype, copy=False)
        return loss

    def update(self, theta, grad, state, group):
        raise NotImplementedError

    # ---- saving and resuming ----------------------------------------------------------
    def state_dict(self):
        """``{'state': {i: {name: array or number}}, 'param_groups': [{..., 'params':
        [i, ...]}]}``, the parameters numbered in group order as in PyTorch; arrays are
        copies. ``tg.save`` can write it."""
        index = {id(p): i for i, p in enumerate(self.params)}
        groups = [{**group, "params": [index[id(p)] for p in group["params"]]}
                  for group in self.param_groups]
        state = {index[id(p)]: {key: np.array(value) if isinstance(value, np.ndarray)
                                else value for key, value in s.items()}
                 for p, s in self.state.items() if s and id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Take the hyper-parameters and the state of ``state_dict`` (from ``state_dict()``
        of an optimizer of the same kind over parameters of the same shapes, in the same
        groups). Nothing changes if it does not fit."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'state' and "
                             f"'param_groups', as optimizer.state_dict() returns")
        groups = state_dict["param_groups"]
        sizes = [len(group["params"]) for group in groups]
        if sizes != [len(group["params"]) for group in self.param_groups]:
            raise ValueError(f"{name}.load_state_dict: the saved optimizer has parameter "
                             f"groups of sizes {sizes}, this one "
                             f"{[len(g['params']) for g in self.param_groups]}")
        by_index = {}
        for saved, group in zip(groups, self.param_groups):
            by_index.update(zip(saved["params"], group["params"]))
        state = defaultdict(dict)
        for i, saved in state_dict["state"].items():
            p = by_index.get(int(i))
            if p is None:
                raise ValueError(f"{name}.load_state_dict: state for parameter {i}, which "
                                 f"no saved group lists")
            state[p] = {key: self._state_value(key, value, p) for key, value in saved.items()}
        self.state = state
        self.param_groups = [{**saved, "params": group["params"]}
                             for saved, group in zip(groups, self.param_groups)]

    def _state_value(self, key, value, p):
        """A saved state entry as the update rule keeps it: a step count an int, a buffer
        an array of the parameter's shape and dtype."""
        value = np.asarray(value)
        if value.ndim == 0 and value.dtype.kind in "iu":
            return int(value)
        if value.shape != p.shape:
            raise ValueError(f"{type(self).__name__}.load_state_dict: '{key}' has shape "
                             f"{value.shape}, but its parameter has shape {p.shape}")
        return value.astype(p.dtype, copy=True)


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``:

        g = grad + weight_decay * theta
        v = g (first step),  then  v = momentum * v + (1 - dampening) * g
        theta = theta - lr * (g + momentum * v if nesterov else v)     (v = g if momentum == 0)
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize))

    def check(self, group):
        if group["nesterov"] and (group["momentum"] == 0 or group["dampening"] != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")

    def update(self, theta, grad, state, group):
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        g = grad + weight_decay * theta if weight_decay else grad
        if momentum:
            v = state.get("momentum_buffer")
            v = g if v is None else momentum * v + (1 - group["dampening"]) * g
            state["momentum_buffer"] = v
            g = g + momentum * v if group["nesterov"] else v
        return theta - group["lr"] * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``: at step t,

        g = grad + weight_decay * theta        (decoupled: theta = theta (1 - lr weight_decay))
        m = beta1 m + (1 - beta1) g,      v = beta2 v + (1 - beta2) g^2
        v_hat = max(v_hat, v) if amsgrad else v
        theta = theta - lr / (1 - beta1^t) * m / (sqrt(v_hat) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def check(self, group):
        betas = group["betas"]
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"{type(self).__name__}: betas must be two numbers in [0, 1), "
                             f"got {betas}")

    def update(self, theta, grad, state, group):
        (beta1, beta2), lr, weight_decay = group["betas"], group["lr"], group["weight_decay"]
        if weight_decay and group["decoupled_weight_decay"]:
            theta = theta * (1 - lr * weight_decay)
        elif weight_decay:
            grad = grad + weight_decay * theta
        t = state["step"] = state.get("step", 0) + 1
        m = state["exp_avg"] = beta1 * state.get("exp_avg", 0.0) + (1 - beta1) * grad
        v = state["exp_avg_sq"] = beta2 * state.get("exp_avg_sq", 0.0) + (1 - beta2) * grad * grad
        if group["amsgrad"]:
            v = state["max_exp_avg_sq"] = np.maximum(state.get("max_exp_avg_sq", 0.0), v)
        denominator = np.sqrt(v) / np.sqrt(1 - beta2 ** t) + group["eps"]
        return theta - lr / (1 - beta1 ** t) * m / denominator


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as
    ``torch.optim.AdamW``: each step first shrinks theta = theta (1 - lr weight_decay),
    then takes Adam's step on the bare gradient (the decay does not pass through m, v)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), as ``torch.optim.RMSprop``:

        g = grad + weight_decay * theta
        s = alpha s + (1 - alpha) g^2,          c = alpha c + (1 - alpha) g  (centered)
        d = sqrt(s - c^2 if centered else s) + eps
        b = momentum b + g / d,  theta = theta - lr b    (theta = theta - lr g / d if momentum == 0)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def update(self, theta, grad, state, group):
        alpha, momentum, weight_decay = group["alpha"], group["momentum"], group["weight_decay"]
        g = grad + weight_decay * theta if weight_decay else grad
        state["step"] = state.get("step", 0) + 1
        s = state["square_avg"] = alpha * state.get("square_avg", 0.0) + (1 - alpha) * g * g
        if group["centered"]:
            c = state["grad_avg"] = alpha * state.get("grad_avg", 0.0) + (1 - alpha) * g
            s = s - c * c
        step = g / (np.sqrt(s) + group["eps"])
        if momentum:
            step = state["momentum_buffer"] = momentum * state.get("momentum_buffer", 0.0) + step
        return theta - group["lr"] * step


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), the optimizer of Karpathy's min-char-rnn, as
    ``torch.optim.Adagrad``: at step t,

        g = grad + weight_decay * theta
        s = s + g^2                                   (s starts at initial_accumulator_value)
        theta = theta - lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)

    Each entry's step shrinks as its squared gradients add up.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def update(self, theta, grad, state, group):
        g = grad + group["weight_decay"] * theta if group["weight_decay"] else grad
        t = state["step"] = state.get("step", 0) + 1
        s = state["sum"] = state.get("sum", group["initial_accumulator_value"]) + g * g
        lr = group["lr"] / (1 + (t - 1) * group["lr_decay"])
        return theta - lr * g / (np.sqrt(s) + group["eps"])


def _warn_if_already_stepped(params, name):
    """Clipping between step() and the next backward changes nothing that step used."""
    ids = {id(p) for p in params}
    for optimizer in list(_optimizers):
        # a backward since the step would have made new gradient arrays
        if any(id(p) in ids and p.grad is not None and p.grad is used
               for p, used in zip(optimizer.params, optimizer.stepped_grads)):
            warnings.warn(
                f"{name} was called after optimizer.step() in the same iteration: the "
                f"step already used the unclipped gradients. Clip between "
                f"loss.backward() and optimizer.step().", stacklevel=3)
            return


def _grad_values(p, name):
    """p.grad as an array: a recorded gradient (``backward(create_graph=True)``) gives
    its values, as PyTorch's updates do; a gradient of another shape than p raises."""
    grad = p.grad.data if isinstance(p.grad, Tensor) else np.asarray(p.grad)
    if grad.shape != p.shape:
        raise ValueError(f"{name}: the gradient of {p.name or 'a parameter'} has shape "
                         f"{grad.shape}, but the parameter has shape {p.shape}")
    return grad


def _set_grad(p, grad):
    """p.grad = grad, keeping the optimizers' note of whether they stepped with it."""
    for optimizer in _optimizers:
        optimizer.stepped_grads = [grad if g is p.grad else g for g in optimizer.stepped_grads]
    p.grad = grad


def clip_grad_norm_(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The norm is taken over every gradient as if concatenated into one vector (p-norm;
    ``norm_type`` may be ``inf``, ``-inf`` or ``'inf'``; as in PyTorch it is the norm of
    the gradients' norms, which for 0 counts the gradients that are not all zero). If
    clip_coef = max_norm / (norm + 1e-6) is below 1 (or NaN), each grad is multiplied
    by it, as ``torch.nn.utils.clip_grad_norm_``: the direction is kept, only the
    length shrinks (Pascanu et al. 2013, against exploding gradients in RNNs). A NaN
    or infinite norm raises with ``error_if_nonfinite``; otherwise it reaches the
    gradients, so the step shows it. Returns the norm before clipping, as a float.
    """
    params = _tensor_list(params, "clip_grad_norm_")
    _warn_if_already_stepped(params, "clip_grad_norm_")
    norm_type = float(norm_type)
    grads = [p for p in params if p.grad is not None]
    values = [_grad_values(p, "clip_grad_norm_").ravel() for p in grads]
    values = [v for v in values if v.size]
    if not values:
        return 0.0
    with np.errstate(divide="ignore"):  # (a negative order over a zero: its norm is 0)
        norms = np.array([np.linalg.norm(v, norm_type) for v in values])
        total = float(np.linalg.norm(norms, norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
            f"{total}, so it cannot be clipped; pass error_if_nonfinite=False to scale "
            f"the gradients by it anyway")
    clip_coef = max_norm / (total + 1e-6)
    if not clip_coef >= 1:  # (NaN too)
        with np.errstate(invalid="ignore"):  # (an infinite entry times 0 is NaN, as in PyTorch)
            for p in grads:
                _set_grad(p, p.grad * np.asarray(clip_coef, dtype=p.grad.dtype))
    return total


def clip_grad_value_(params, clip_value):
    """Clamp every gradient entry into [-clip_value, clip_value]."""
    params = _tensor_list(params, "clip_grad_value_")
    _warn_if_already_stepped(params, "clip_grad_value_")
    for p in params:
        if p.grad is not None:
            grad = np.clip(_grad_values(p, "clip_grad_value_"), -clip_value, clip_value)
            _set_grad(p, Tensor(grad) if isinstance(p.grad, Tensor) else grad)
