"""Building blocks for models: Parameter, Module, containers, layers, activations.

A ``Module`` registers every ``Parameter`` and sub-``Module`` assigned to it as an
attribute, in assignment order, so ``named_parameters()`` yields dotted names
(``"layers.0.weight"``) in the same order on every run, and ``state_dict()`` /
``load_state_dict()`` move the weights in and out as plain arrays. Layers are written
with the ops of ``tinygraph.ops`` only: their gradients come from the engine.

Random initial values come from ``tinygraph.random``: seed with ``tg.manual_seed``.
"""
import math
from collections import namedtuple

import numpy as np

from . import functional as F
from . import init, ops
from .engine import ShapeError
from .tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that a Module owns and an optimizer updates.

    It requires grad, and its data is floating point (integer data is converted to
    float64; float32 stays float32). It is updated in place through ``p.data = ...``,
    never replaced, so every graph, optimizer and module holding it stays in step.
    """

    __slots__ = ()

    def __init__(self, data, name=None, requires_grad=True):
        array = np.asarray(data.data if isinstance(data, Tensor) else data)
        if array.dtype.kind != "f":
            array = array.astype(np.float64)
        super().__init__(array, requires_grad=requires_grad, name=name)

    def __repr__(self):
        # Tensor's repr aligns wrapped rows under "Tensor("; realign them.
        text = super().__repr__()[len("Tensor"):]
        return "Parameter" + text.replace("\n" + " " * 7, "\n" + " " * 10)


LoadResult = namedtuple("LoadResult", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of models and layers: subclasses set attributes in ``__init__``
    (after ``super().__init__()``) and compute in ``forward``; ``module(x)`` calls it.

    Parameters and sub-modules are found through attribute assignment, so
    ``self.W_ax = Parameter(...)`` is all it takes to have ``W_ax`` trained, counted,
    saved and loaded. A Parameter assigned without a name is named after the
    attribute, so graph drawings show ``W_ax`` rather than an anonymous tensor.
    """

    def __init__(self):
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        children = self.__dict__.get("_children")
        if children is None:
            raise AttributeError(
                f"cannot set '{name}' on {type(self).__name__} before Module.__init__() "
                f"ran: call super().__init__() first in {type(self).__name__}.__init__")
        if isinstance(value, (Parameter, Module)):
            if isinstance(value, Parameter) and value.name is None:
                value.name = name
            children[name] = value
        elif name in children and value is not None:  # (None unregisters, as in PyTorch)
            kind, expected, hint = (
                ("parameter", "nn.Parameter", "; to change its values, assign its .data")
                if isinstance(children[name], Parameter) else ("child module", "nn.Module", ""))
            raise TypeError(f"cannot assign {type(value).__name__} as {kind} '{name}' of "
                            f"{type(self).__name__} ({expected} or None expected){hint}")
        else:
            children.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._children.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- walking the tree ------------------------------------------------------------
    def _walk(self, prefix=""):
        """(dotted name, Parameter) for every registration, depth first, assignment order."""
        for name, child in self._children.items():
            if isinstance(child, Parameter):
                yield prefix + name, child
            else:
                yield from child._walk(f"{prefix}{name}.")

    def named_parameters(self):
        """(dotted name, Parameter) pairs in assignment order; a Parameter shared by
        several modules appears once, under the first name that reaches it."""
        seen = set()
        for name, p in self._walk():
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def parameters(self):
        """Every Parameter once, in the order of ``named_parameters()``."""
        return (p for _, p in self.named_parameters())

    def modules(self):
        """This module and every sub-module below it, each once, depth first."""
        seen, stack = set(), [self]
        while stack:
            module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield module
            stack.extend(reversed([c for c in module._children.values()
                                   if isinstance(c, Module)]))

    def num_parameters(self):
        """The number of trainable numbers: the sum of every Parameter's size."""
        return sum(p.size for p in self.parameters())

    # ---- training state ----------------------------------------------------------------
    def zero_grad(self):
        """Forget every parameter's gradient (``grad = None``, as PyTorch's default)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode=True):
        """Set ``training`` on this module and all below it (dropout reads it); returns self."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        """``train(False)``: evaluation mode (dropout off); returns self."""
        return self.train(False)

    # ---- weights in and out --------------------------------------------------------------
    def state_dict(self):
        """{dotted name: copy of the parameter's ndarray}, in ``named_parameters()`` order;
        a parameter shared by several modules (tied weights) under each of its names, as
        in PyTorch."""
        return {name: p.data.copy() for name, p in self._walk()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (or tensors) from ``state_dict`` into the parameters of the same name.

        Every entry is checked before any is written: a shape mismatch, a non-numeric
        array, and (when ``strict``) a missing or unexpected key raise a RuntimeError
        that names each offending key (and both shapes), and leave the model as it
        was. Values are converted to each parameter's dtype. Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict into {type(self).__name__} takes a dict of "
                            f"arrays (as state_dict() gives), not {type(state_dict).__name__}")
        own = dict(self._walk())  # (every name of a shared parameter, as state_dict)
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        problems, arrays = [], {}
        for name, p in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            array = np.asarray(value.data if isinstance(value, Tensor) else value)
            if array.dtype.kind not in "fiub":
                problems.append(f"'{name}' holds {array.dtype} data, not numbers")
            elif array.shape != p.shape:
                problems.append(f"size mismatch for '{name}': the state dict has shape "
                                f"{array.shape}, the model's parameter has shape {p.shape}")
            else:
                arrays[name] = array.astype(p.dtype)  # a copy the parameter owns
        if strict:
            problems += [f"missing key '{name}' (shape {own[name].shape})" for name in missing]
            problems += [f"unexpected key '{name}'" for name in unexpected]
        if problems:
            raise RuntimeError(
                f"load_state_dict into {type(self).__name__} failed and changed nothing: "
                + "; ".join(problems))
        for name, array in arrays.items():
            own[name].data = array
        return LoadResult(missing, unexpected)

    # ---- display -----------------------------------------------------------------------
    def summary_notes(self):
        """Footnotes for ``summary()``: override to explain a count (a list of strings)."""
        return []

    def summary(self):
        """The parameter table the course notes compute by hand: name, shape and number
        of entries of every parameter, the total, then the footnotes of every module."""
        rows = [(name, str(p.shape), f"{p.size:,}") for name, p in self.named_parameters()]
        header = ("name", "shape", "count")
        total = ("total", "", f"{self.num_parameters():,}")
        widths = [max(len(row[i]) for row in [header, total, *rows]) for i in range(3)]

        def line(row):
            return f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}"

        rule = "-" * len(line(header))
        lines = [type(self).__name__, line(header), rule, *map(line, rows), rule, line(total)]
        notes = []
        for module in self.modules():
            notes += [note for note in module.summary_notes() if note not in notes]
        lines += [f"* {note}" for note in notes]
        return "\n".join(lines)

    def extra_repr(self):
        """The arguments shown inside ``Name(...)`` by ``repr``; override in layers."""
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        children = [f"({name}): {child!r}" for name, child in self._children.items()
                    if isinstance(child, Module)]
        if not children:
            return head + ")"
        body = "\n".join("  " + child.replace("\n", "\n  ") for child in children)
        return f"{head}\n{body}\n)"


# ---- containers ------------------------------------------------------------------------
class ModuleList(Module):
    """A list of modules, registered under the names "0", "1", ...: their parameters
    belong to the owner (``layers.0.weight``)."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def append(self, module):
        if not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__} holds Modules, not {type(module).__name__}")
        setattr(self, str(len(self)), module)
        return self

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def __len__(self):
        return len(self._children)

    def __iter__(self):
        return iter(list(self._children.values()))

    def __getitem__(self, index):
        items = list(self._children.values())
        return type(self)._of(items[index]) if isinstance(index, slice) else items[index]

    @classmethod
    def _of(cls, modules):
        """A container of this kind holding ``modules`` (what a slice gives)."""
        return cls(modules)


