# %% [markdown]
# # 10 · A bidirectional RNN: "Teddy Roosevelt" vs "Teddy bears"
#
# The notes' entity example:
#
#     He said, "Teddy Roosevelt was a great President"  -> teddy is part of a name
#     He said, "Teddy bears are on sale"                -> teddy is not
#
# Reading left to right, a tagger at "teddy" has not yet seen the word that decides, so
# on those words it can only guess: 50%. A bidirectional layer also runs right to left,
# and its output at step t is `[a→<t> ; a←<t>]`: `a←<t>` has read "roosevelt" or
# "bears". (That same look ahead is why a bidirectional model must not be used to
# predict the next character: it would read the answer.)

# %%
import numpy as np

import rnn
import rnn.viz
import tinygraph as tg
from _notebook import figure, setup
from rnn import data
from tinygraph import functional as F
from tinygraph import nn, optim
from tinygraph.data import DataLoader

out, quick = setup('A bidirectional RNN on the notes\' entity example: "Teddy Roosevelt" '
                   'vs "Teddy bears".')


# %% [markdown]
# The tagger: `rnn.RNN` with one or two directions, and an output layer on its
# (T, B, D·n) outputs.

# %%
class Tagger(nn.Module):
    """rnn.RNN (one or two directions) and an output layer on its (T, B, D*n) outputs."""

    def __init__(self, m, n, p, bidirectional):
        super().__init__()
        self.recurrent = rnn.RNN(m, n, bidirectional=bidirectional)
        self.output = nn.Linear((2 if bidirectional else 1) * n, p)

    def forward(self, xs):
        out, _ = self.recurrent(xs)
        return self.output(out)


# %% [markdown]
# Training runs as in PyTorch: a fixed set of sentences, shuffled into batches of 32 by
# `tinygraph.data.DataLoader` every epoch. The loader batches along the first axis, so
# the (T, B, V) sentences are stored samples-first and each batch is made time-major
# again with `transpose(1, 0, 2)`.

# %%
epochs = 3 if quick else 8
V, n = len(data.ENTITY_VOCAB), 16
train_xs, train_tags, _ = data.entity(12, 2000, rng=np.random.default_rng(0))
train_set = (np.swapaxes(train_xs, 0, 1), train_tags.T)   # (N, T, V), (N, T)
test_xs, test_tags, ambiguous = data.entity(12, 400, rng=np.random.default_rng(99))
print(f"{int(ambiguous.sum())} ambiguous words (teddy, washington) among "
      f"{ambiguous.size} in the test sentences")
accuracies = {}
for bidirectional in (False, True):
    tg.manual_seed(0)
    model = Tagger(V, n, 2, bidirectional)
    optimizer = optim.Adam(model.parameters(), lr=0.02)
    loader = DataLoader(train_set, batch_size=32, shuffle=True, seed=0)
    for _ in range(epochs):
        for xs, tags in loader:                              # (32, T, V), (32, T)
            loss = F.cross_entropy(model(xs.transpose(1, 0, 2)), tags.data.T)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with tg.no_grad():
        right = model(tg.tensor(test_xs)).data.argmax(-1) == test_tags
    name = "bidirectional " if bidirectional else "unidirectional"
    accuracies[bidirectional] = right[ambiguous].mean()
    print(f"{name}: {model.num_parameters()} parameters; accuracy on every word "
          f"{right.mean():.1%}, on the ambiguous words {right[ambiguous].mean():.1%}")
print("chance on the ambiguous words: 50%. Only the bidirectional model can know.")
assert accuracies[False] < 0.7 and accuracies[True] > 0.95

# %% [markdown]
# The bidirectional layer unrolled over "he said teddy bears": the forward lane runs left
# to right, the reverse lane right to left, and each step's output joins the two.

# %%
words = ["he", "said", "teddy", "bears"]
xs = data.one_hot([data.ENTITY_VOCAB.index(w) for w in words], V)[:, None]
print("the bidirectional graph of 'he said teddy bears': the reverse lane (a←) runs "
      "right to left")
figure(rnn.viz.to_dot(model.recurrent, xs), out, "10_bidirectional")
