"""Micro-benchmarks of the engine: what one op costs when the arrays are tiny.

    python -m benchmarks.micro [--ops N] [--repeats R]     # prints one JSON object

- Per-op overhead: a chain of N ops on a 4-element tensor, timed forward (building
  the graph) and backward, divided by N. Two chains: ``tanh`` (y = tanh(y), a unary
  op) and ``mul`` (y = y * w with one shared w that requires grad, so w's gradient
  is the sum of N contributions, the fan-in every RNN weight has). PyTorch runs the
  same chains in the same process when it is installed.
- Unroll: forward and backward of rnn.ElmanRNN over 1,000 time steps at a small
  size (B=1, m=p=8, n=16), where the arrays are small and the engine's own work
  per node is what shows.

Each figure is the median of ``repeats`` runs.
"""
import argparse
import gc
import json
import statistics
import time

import numpy as np

import rnn
import tinygraph as tg
from tinygraph import functional as F

from . import machine
from .workload import Size, make_problem

UNROLL_SIZE = Size("unroll", batch=1, input=8, hidden=16, output=8, steps=1000)


def _timed(function):
    gc.collect()
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _chain_tinygraph(kind, ops):
    x = tg.tensor(np.linspace(0.1, 0.4, 4), requires_grad=True)
    w = tg.tensor(np.full(4, 0.999), requires_grad=True)

    def forward():
        y = x
        if kind == "tanh":
            for _ in range(ops):
                y = tg.tanh(y)
        else:
            for _ in range(ops):
                y = y * w
        return y

    return forward, lambda y: y.backward(np.ones(4))


def _chain_torch(kind, ops):
    import torch
    x = torch.linspace(0.1, 0.4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.full((4,), 0.999, dtype=torch.float64, requires_grad=True)

    def forward():
        y = x
        if kind == "tanh":
            for _ in range(ops):
                y = torch.tanh(y)
        else:
            for _ in range(ops):
                y = y * w
        return y

    return forward, lambda y: y.backward(torch.ones(4, dtype=torch.float64))


def per_op(make_chain, kind, ops, repeats):
    """{'forward', 'backward'}: median seconds per op of a chain of ``ops`` ops."""
    forward, backward = make_chain(kind, ops)
    forward_times, backward_times = [], []
    for _ in range(repeats):
        seconds, y = _timed(forward)
        forward_times.append(seconds / ops)
        seconds, _ = _timed(lambda y=y: backward(y))
        backward_times.append(seconds / ops)
        del y
    return {"forward": statistics.median(forward_times),
            "backward": statistics.median(backward_times)}


def unroll(repeats):
    """{'forward', 'backward'} median seconds, and 'nodes', of the 1,000-step unroll."""
    problem = make_problem(UNROLL_SIZE)
    model = rnn.ElmanRNN(UNROLL_SIZE.input, UNROLL_SIZE.hidden, UNROLL_SIZE.output)
    for name, value in problem.params.items():
        getattr(model, name).data = value.copy()
    xs = tg.tensor(problem.xs)
    forward_times, backward_times, nodes = [], [], None
    for _ in range(repeats):
        model.zero_grad()
        seconds, loss = _timed(lambda: F.cross_entropy(model(xs)[0], problem.targets,
                                                       reduction="sum"))
        forward_times.append(seconds)
        nodes = tg.graph_stats(loss).nodes
        seconds, _ = _timed(loss.backward)
        backward_times.append(seconds)
        del loss
    return {"forward": statistics.median(forward_times),
            "backward": statistics.median(backward_times), "nodes": nodes}


def run(ops=100_000, repeats=3):
    """Every micro-benchmark: {'ops', 'chains': {engine: {kind: per_op}}, 'unroll'}."""
    torch_version = machine.pin_torch(1)
    gc.freeze()  # as in run.py: collections then cost the same with PyTorch loaded or not
    chains = {"tinygraph": {kind: per_op(_chain_tinygraph, kind, ops, repeats)
                            for kind in ("tanh", "mul")}}
    if torch_version is not None:
        chains["torch"] = {kind: per_op(_chain_torch, kind, ops, repeats)
                           for kind in ("tanh", "mul")}
    return {"ops": ops, "chains": chains, "unroll": unroll(repeats)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.ops, args.repeats)))


if __name__ == "__main__":
    main()
