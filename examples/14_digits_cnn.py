# %% [markdown]
# # 14 · A small convolutional network on real data
#
# scikit-learn's 8x8 handwritten digits:
#
#     x (N, 1, 8, 8) -> conv 3x3, 8 channels -> relu -> max-pool 2x2   (N, 8, 4, 4)
#                    -> conv 3x3, 16 channels -> relu -> max-pool 2x2  (N, 16, 2, 2)
#                    -> flatten (N, 64) -> linear -> logits (N, 10)
#     L = cross-entropy(logits, digit), minimised with Adam on mini-batches
#
# Written as it would be in PyTorch (`nn.Conv2d`, `nn.MaxPool2d`, `nn.Flatten`,
# `nn.CrossEntropyLoss`, `tg.from_numpy`). Each convolution is pad, unfold (im2col: every
# 3x3 window as a row) and one matmul with the weight, so its gradient comes from those
# ops. The 1,797 digits are split 80/20 with a fixed seed; the test accuracy is printed.
# Needs scikit-learn for the data: `pip install scikit-learn` (or
# `pip install -e '.[examples]'`).

# %%
import numpy as np

import tinygraph as tg
from _notebook import setup
from tinygraph import nn, optim

_, quick = setup("A small convolutional network on real data: scikit-learn's 8x8 "
                 "handwritten digits.")


# %% [markdown]
# The data, or a message saying how to get it.

# %%
def load_digits_or_explain():
    """(images (N, 1, 8, 8) scaled to [0, 1], labels (N,)), or None without scikit-learn."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    digits = load_digits()
    return (digits.images[:, None] / 16.0).astype(np.float64), digits.target


data = load_digits_or_explain()
if data is None:
    print("this example needs scikit-learn for its data: pip install scikit-learn "
          "(or pip install -e '.[examples]')")


# %% [markdown]
# The network, as an `nn.Sequential`, and its accuracy on a set of digits.

# %%
def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 10))


def accuracy(model, images, labels):
    with tg.no_grad():
        return (model(tg.from_numpy(images)).argmax(dim=1).data == labels).mean()


# %% [markdown]
# Training on 80% of the digits, in mini-batches of 64; the other 20% it never sees.

# %%
if data is not None:
    images, labels = data
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:len(order) // 5], order[len(order) // 5:]
    tg.manual_seed(0)
    model = cnn()
    print(model.summary())
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(1)
    epochs, batch = (4 if quick else 8), 64
    for epoch in range(1, epochs + 1):
        total, shuffled = 0.0, rng.permutation(train)
        for start in range(0, len(train), batch):
            rows = shuffled[start:start + batch]
            loss = loss_fn(model(tg.from_numpy(images[rows])), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(rows)
        print(f"epoch {epoch}  training loss {total / len(train):.4f}  "
              f"test accuracy {accuracy(model, images[test], labels[test]):.1%}")
    final = accuracy(model, images[test], labels[test])
    print(f"test accuracy: {final:.4f} on {len(test)} digits the network never saw "
          f"(chance: 10%)")
