# %% [markdown]
# # 05 · The stacked form
#
# One matrix `W_a = [W_aa | W_ax]` on the stacked vector `[a<t-1>; x<t>]` computes
# exactly what the two separate matmuls compute.
#
#     a<t> = tanh(W_aa a<t-1> + W_ax x<t> + b_a)              two matmuls
#          = tanh([W_aa | W_ax] [a<t-1>; x<t>] + b_a)          one matmul
#
# `W_a` is (n, n + m): its first n columns multiply `a<t-1>`, the last m multiply
# `x<t>`. `rnn.RNNCell(stacked=True)` builds `W_a` from the same two parameters at every
# step, so the gradients land on `W_aa` and `W_ax` as before.

# %%
import numpy as np

import rnn
import tinygraph as tg
from _notebook import figure, setup

out, quick = setup("The stacked form: W_a = [W_aa | W_ax] on [a<t-1>; x<t>] computes what "
                   "the two matmuls compute.")

# %% [markdown]
# Two cells with the same `W_ax`, `W_aa`, `b_a`: one separate, one stacked. First one
# step in NumPy.

# %%
tg.manual_seed(0)
m, n, T, B = 3, 4, 5, 2
separate = rnn.RNNCell(m, n)
stacked = rnn.RNNCell(m, n, stacked=True)
stacked.load_state_dict(separate.state_dict())     # the same W_ax, W_aa, b_a

W_a = np.concatenate([separate.W_aa.data, separate.W_ax.data], axis=1)
print(f"W_aa {separate.W_aa.shape} | W_ax {separate.W_ax.shape} -> W_a {W_a.shape}")
rng = np.random.default_rng(0)
x_t, a_prev = rng.standard_normal((B, m)), rng.standard_normal((B, n))
by_hand = np.tanh(np.concatenate([a_prev, x_t], axis=1) @ W_a.T + separate.b_a.data)
two = np.tanh(x_t @ separate.W_ax.data.T + a_prev @ separate.W_aa.data.T
              + separate.b_a.data)
print(f"one step in NumPy: [a; x] {np.concatenate([a_prev, x_t], 1).shape} times "
      f"W_a^T; max |stacked - separate| = {np.abs(by_hand - two).max():.1e}")

# %% [markdown]
# Unrolled over T = 5 steps: the same states, and the same gradients on `W_ax`, `W_aa`,
# `b_a`.

# %%
xs = tg.tensor(rng.standard_normal((T, B, m)))
results = {}
for name, cell in (("separate", separate), ("stacked", stacked)):
    states = rnn.unroll(cell, xs)
    loss = (tg.stack(states) ** 2).sum()
    loss.backward()
    results[name] = (np.stack([a.data for a in states]),
                     {k: p.grad for k, p in cell.named_parameters()})
(a_sep, g_sep), (a_stk, g_stk) = results["separate"], results["stacked"]
print(f"unrolled over T = {T}: max |a<t> stacked - separate| = "
      f"{np.abs(a_stk - a_sep).max():.1e}")
for name in g_sep:
    error = np.abs(g_stk[name] - g_sep[name]).max()
    print(f"  dL/d{name:4s} {str(g_sep[name].shape):7s} max difference {error:.1e}")
    assert error < 1e-12
assert np.abs(a_stk - a_sep).max() < 1e-12

# %% [markdown]
# The stacked step's graph: `W_a = concat(W_aa | W_ax)`, `[a<t-1>; x<t>]`, one matmul,
# tanh.

# %%
# a<t-1> requires grad, as the state from the previous step does in an unroll
# (BPTT passes dL/da<t-1> back to it), so that the step records its concat with
# x<t> and the figure keeps both names (a concat of constants is a constant)
x = tg.tensor(x_t, name="x<t>")
a = tg.tensor(a_prev, requires_grad=True, name="a<t-1>")
step = stacked(x, a)
step.name = "a<t>"
dot = tg.viz.to_dot(step)
assert all(f"<B>{tg.viz.escape(name)}</B>" in dot.source
           for name in ("x<t>", "a<t-1>", "a<t>", "W_aa", "W_ax", "b_a"))
print("the stacked step's graph: W_a = concat(W_aa | W_ax), [a<t-1>; x<t>] = "
      "concat(a<t-1>, x<t>), one matmul, tanh: every name kept")
figure(dot, out, "05_stacked_form")
