# %% [markdown]
# # 08 · A character-level language model, with sampling
#
# This project's min-char-rnn. As in Karpathy's min-char-rnn: an Elman RNN (n = 100)
# reads the text 25 characters at a time, predicts each next character (teacher forcing:
# `x<t>` is the true character, the target is `x<t+1>`), loss summed over the 25 steps,
# Adagrad with lr 0.1, and every gradient entry clipped to [-5, 5]. The hidden state is
# carried from one window to the next but detached (truncated BPTT). The gradients come
# from `loss.backward()` on the unrolled graph: no hand-written backward anywhere.

# %%
import math
import time

import rnn
import tinygraph as tg
from _notebook import setup
from rnn import data
from tinygraph import functional as F
from tinygraph import optim

out, quick = setup("A character-level language model with sampling: this project's "
                   "min-char-rnn.")

# %% [markdown]
# An untrained model spreads its bets evenly over the V characters: a loss of T ln V per
# window, the baseline to beat.

# %%
tg.manual_seed(0)
corpus = data.load_corpus()
V, n, T = corpus.vocab_size, 100, 25
steps = 1000 if quick else 4000
model = rnn.ElmanRNN(V, n, V)
optimizer = optim.Adagrad(model.parameters(), lr=0.1)
baseline = T * math.log(V)
print(f"{len(corpus.text)} characters, vocabulary V = {V}; untrained loss per window "
      f"T ln V = {T} ln {V} = {baseline:.2f}")

# %% [markdown]
# Training: forward 25 steps, backward, clip, update; then carry the state on, detached.

# %%
smooth, step, start = baseline, 0, time.perf_counter()
while step < steps:
    a = None                                   # a<0> = 0 at the start of the text
    for xs, ys in corpus.sequential_batches(T, 1):
        logits, _ = model(tg.tensor(xs), a)
        loss = F.cross_entropy(logits, ys, reduction="sum")
        optimizer.zero_grad()
        loss.backward()
        optim.clip_grad_value_(model.parameters(), 5.0)
        optimizer.step()
        a = model.last_states[-1].detach()     # carry the state, cut the graph
        smooth = 0.99 * smooth + 0.01 * loss.item()
        step += 1
        if step == 1 or step % (steps // 6) == 0:
            print(f"step {step:5d}  loss {loss.item():7.2f}  smoothed {smooth:7.2f}")
        if step == steps:
            break
print(f"{steps} steps in {time.perf_counter() - start:.1f}s; smoothed loss "
      f"{smooth:.2f} vs T ln V = {baseline:.2f} ({smooth / T:.3f} vs {math.log(V):.3f} "
      f"per character)")
assert smooth < baseline

# %% [markdown]
# Three samples: temperature 1 (the model's own distribution), 0.5 (sharper), and 0
# (always the most likely character), which tends to loop.

# %%
start_id = corpus.index["T"]
for temperature in (1.0, 0.5, 0.0):
    ids = model.generate(start_id, 120, temperature=temperature, rng=0)
    text = corpus.decode([start_id, *ids]).replace("\n", " ")
    print(f"temperature {temperature}: {text}")
