"""Optimizers and gradient clipping, with PyTorch's update rules.

An optimizer holds a list of parameters; ``step()`` moves each one that has a
gradient, ``zero_grad()`` forgets the gradients. Updates go through ``p.data = ...``
(never by replacing the Parameter), which bumps the tensor's version, so the engine
can tell when a parameter changed while a graph still needed its old value.

    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optim.clip_grad_norm_(model.parameters(), max_norm=5.0)
        optimizer.step()
"""
import warnings
import weakref

import numpy as np

from .tensor import Tensor

_optimizers = weakref.WeakSet()  # live optimizers, to notice clipping after their step


def _tensor_list(params, name):
    params = [params] if isinstance(params, Tensor) else list(params)
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError(f"{name} takes tensors, not {type(p).__name__}")
    return params


class Optimizer:
    """Base class: keeps the parameters and a state dict per parameter; a subclass
    defines ``update(p, grad, state) -> new data``."""

    def __init__(self, params, **hyperparameters):
        name = type(self).__name__
        self.params = _tensor_list(params, name)
        if not self.params:
            raise ValueError(f"{name} got an empty parameter list")
        for p in self.params:
            if not p.is_leaf:
                raise ValueError(f"{name} can only optimize leaf tensors, but one was "
                                 f"computed by '{p.op.name}'")
        for key, value in hyperparameters.items():
            if value < 0:
                raise ValueError(f"{name}: {key} must not be negative, got {value}")
            setattr(self, key, value)
        self.state = {id(p): {} for p in self.params}
        self.stepped_grads = []  # the gradients the last step() used (not copies)
        _optimizers.add(self)

    def zero_grad(self):
        """Forget every parameter's gradient (``grad = None``)."""
        for p in self.params:
            p.grad = None

    def step(self):
        """Update every parameter that has a gradient; parameters without one are skipped."""
        self.stepped_grads = [p.grad for p in self.params]
        for p in self.params:
            if p.grad is not None:
                p.data = self.update(p.data, p.grad, self.state[id(p)]).astype(p.dtype,
                                                                                copy=False)

    def update(self, theta, grad, state):
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``:

        g = grad + weight_decay * theta
        v = g (first step),  then  v = momentum * v + (1 - dampening) * g
        theta = theta - lr * (g + momentum * v if nesterov else v)     (v = g if momentum == 0)
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay)
        if nesterov and (momentum == 0 or dampening != 0):
            raise ValueError("SGD: nesterov momentum needs momentum > 0 and dampening = 0")
        self.nesterov = nesterov

    def update(self, theta, grad, state):
        g = grad + self.weight_decay * theta if self.weight_decay else grad
        if self.momentum:
            v = state.get("momentum")
            v = g if v is None else self.momentum * v + (1 - self.dampening) * g
            state["momentum"] = v
            g = g + self.momentum * v if self.nesterov else v
        return theta - self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``: at step t,

        g = grad + weight_decay * theta
        m = beta1 m + (1 - beta1) g,      v = beta2 v + (1 - beta2) g^2
        theta = theta - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr=lr, eps=eps, weight_decay=weight_decay)
        if not all(0 <= beta < 1 for beta in betas):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        self.betas = tuple(betas)

    def update(self, theta, grad, state):
        beta1, beta2 = self.betas
        g = grad + self.weight_decay * theta if self.weight_decay else grad
        t = state["step"] = state.get("step", 0) + 1
        m = state["m"] = beta1 * state.get("m", 0.0) + (1 - beta1) * g
        v = state["v"] = beta2 * state.get("v", 0.0) + (1 - beta2) * g * g
        denominator = np.sqrt(v) / np.sqrt(1 - beta2 ** t) + self.eps
        return theta - self.lr / (1 - beta1 ** t) * m / denominator


class Adagrad(Optimizer):
    """Adagrad (Duchi et al. 2011), the optimizer of Karpathy's min-char-rnn, as
    ``torch.optim.Adagrad``: at step t,

        g = grad + weight_decay * theta
        s = s + g^2                                   (s starts at initial_accumulator_value)
        theta = theta - lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)

    Each entry's step shrinks as its squared gradients add up.
    """

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps)

    def update(self, theta, grad, state):
        g = grad + self.weight_decay * theta if self.weight_decay else grad
        t = state["step"] = state.get("step", 0) + 1
        s = state["sum"] = state.get("sum", self.initial_accumulator_value) + g * g
        lr = self.lr / (1 + (t - 1) * self.lr_decay)
        return theta - lr * g / (np.sqrt(s) + self.eps)


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


def _set_grad(p, grad):
    """p.grad = grad, keeping the optimizers' note of whether they stepped with it."""
    for optimizer in _optimizers:
        optimizer.stepped_grads = [grad if g is p.grad else g for g in optimizer.stepped_grads]
    p.grad = grad


def clip_grad_norm_(params, max_norm, norm_type=2.0):
    """Scale all gradients together so that their joint norm is at most ``max_norm``.

    The norm is taken over every gradient as if concatenated into one vector (p-norm,
    ``norm_type`` may be ``inf``). If clip_coef = max_norm / (norm + 1e-6) is below 1,
    each grad is multiplied by it, as ``torch.nn.utils.clip_grad_norm_``: the direction
    is kept, only the length shrinks (Pascanu et al. 2013, against exploding
    gradients in RNNs). Returns the norm before clipping, as a float.
    """
    params = _tensor_list(params, "clip_grad_norm_")
    _warn_if_already_stepped(params, "clip_grad_norm_")
    grads = [p for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if norm_type == np.inf:
        total = max(float(np.max(np.abs(p.grad))) for p in grads)
    else:
        total = float(sum(np.sum(np.abs(p.grad) ** norm_type) for p in grads)
                      ** (1.0 / norm_type))
    clip_coef = max_norm / (total + 1e-6)
    if clip_coef < 1:
        for p in grads:
            _set_grad(p, p.grad * np.asarray(clip_coef, dtype=p.grad.dtype))
    return total


def clip_grad_value_(params, clip_value):
    """Clamp every gradient entry into [-clip_value, clip_value]."""
    params = _tensor_list(params, "clip_grad_value_")
    _warn_if_already_stepped(params, "clip_grad_value_")
    for p in params:
        if p.grad is not None:
            _set_grad(p, np.clip(p.grad, -clip_value, clip_value))
