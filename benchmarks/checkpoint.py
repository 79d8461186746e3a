"""Peak memory of a training step of an Elman RNN, unrolled plainly and checkpointed.

    python -m benchmarks.checkpoint                  # T = 100, 1,000, 10,000
    python -m benchmarks.checkpoint --T 100 1000     # other lengths

The model is the notes' rnn.ElmanRNN (m = p = 16, n = 32, B = 4), the loss the softmax
cross-entropy summed over the T steps. The sequence is cut into segments of
k = ceil(sqrt(T)) steps; a segment is ``segment(a_prev, xs, targets) -> (loss, a_last)``,
run plainly (one graph of T steps, kept until backward) or through ``tg.checkpoint``
(the graph of one segment at a time, rebuilt during backward). Before measuring, the
two runs' losses and all five gradients are compared (relative error <= 1e-12).

Peak memory is tracemalloc's peak minus its baseline over one training step (forward,
backward, SGD step), as in ``benchmarks/memory.py``: NumPy's buffers and the graph's
Python objects alike. Times are the fastest of three steps (a shared machine makes
them rough). Expected: the plain step grows as T, the checkpointed one as
about 2 sqrt(T) steps' worth (sqrt(T) segment inputs kept, plus one segment's graph),
for a second forward pass.
"""
import argparse
import gc
import math
import time
import tracemalloc

import numpy as np

import rnn
import tinygraph as tg
from tinygraph import functional as F
from tinygraph import optim

B, M, N, P = 4, 16, 32, 16


def make(T, seed=0):
    """(model, xs (T, B, M), targets (T, B)) from a fixed seed."""
    tg.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = rnn.ElmanRNN(M, N, P)
    return model, rng.normal(size=(T, B, M)), rng.integers(0, P, size=(T, B))


def segment_of(model):
    def segment(a_prev, xs, targets):
        """loss = sum over the segment's steps of -log softmax(o<t>)[target], and a<last>."""
        states = rnn.unroll(model, xs, a_prev)
        logits = tg.stack([model.output_layer(a_t) for a_t in states])
        return F.cross_entropy(logits, targets, reduction="sum"), states[-1]
    return segment


def loss(model, xs, targets, checkpointed):
    """The summed loss over all T steps, in segments of ceil(sqrt(T)) steps."""
    T, k = len(xs), math.ceil(math.sqrt(len(xs)))
    segment, a, total = segment_of(model), tg.tensor(np.zeros((B, N))), 0.0
    for start in range(0, T, k):
        args = (a, tg.tensor(xs[start:start + k]), targets[start:start + k])
        segment_loss, a = tg.checkpoint(segment, *args) if checkpointed else segment(*args)
        total = total + segment_loss
    return total


def gradients(model, xs, targets, checkpointed):
    model.zero_grad()
    value = loss(model, xs, targets, checkpointed)
    value.backward()
    return value.item(), {name: p.grad.copy() for name, p in model.named_parameters()}


def check(T):
    """The largest relative difference between the plain and the checkpointed run."""
    model, xs, targets = make(T)
    plain, grads = gradients(model, xs, targets, False)
    ckpt, ckpt_grads = gradients(model, xs, targets, True)
    errors = [abs(plain - ckpt) / abs(plain)] + [
        np.abs(grads[k] - ckpt_grads[k]).max() / np.abs(grads[k]).max() for k in grads]
    return max(errors)


def train_step(model, optimizer, xs, targets, checkpointed):
    optimizer.zero_grad()
    loss(model, xs, targets, checkpointed).backward()
    optimizer.step()


def measure(T, checkpointed):
    """(peak extra bytes, seconds) of one training step: the time the fastest of three
    steps after an unmeasured one (each after a gc.collect()), the memory a fifth's."""
    model, xs, targets = make(T)
    optimizer = optim.SGD(model.parameters(), lr=1e-3)
    train_step(model, optimizer, xs, targets, checkpointed)
    seconds = []
    for _ in range(3):
        gc.collect()
        start = time.perf_counter()
        train_step(model, optimizer, xs, targets, checkpointed)
        seconds.append(time.perf_counter() - start)
    return peak_bytes(model, optimizer, xs, targets, checkpointed), min(seconds)


def peak_bytes(model, optimizer, xs, targets, checkpointed):
    """tracemalloc's peak over one training step, above what was live before it."""
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        train_step(model, optimizer, xs, targets, checkpointed)
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args(argv)
    print(f"Elman RNN, B={B} m={M} n={N} p={P}; segments of ceil(sqrt(T)) steps")
    print("| T | segment k | plain MB | checkpointed MB | plain / checkpointed | "
          "plain s | checkpointed s | grad error |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for T in args.T:
        error = check(T)
        plain, plain_s = measure(T, False)
        ckpt, ckpt_s = measure(T, True)
        print(f"| {T:,} | {math.ceil(math.sqrt(T))} | {plain / 1e6:.2f} | {ckpt / 1e6:.2f} | "
              f"{plain / ckpt:.1f} | {plain_s:.2f} | {ckpt_s:.2f} | {error:.1e} |", flush=True)


if __name__ == "__main__":
    main()
