# %% [markdown]
# # 11 · Truncated BPTT, and where the graph is cut
#
# The whole built-in text is one long sequence (about 5,500 characters, read as 4
# parallel streams). Full BPTT would unroll all of it into one graph before a single
# update. Truncated BPTT cuts it into chunks of K steps: forward K steps, backward,
# update, then carry the hidden state into the next chunk *detached*, so the values
# flow on but the gradient stops at the border, and each graph stays K steps long.

# %%
import math

import numpy as np

import rnn
import rnn.viz
import tinygraph as tg
from _notebook import figure, setup
from rnn import data
from tinygraph import functional as F
from tinygraph import nn, optim

out, quick = setup("Truncated BPTT on a long sequence, and a drawing that shows where "
                   "the graph is cut.")

# %% [markdown]
# Training in chunks of K = 20 steps, the state carried over with `rnn.detach_state`:
# every chunk's graph has the same size, however long the text.

# %%
tg.manual_seed(0)
corpus = data.load_corpus()
V, n, K, B = corpus.vocab_size, 64, 20, 4
model = rnn.ElmanRNN(V, n, V)
optimizer = optim.Adagrad(model.parameters(), lr=0.1)
epochs = 1 if quick else 4
print(f"one sequence of {len(corpus.ids) // B} steps per stream, {B} streams, "
      f"chunks of K = {K}: ln V = {math.log(V):.3f}")
for epoch in range(1, epochs + 1):
    a, losses, sizes = None, [], set()
    for xs, ys in corpus.sequential_batches(K, B):
        logits, _ = model(tg.tensor(xs), a)
        loss = F.cross_entropy(logits, ys)
        sizes.add(tg.graph_stats(loss).nodes)
        optimizer.zero_grad()
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        a = rnn.detach_state(model.last_states[-1])
        losses.append(loss.item())
    print(f"epoch {epoch}: {len(losses)} chunks, mean loss {np.mean(losses):.3f} "
          f"(first chunk {losses[0]:.3f}, last {losses[-1]:.3f}); every graph had "
          f"{sorted(sizes)} nodes, however long the text")
assert np.mean(losses) < math.log(V)

# %% [markdown]
# Forget the detach and the next backward runs into the previous chunk's graph, which
# was freed after its own backward: tinygraph raises `GraphFreedError` and says why.
# (`retain_graph=True` would silence it, and quietly turn truncated BPTT back into full
# BPTT over an ever longer graph.)

# %%
xs, ys = next(corpus.sequential_batches(K, B))
a = None
for _ in range(2):
    logits, _ = model(tg.tensor(xs), a)
    loss = F.cross_entropy(logits, ys)
    try:
        loss.backward()
    except tg.GraphFreedError as err:
        print(f"without the detach, the second backward fails:\n  {str(err)[:200]}...")
    a = model.last_states[-1]          # carried over but NOT detached


# %% [markdown]
# To draw the cuts, an `ElmanRNN` whose state is detached every K steps inside one
# unroll: the gradient `‖dL/da<t>‖` starts afresh after every cut.

# %%
class Truncated(nn.Module):
    """An ElmanRNN whose state is detached every K steps inside one unroll, so a
    single figure shows each cut."""

    def __init__(self, model, K):
        super().__init__()
        self.model, self.K = model, K

    def forward(self, xs):
        a, logits = self.model.initial_state(xs.shape[1]), []
        self.last_states = []      # held, so that the trace can keep dL/da<t>
        for t in range(1, xs.shape[0] + 1):
            with tg.scope(f"t={t}"):
                a = self.model.step(xs[t - 1], a)
                logits.append(self.model.output_layer(a))
            a.name = f"a<{t}>"
            self.last_states.append(a)
            if t % self.K == 0:
                a = a.detach()     # the cut: values carried on, no gradient back
        return tg.stack(logits), a


# %%
xs, ys = corpus.batch(8, 1, rng=0)
run = rnn.viz.trace(Truncated(model, K=4), xs, ys)
g = run.gradients()
print("‖dL/da<t>‖ with a cut every 4 steps (t = 1..8): "
      + " ".join(f"{v:.2g}" for v in g.state_norms["a<t>"]))
print("the figure: the state chain is dashed and grey where it was detached")
figure(run.to_dot(), out, "11_truncated_bptt")
