"""Proof that models built from nn, functional and optim train: two interleaved spirals
(a task no linear model can solve) and XOR, each to 100% training accuracy."""
import numpy as np

import tinygraph as tg
from tinygraph import functional as F
from tinygraph import nn, optim


def two_spirals(n_per_class, turns=2.0):
    """Points on two spiral arms, the second turned by half a circle: x (2n, 2), labels (2n,)."""
    radius = np.linspace(0.1, 1.0, n_per_class)
    points, labels = [], []
    for label in (0, 1):
        angle = 2 * np.pi * turns * radius + label * np.pi
        points.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(n_per_class, label))
    return np.concatenate(points), np.concatenate(labels)


def mlp(sizes):
    """Linear layers of the given widths with tanh between them."""
    layers = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.Tanh()]
    return nn.Sequential(*layers[:-1])


def train_spirals(seed, max_steps=1000):
    """Full-batch Adam on cross-entropy until every point is classified; returns
    (steps taken, final accuracy, model)."""
    tg.manual_seed(seed)
    x, labels = two_spirals(100)
    model = mlp([2, 32, 32, 2])
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    for step in range(1, max_steps + 1):
        optimizer.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, labels).backward()
        accuracy = (logits.data.argmax(axis=1) == labels).mean()
        if accuracy == 1.0:
            break
        optimizer.step()
    return step, accuracy, model


def test_mlp_learns_two_interleaved_spirals_perfectly():
    steps, accuracy, _ = train_spirals(seed=0)
    assert accuracy == 1.0, f"accuracy {accuracy} after {steps} steps"


def test_training_is_reproducible_under_manual_seed():
    first, second = train_spirals(seed=3, max_steps=20), train_spirals(seed=3, max_steps=20)
    assert first[0] == second[0]
    for (name, a), b in zip(first[2].state_dict().items(), second[2].state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_mlp_learns_xor_with_sgd_momentum_and_logit_bce():
    tg.manual_seed(0)
    x = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([[0.0], [1.0], [1.0], [0.0]])
    model = mlp([2, 8, 1])
    optimizer = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(300):
        optimizer.zero_grad()
        logits = model(x)
        F.binary_cross_entropy_with_logits(logits, y).backward()
        optimizer.step()
    np.testing.assert_array_equal(model(x).data > 0, y == 1)
