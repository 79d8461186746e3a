# %% [markdown]
# # 04 · Backpropagation through time
#
# The unrolled graph's gradients equal the hand-derived equations, and `dL/dW_aa` is the
# sum of one contribution per time step.
#
# The hand-derived BPTT (`rnn.bptt`, plain NumPy), from t = T down to 1:
#
#     dL/da<t> = W_ya^T dL/do<t> + W_aa^T dz<t+1>     (the output path + the future)
#     dz<t>    = dL/da<t> * (1 - a<t>^2)               (tanh')
#     dL/dW_aa += dz<t> a<t-1>^T                       (step t's contribution)
#
# rnn's models have no backward code: `loss.backward()` on the unrolled graph must give
# the same numbers, contribution by contribution (recorded with
# `tg.record_contributions`).

# %%
import numpy as np

import rnn
import rnn.bptt
import rnn.viz
import tinygraph as tg
from _notebook import figure, setup
from tinygraph import functional as F

out, quick = setup("Backpropagation through time: the unrolled graph's gradients equal "
                   "the hand-derived equations.")

# %% [markdown]
# An Elman RNN with m = 4 inputs, n = 5 hidden units and p = 4 classes, on T = 6 steps of
# a batch of B = 2 random sequences. `rnn.viz.trace` runs it forward, takes L = the
# summed cross-entropy, and runs `loss.backward()` while recording every contribution
# that reaches a weight; `rnn.bptt.bptt` computes the same by hand.

# %%
tg.manual_seed(0)
m, n, p, T, B = 4, 5, 4, 6, 2
model = rnn.ElmanRNN(m, n, p)
rng = np.random.default_rng(0)
xs = rng.standard_normal((T, B, m))
targets = rng.integers(0, p, size=(T, B))

run = rnn.viz.trace(model, xs, targets)      # L = summed cross-entropy, then backward
graph = run.gradients()
hand = rnn.bptt.bptt(model, xs, targets)
print(f"L = {run.loss.item():.6f} (graph), {hand.loss:.6f} (hand-derived)")

# %% [markdown]
# Every weight's gradient, the norms `‖dL/da<t>‖`, and each step's contribution agree
# with the hand-derived BPTT to rounding.

# %%
for name in rnn.bptt.PARAM_NAMES:
    error = np.abs(getattr(model, name).grad - hand.grads[name]).max()
    print(f"dL/d{name:4s} {str(hand.grads[name].shape):8s} max |graph - hand| = {error:.1e}")
    assert error < 1e-10
state_error = np.abs(graph.state_norms["a<t>"]
                     - np.linalg.norm(hand.dL_da.reshape(T, -1), axis=1)).max()
print(f"‖dL/da<t>‖ for every t: max |graph - hand| = {state_error:.1e}")
mismatch = rnn.bptt.compare(run.contributions, hand, params=model)
print(f"rnn.bptt.compare, step by step from t = T back to 1: "
      f"{'every step agrees' if mismatch is None else mismatch}")
assert mismatch is None

# %% [markdown]
# `dL/dW_aa = Σ_t dz<t> a<t-1>^T`: the engine's fan-in adds up one contribution per
# step, because the same `W_aa` tensor is used at every step.

# %%
print("\nstep t's contribution to dL/dW_aa (dz<t> a<t-1>^T):")
print("   t   ‖graph‖     ‖hand‖      max |difference|")
for t in range(1, T + 1):
    ours, theirs = graph.contributions["W_aa"][t - 1], hand.per_step["W_aa"][t - 1]
    print(f"  {t:2d}   {np.linalg.norm(ours):.4e}  {np.linalg.norm(theirs):.4e}  "
          f"{np.abs(ours - theirs).max():.1e}")
total = graph.contributions["W_aa"].sum(axis=0)
print(f"  sum over t equals W_aa.grad: max difference "
      f"{np.abs(total - model.W_aa.grad).max():.1e}")
print("t = 1 sends nothing: a<0> = 0, so dz<1> a<0>^T = 0")

# %% [markdown]
# The unrolled graph: time steps left to right, each shared weight drawn once with its
# `dL/dW = Σ_t` rows, and `‖dL/da<t>‖` at every step.

# %%
print("the figure: each shared weight once, its dL/dW = Σ_t rows, ‖dL/da<t>‖ per step")
figure(run.to_dot(), out, "04_bptt")

# %% [markdown]
# ## Step through the backward pass
#
# `tg.viz.explore(loss)` runs `loss.backward()` and returns a page that replays it in the
# engine's own order: at each step the node visited, the gradient that arrived there and
# what it sends on, and the running sum at every weight. Watch `W_aa`'s sum take one
# contribution per time step. (`page.save("backward.html")` writes it as one file.)

# %%
model.zero_grad()                              # the sums start from zero
logits, _ = model(tg.tensor(xs))
page = tg.viz.explore(F.cross_entropy(logits, targets, reduction="sum"),
                      title="BPTT through 6 steps of an Elman RNN")
assert np.allclose(model.W_aa.grad, hand.grads["W_aa"], rtol=0, atol=1e-10)
page
