"""What a graph costs: how many nodes it has, and how much memory it keeps alive.

    >>> stats = tg.graph_stats(loss)
    >>> print(stats)        # nodes, leaves, saved arrays and their bytes, depth

BPTT keeps every step's activations until backward, so an unrolled network's saved
bytes grow with T; and a Python list that keeps ``loss`` tensors keeps their whole
graphs alive. This makes both visible.
"""
from dataclasses import dataclass

import numpy as np

from .engine import Op, toposort


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
        for array in _arrays(getattr(node, "saved", None)):
            owner = array
            while isinstance(owner.base, np.ndarray):
                owner = owner.base
            memory[id(owner)] = owner.nbytes
    return GraphStats(len(nodes), len(leaves), len(memory), sum(memory.values()),
                      _depth(root.op))


def _arrays(saved):
    """The arrays in a node's ``saved``, and in the ``saved`` of op instances it keeps
    (a ``scan`` node keeps every step's ops), without recursion."""
    stack = [saved]
    while stack:
        item = stack.pop()
        if isinstance(item, np.ndarray):
            yield item
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, Op):
            stack.append(item.saved)


def _depth(root):
    """Longest chain of op nodes ending at ``root``, without recursion."""
    depth = {}
    for node in reversed(toposort(root)):
        if isinstance(node, Op):
            depth[node] = 1 + max((depth[p] for p in node.parents if isinstance(p, Op)),
                                  default=0)
    return depth[root]


def _human(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