class Sequential(ModuleList):
    """Modules applied one after another: ``Sequential(f, g, h)(x) == h(g(f(x)))``."""

    def __init__(self, *modules):
        super().__init__(modules)

    @classmethod
    def _of(cls, modules):
        return cls(*modules)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


# ---- layers ----------------------------------------------------------------------------
def uniform_parameter(shape, bound, dtype=np.float64):
    """A Parameter of ``shape`` drawn from U(-bound, bound): PyTorch's default start for
    Linear and recurrent layers, with bound = 1/sqrt(fan_in) or 1/sqrt(hidden_size)."""
    return init.uniform_(Parameter(np.empty(shape, dtype=dtype)), -bound, bound)


class Linear(Module):
    """y = x W^T + b, with W (out_features, in_features) and b (out_features,).

    x has shape (..., in_features); y has shape (..., out_features). W and b start as
    PyTorch's do: U(-1/sqrt(in_features), 1/sqrt(in_features)) (kaiming-uniform with
    a = sqrt(5), in PyTorch's words).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float64):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = uniform_parameter((out_features, in_features), bound, dtype)
        self.bias = uniform_parameter((out_features,), bound, dtype) if bias else None

    def forward(self, x):
        x = ops.as_tensor(x)
        if x.shape[-1:] != (self.in_features,):
            raise ShapeError(f"{self!r}: input of shape {x.shape} must end in "
                             f"in_features = {self.in_features}")
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table: ``embedding(indices)`` is ``weight[indices]``, one row per index.

    weight has shape (num_embeddings, embedding_dim), drawn from N(0, 1) as in
    PyTorch; integer indices of any shape S give a result of shape S + (embedding_dim,).
    The gradient reaches only the rows looked up (an index used twice adds twice).
    """

    def __init__(self, num_embeddings, embedding_dim, dtype=np.float64):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = init.normal_(Parameter(np.empty((num_embeddings, embedding_dim), dtype)))

    def forward(self, indices):
        indices = np.asarray(indices.data if isinstance(indices, Tensor) else indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{self!r} looks up integer indices, not {indices.dtype}")
        if indices.size and not (0 <= indices.min() and indices.max() < self.num_embeddings):
            raise IndexError(
                f"{self!r}: indices must lie in [0, {self.num_embeddings}), "
                f"got values from {indices.min()} to {indices.max()}")
        return ops.getitem(self.weight, indices)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class Dropout(Module):
    """Inverted dropout while training (see ``functional.dropout``); identity in eval()."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Tanh(Module):
    """tanh elementwise."""

    def forward(self, x):
        return ops.tanh(x)


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, x):
        return ops.relu(x)


class Sigmoid(Module):
    """1 / (1 + e^-x) elementwise."""

    def forward(self, x):
        return ops.sigmoid(x)


class GELU(Module):
    """x Phi(x) elementwise (see ``functional.gelu``; approximate="tanh" for its other form)."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    """softmax along ``dim`` (default the last axis: PyTorch requires it be given)."""

    def __init__(self, dim=-1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return ops.softmax(x, axis=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """log softmax along ``dim`` (default the last axis)."""

    def forward(self, x):
        return ops.log_softmax(x, axis=self.dim)


class Flatten(Module):
    """x with the axes start_dim..end_dim merged: by default every axis but the batch's,
    (N, C, H, W) -> (N, C H W), the step from convolutions to Linear layers."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return ops.flatten(x, start_dim=self.start_dim, end_dim=self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class LayerNorm(Module):
    """y = (x - mean x) / sqrt(var x + eps) * weight + bias over the last axes, those of
    ``normalized_shape`` (see ``functional.layer_norm``); weight starts at ones and bias
    at zeros, each of ``normalized_shape``, as in PyTorch."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 dtype=np.float64):
        super().__init__()
        self.normalized_shape = (normalized_shape,) if isinstance(
            normalized_shape, (int, np.integer)) else tuple(normalized_shape)
        self.eps = eps
        affine = elementwise_affine
        self.weight = Parameter(np.ones(self.normalized_shape, dtype)) if affine else None
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype)) if affine and bias \
            else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class _ConvNd(Module):
    """What Conv1d and Conv2d share: PyTorch's parameters, shapes and initial values,
    weight (out_channels, in_channels / groups, *kernel_size) and bias (out_channels,),
    both from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_channels / groups
    prod(kernel_size)."""

    n = None  # spatial axes
    function = None  # functional.conv1d or conv2d

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", dtype=np.float64):
        super().__init__()
        if padding_mode != "zeros":
            raise ValueError(f"{type(self).__name__}: only padding_mode='zeros' is "
                             f"supported, not {padding_mode!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: groups ({groups}) must divide "
                             f"in_channels ({in_channels}) and out_channels ({out_channels})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = F._sides(kernel_size, self.n, "kernel_size")
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups = groups
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        self.weight = uniform_parameter((out_channels, in_channels // groups) +
                                        self.kernel_size, 1 / math.sqrt(fan_in), dtype)
        self.bias = uniform_parameter((out_channels,), 1 / math.sqrt(fan_in), dtype) \
            if bias else None

    def forward(self, x):
        return type(self).function(x, self.weight, self.bias, self.stride, self.padding,
                                   self.dilation, self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")


class Conv1d(_ConvNd):
    """out = conv1d(x, weight, bias): x (N, in_channels, L) -> (N, out_channels, L_out)."""

    n, function = 1, F.conv1d


class Conv2d(_ConvNd):
    """out = conv2d(x, weight, bias): x (N, in_channels, H, W) -> (N, out_channels, H_out,
    W_out), with H_out = (H + 2 padding - dilation (kernel - 1) - 1) // stride + 1."""

    n, function = 2, F.conv2d


class MaxPool1d(Module):
    """The largest value of each window (see ``functional.max_pool1d``)."""

    function = F.max_pool1d

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        return type(self).function(x, self.kernel_size, self.stride, self.padding,
                                   self.dilation, self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}")


class MaxPool2d(MaxPool1d):
    """The largest value of each window of (N, C, H, W) (see ``functional.max_pool2d``)."""

    function = F.max_pool2d


class AvgPool1d(Module):
    """The mean of each window (see ``functional.avg_pool1d``)."""

    function = F.avg_pool1d

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return type(self).function(x, self.kernel_size, self.stride, self.padding,
                                   self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(AvgPool1d):
    """The mean of each window of (N, C, H, W) (see ``functional.avg_pool2d``)."""

    function = F.avg_pool2d


class Identity(Module):
    """x itself: a placeholder where a layer is optional."""

    def forward(self, x):
        return x


# ---- losses: the functions of tinygraph.functional, as modules -------------------------
class _Loss(Module):
    """loss(input, target) with the ``reduction`` given at construction."""

    def __init__(self, reduction="mean"):
        super().__init__()
        F._check_reduction(reduction, type(self).__name__)
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """``functional.cross_entropy(logits, targets)``: classes on the last axis, integer targets."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.reduction, self.ignore_index, self.weight)


class NLLLoss(CrossEntropyLoss):
    """``functional.nll_loss(log_probs, targets)``."""

    def forward(self, input, target):
        return F.nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class MSELoss(_Loss):
    """``functional.mse_loss(input, target)``: the squared error per entry."""

    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """``functional.binary_cross_entropy_with_logits(logits, targets)``."""

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)


class BCELoss(_Loss):
    """``functional.binary_cross_entropy(probabilities, targets)``."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, self.reduction)
