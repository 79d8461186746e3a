# %% [markdown]
# # 09 · Three architectures: many-to-one, one-to-many, many-to-many
#
# * **many-to-one**, sentiment: read a whole sentence, answer once from its last state.
#   Negation ("not good") means the answer depends on two words, wherever they are; a
#   GRU layer (`rnn.GRU`) learns it where the plain Elman layer (`rnn.RNN`) does not yet.
# * **one-to-many**, generation: from one input `x<1>` write a whole sequence, each
#   output fed back as the next input. The task: from a digit d, count up by d modulo 10
#   (3 -> 3 6 9 2 5 ...), so the model must remember d from the first step on.
# * **many-to-many**, tagging: one tag per word (is it part of a person's name?).

# %%
import numpy as np

import rnn
import tinygraph as tg
from _notebook import setup
from rnn import data
from tinygraph import functional as F
from tinygraph import nn, optim

out, quick = setup("Three architectures: many-to-one, one-to-many, many-to-many.")
steps = 150 if quick else 400
rng = np.random.default_rng(0)


# %% [markdown]
# One training loop serves all three: Adam, the gradient's norm clipped at 5.

# %%
def train(model, batches, loss_of, steps, lr=0.02):
    optimizer = optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        loss = loss_of(*batches(step))
        optimizer.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    return loss.item()


# %% [markdown]
# ## Many-to-one: sentiment
#
# A recurrent layer read to the end, then one output from its last state,
# `o = W_ya a<T> + b_y`.

# %%
class Classifier(nn.Module):
    """Many-to-one: a recurrent layer read to the end, then o = W_ya a<T> + b_y."""

    def __init__(self, m, n, p, gated):
        super().__init__()
        self.recurrent = rnn.GRU(m, n) if gated else rnn.RNN(m, n)
        self.output = nn.Linear(n, p)

    def forward(self, xs):
        _, h_n = self.recurrent(xs)
        return self.output(h_n[-1])


# %%
V = len(data.SENTIMENT_VOCAB)
test_xs, test_ys = data.sentiment(8, 500, np.random.default_rng(99))
for name in ("ElmanRNN", "GRU"):
    tg.manual_seed(0)
    model = Classifier(V, 24, 2, gated=name == "GRU")
    train(model, lambda s: data.sentiment(8, 32, rng),
          lambda xs, ys: F.cross_entropy(model(tg.tensor(xs)), ys), steps)
    with tg.no_grad():
        accuracy = (model(tg.tensor(test_xs)).data.argmax(-1) == test_ys).mean()
    print(f"many-to-one (sentiment, T = 8), {name}: accuracy {accuracy:.1%} on 500 new "
          f"sentences (chance 50%)")
words = ["the", "run", "was", "not", "good"]
ids = [data.SENTIMENT_VOCAB.index(w) for w in words]
with tg.no_grad():
    p = F.softmax(model(tg.tensor(data.one_hot(ids, V)[:, None]))).data[0, 1]
print(f"  GRU on '{' '.join(words)}': P(positive) = {p:.2f}. The plain Elman cell has "
      f"to carry 'not' through tanh at every later step; the GRU's update gate can "
      f"keep it unchanged")
assert accuracy > 0.9


# %% [markdown]
# ## One-to-many: counting by d
#
# Sequences d, 2d, 3d, ... modulo 10, trained with teacher forcing; then the model
# writes seven digits from the first one alone, each fed back as the next input.

# %%
def counting(B, T, rng):
    """Sequences d, 2d, 3d, ... mod 10 for random d in 1..9: inputs and next digits."""
    d = rng.integers(1, 10, size=B)
    digits = (d[None, :] * np.arange(1, T + 2)[:, None]) % 10      # (T + 1, B)
    return data.one_hot(digits[:-1], 10), digits[1:]


# %%
tg.manual_seed(0)
model = rnn.ElmanRNN(10, 32, 10)
train(model, lambda s: counting(32, 8, rng), lambda xs, ys: F.cross_entropy(
    model(tg.tensor(xs))[0], ys), steps)
correct = 0
for d in range(1, 10):
    written = model.generate(d, 7, temperature=0)
    expected = [(d * k) % 10 for k in range(2, 9)]
    correct += int(list(written) == expected)
    if d in (3, 7):
        print(f"one-to-many: from {d} the model writes {' '.join(map(str, written))} "
              f"(expected {' '.join(map(str, expected))})")
print(f"  {correct} of 9 starting digits give the whole sequence right")
assert correct >= 7

# %% [markdown]
# ## Many-to-many: tagging names
#
# One output per word. "teddy" and "washington" are names or not depending on the next
# word, which a left-to-right model has not read yet.

# %%
tg.manual_seed(0)
V = len(data.ENTITY_VOCAB)
model = rnn.ElmanRNN(V, 24, 2)
train(model, lambda s: data.entity(10, 32, rng=rng)[:2], lambda xs, ys: F.cross_entropy(
    model(tg.tensor(xs))[0], ys), steps)
xs, ys, ambiguous = data.entity(10, 300, rng=np.random.default_rng(99))
with tg.no_grad():
    right = model(tg.tensor(xs))[0].data.argmax(-1) == ys
print(f"many-to-many (tagging, T = 10): accuracy {right.mean():.1%} on every word; on "
      f"'teddy'/'washington' {right[ambiguous].mean():.1%}: reading left to right, the "
      f"word that decides has not come yet (see 10_bidirectional.py)")
assert right[~ambiguous].mean() > 0.95
