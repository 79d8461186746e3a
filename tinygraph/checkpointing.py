"""Gradient checkpointing: trade compute for memory by recomputing a forward in backward.

    a_T = tg.checkpoint(segment, a_0, xs)     # as segment(a_0, xs), without its graph

``checkpoint(fn, *args)`` runs ``fn(*args)`` under ``no_grad``, so none of the arrays its
ops would save for backward are kept, and records one node in their place. When the
backward walk reaches that node it runs ``fn(*args)`` again with gradients on, and
backpropagates the arriving gradient through that fresh graph, which is then released.
An unrolled RNN of T steps cut into segments of k steps keeps T/k segment inputs plus
one segment's graph at a time: about 2 sqrt(T) steps' worth for k = sqrt(T), instead of
T (``benchmarks/checkpoint.py`` measures it), for one more forward pass.

Which tensors fn depends on is found out, not declared: during the first run an engine
observer notes every tensor that requires grad and reaches one of fn's ops from outside
(the arguments, and the parameters fn closes over, as PyTorch's reentrant variant gets
through autograd). They are the node's parents, so the gradient reaches each of them,
leaves and computed tensors alike, exactly as in the plain run. Random draws from
tinygraph's generator (dropout) are replayed: the generator's state is put back to where
it was for the recomputation, then restored. (Draws from other generators, e.g. NumPy's
global one, are not.) ``fn`` must compute the same thing when run again: a checkpointed
function that reads a tensor changed in between raises, like any saved array does.

Not supported (each raises): a recorded backward through a checkpoint
(``create_graph=True``); ``fn`` returning something other than a tensor or a tuple of
tensors.
"""
from contextlib import contextmanager

import numpy as np

from . import random
from .engine import Op, enable_grad, is_grad_enabled, no_grad, observing
from .derivatives import grad
from .tensor import Tensor


class _Reads:
    """An engine observer noting the tensors that require grad among ops' inputs: under
    no_grad, exactly those fn's ops read from outside it (nothing made inside requires grad)."""

    def __init__(self):
        self.tensors, self.seen = [], set()

    def forward(self, op, inputs, options, out):
        for t in inputs:
            if t._requires_grad and id(t) not in self.seen:
                self.seen.add(id(t))
                self.tensors.append(t)

    def backward(self, node, grads):
        pass


class Checkpoint(Op):
    """out = fn(*args), flattened and concatenated when fn returns several tensors;
    dL/d(input) = the VJP of a fresh, recorded run of fn, for each tensor fn read.
    It keeps the arrays fn read (alive anyway) so that, as for any saved array, a
    tensor given new data before backward raises instead of being recomputed with."""

    saves_inputs = True

    def forward(self, *arrays, fn, args, value, rng_state):
        self.fn, self.args, self.rng_state = fn, args, rng_state
        return value

    def backward(self, g, out, *inputs):
        if isinstance(g, Tensor):
            raise RuntimeError("checkpoint: a recorded backward (create_graph=True, tg.grad "
                               "of a gradient) cannot pass through tg.checkpoint; call the "
                               "function directly for higher derivatives")
        with enable_grad(), _replaying(self.rng_state), _as_leaves(self.reads):
            outputs = _tensors(self.fn(*self.args))
            pieces = _split(g, [t.shape for t in outputs])
            used = [(t, piece) for t, piece in zip(outputs, pieces) if t.requires_grad]
            if not used:
                return (None,) * len(self.reads)
            grads = grad([t for t, _ in used], self.reads, [piece for _, piece in used],
                         allow_unused=True)
        return tuple(None if g is None else g.data for g in grads)


def checkpoint(fn, *args, preserve_rng_state=True):
    """``fn(*args)`` whose graph is not kept: backward recomputes it (see the module).

    ``fn`` returns a tensor or a tuple of tensors; so does checkpoint, and the gradients
    that reach ``args`` and the parameters fn uses equal those of ``fn(*args)`` itself.
    Outside a gradient (``no_grad``, or nothing fn reads requires grad) it is ``fn(*args)``.
    """
    if not is_grad_enabled():
        return fn(*args)
    rng_state = random.generator().bit_generator.state if preserve_rng_state else None
    with no_grad(), observing(_Reads()) as reads:
        result = fn(*args)
    outputs = _tensors(result)
    if not reads.tensors:
        return result
    value = (outputs[0].data if len(outputs) == 1 else
             np.concatenate([t.data.ravel() for t in outputs]))
    node_out = Checkpoint.apply(*reads.tensors, fn=fn, args=args, value=np.array(value),
                                rng_state=rng_state)
    node_out.op.reads = reads.tensors
    if isinstance(result, Tensor):
        return node_out
    pieces = _split(node_out, [t.shape for t in outputs])
    return type(result)(pieces) if isinstance(result, list) else tuple(pieces)


def _tensors(result):
    """fn's result as a list of tensors, or a TypeError naming what it was."""
    outputs = [result] if isinstance(result, Tensor) else list(result) if isinstance(
        result, (tuple, list)) else None
    if not outputs or not all(isinstance(t, Tensor) for t in outputs):
        raise TypeError(f"checkpoint: the function must return a tensor or a tuple of "
                        f"tensors, not {type(result).__name__}")
    return outputs


def _split(flat, shapes):
    """The pieces of a concatenation of flattened arrays (or tensors), in their shapes."""
    if len(shapes) == 1:
        return [flat]
    pieces, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape, dtype=np.int64))
        pieces.append(flat[start:start + size].reshape(shape))
        start += size
    return pieces


@contextmanager
def _replaying(state):
    """Inside, tinygraph's generator draws what it drew when ``state`` was taken."""
    if state is None:
        yield
        return
    generator = random.generator()
    now = generator.bit_generator.state
    generator.bit_generator.state = state
    try:
        yield
    finally:
        generator.bit_generator.state = now


@contextmanager
def _as_leaves(tensors):
    """Inside, the computed tensors among ``tensors`` count as leaves: the recomputation's
    backward stops at them (handing their gradients to the outer walk) instead of
    walking on into, and releasing, the graph that made them."""
    nodes = [t._node for t in tensors]
    for t in tensors:
        t._node = None
    try:
        yield
    finally:
        for t, node in zip(tensors, nodes):
            t._node = node
