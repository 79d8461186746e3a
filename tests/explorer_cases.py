"""Graphs the explorer tests replay, and an independent record of what backward did."""
import numpy as np

import rnn
import tinygraph as tg
from tinygraph import engine, functional as F, viz


def elman_loss(T=4, m=3, n=4, p=3, seed=0):
    """(loss, model): the notes' Elman RNN over T one-hot inputs, summed cross-entropy."""
    tg.manual_seed(seed)
    model = rnn.ElmanRNN(input_size=m, hidden_size=n, output_size=p)
    rng = np.random.default_rng(seed)
    xs = np.eye(m)[rng.integers(0, m, size=T)][:, None, :]
    targets = rng.integers(0, p, size=(T, 1))
    logits, _ = model(tg.tensor(xs))
    loss = F.cross_entropy(logits.reshape(-1, p), targets.reshape(-1), reduction="sum")
    loss.name = "loss"
    return loss, model


def small_net(rng=None):
    """(loss, leaves): tanh(x @ W + b).sum() with x (3, 4) requiring no grad."""
    rng = rng or np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((3, 4)), name="x")
    W = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True, name="W")
    b = tg.tensor(rng.standard_normal(5), requires_grad=True, name="b")
    loss = ((x @ W) + b).tanh().sum()
    loss.name = "loss"
    return loss, (W, b)


class Visits:
    """An engine observer that writes down each node backward visits, nothing else."""

    def __init__(self):
        self.nodes = []

    def forward(self, op, inputs, options, out):
        pass

    def backward(self, node, grads):
        self.nodes.append(node)


def engine_order(loss):
    """The node ids (the explorer's: ``viz.walk`` order) of the nodes a backward of
    ``loss`` visits, in the order it visits them. Runs one backward(retain_graph=True)
    and puts every .grad back as it was."""
    order, _ = viz.walk([loss])
    ids = {vertex: i for i, vertex in enumerate(order)}
    leaves = [v for v in order if isinstance(v, tg.Tensor)]
    before = [leaf.grad for leaf in leaves]
    visits = Visits()
    with engine.observing(visits):
        loss.backward(retain_graph=True)
    for leaf, grad in zip(leaves, before):
        leaf.grad = grad
    return [ids[node] for node in visits.nodes]


def printed(value, digits):
    """A number as the page prints it at ``digits`` significant digits, read back."""
    return f"{float(value):.{digits}g}"
