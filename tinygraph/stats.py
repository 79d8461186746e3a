"""What a graph costs: how many nodes it has, and how much memory it keeps alive.

    >>> stats = tg.graph_stats(loss)
    >>> print(stats)        # nodes, leaves, saved arrays and their bytes, depth

BPTT keeps every step's activations until backward, so an unrolled network's saved
bytes grow with T; and a Python list that keeps ``loss`` tensors keeps their whole
graphs alive. This makes both visible.
"""
from dataclasses import dataclass

import numpy as np

from .engine import Op, observing, reachable, unbroadcast


@dataclass(frozen=True)
class GraphStats:
    nodes: int          # op nodes recorded
    leaves: int         # leaf tensors the graph reaches (parameters and inputs)
    saved_arrays: int   # distinct arrays the nodes keep for backward
    saved_bytes: int    # their memory (arrays that share memory counted once)
    depth: int          # op nodes on the longest path from a leaf to the root

    def __str__(self):
        return (f"{self.nodes} nodes, {self.leaves} leaves, depth {self.depth}; "
                f"{self.saved_arrays} saved arrays holding {_human(self.saved_bytes)}")


def graph_stats(root):
    """Count the graph behind ``root`` (a tensor): see ``GraphStats``."""
    if root.op is None:
        return GraphStats(0, 1, 0, 0, 0)
    nodes, leaves = [], set()
    seen, stack = {root.op}, [root.op]
    while stack:
        node = stack.pop()
        nodes.append(node)
        for parent in node.parents:
            if isinstance(parent, Op):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
            else:
                leaves.add(parent)
    memory = {}
    for node in nodes:
        for array in _arrays(node):
            owner = array
            while isinstance(owner.base, np.ndarray):
                owner = owner.base
            memory[id(owner)] = owner.nbytes
    return GraphStats(len(nodes), len(leaves), len(memory), sum(memory.values()),
                      _depth(root.op))


def _arrays(node):
    """The arrays a node keeps for its backward (``saved``, and what its forward kept on
    it: masks, indices), and those of op instances it keeps (a ``scan`` node keeps every
    step's ops), without recursion."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            yield item
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, Op):
            stack.append(getattr(item, "saved", None))
            stack.extend(vars(item).values())


def _depth(root):
    """Longest chain of op nodes ending at ``root``, without recursion."""
    depth = {}
    for node in reversed(reachable([root])[0]):
        depth[node] = 1 + max((depth[p] for p in node.parents if isinstance(p, Op)),
                              default=0)
    return depth[root]


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class _Contributions(dict):
    """An engine observer that keeps each gradient sent to a leaf, per leaf."""

    def forward(self, op, inputs, options, out):
        pass

    def backward(self, node, grads):
        for parent, grad in zip(node.parents, grads):
            if grad is not None and not isinstance(parent, Op):
                grad = getattr(grad, "_data", grad)  # a tensor, in a recorded backward
                if not isinstance(grad, np.ndarray):
                    grad = grad.evaluate()  # a lazy sum (ops.Scatter)
                self.setdefault(parent, []).append((node, unbroadcast(grad, parent.shape,
                                                                      node)))


def record_contributions():
    """Record, during the backward passes run inside the block, every gradient
    contribution that reaches a leaf, one per use.

    Yields a dict ``{leaf tensor: [(node, grad), ...]}`` in the order backward
    produced them; ``node`` is the consumer that sent ``grad`` (its ``scope`` tells
    where in the model it was), and the grads of one leaf sum to what backward added
    to ``leaf.grad``. This is how a drawing shows dL/dW = sum over t of dL/dW^(t).
    """
    return observing(_Contributions())
