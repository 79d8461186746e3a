# %% [markdown]
# # 03 · One RNN cell, forward, step by step
#
# One step of the notes' RNN, as in the notes, with every shape printed:
#
#     Step 1  inputs:             x<t> (m,) and a<t-1> (n,)
#     Step 2  two matmuls + bias: z<t> = W_ax x<t> + W_aa a<t-1> + b_a         (n,)
#     Step 3  activation:         a<t> = tanh(z<t>)                             (n,)
#     Step 4  pass it on:         a<t> goes to the next step (and to the output)
#     Step 5  output:             o<t> = W_ya a<t> + b_y                        (p,)
#     Step 6  probabilities:      y^<t> = softmax(o<t>), which sums to 1         (p,)
#
# The same five weights serve every step. Here m = 3 (one-hot inputs), n = 5, p = 3,
# and a batch of one sequence: tinygraph keeps the batch as rows, so `x<t>` is (1, m)
# and `W_ax x<t>` is computed as `x<t> W_ax^T`.

# %%
import numpy as np

import rnn
import tinygraph as tg
from _notebook import figure, setup
from tinygraph import functional as F

out, quick = setup("One RNN cell, forward, step by step as in the notes, with every "
                   "shape printed.")

# %% [markdown]
# The model holds the five weights, shaped as in the notes: `W_ax` (n, m), `W_aa` (n, n),
# `b_a` (n,), `W_ya` (p, n), `b_y` (p,).

# %%
tg.manual_seed(0)
m, n, p, T = 3, 5, 3, 3
model = rnn.ElmanRNN(input_size=m, hidden_size=n, output_size=p)
for name, weight in model.named_parameters():
    print(f"{name:5s} {weight.shape}")
ids = [0, 2, 1]
xs = np.eye(m)[ids][:, None, :]                    # (T, B=1, m)

# %% [markdown]
# The loop over time, written out: each step runs the six steps above, under
# `tg.scope("t=...")` so that the drawing puts each step in its own box.

# %%
a_prev = tg.tensor(np.zeros((1, n)), name="a<0>")   # a<0> = 0
for t in range(1, T + 1):
    print(f"t = {t}")
    with tg.scope(f"t={t}"):     # the drawing puts each step in its own box
        x_t = tg.tensor(xs[t - 1], name=f"x<{t}>")
        print(f"  step 1: x<{t}> {x_t.shape} and a<{t - 1}> {a_prev.shape}")
        input_share = x_t @ model.W_ax.T
        state_share = a_prev @ model.W_aa.T
        z_t = input_share + state_share + model.b_a
        print(f"  step 2: W_ax x<{t}> {input_share.shape} + W_aa a<{t - 1}> "
              f"{state_share.shape} + b_a {model.b_a.shape} = z<{t}> {z_t.shape}")
        a_t = z_t.tanh()
        a_t.name = f"a<{t}>"
        print(f"  step 3: a<{t}> = tanh(z<{t}>) {a_t.shape}")
        print(f"  step 4: a<{t}> is passed on to step {t + 1} and to the output layer")
        o_t = a_t @ model.W_ya.T + model.b_y
        o_t.name = f"o<{t}>"
        print(f"  step 5: o<{t}> = W_ya a<{t}> + b_y {o_t.shape}")
        y_hat = F.softmax(o_t)
        y_hat.name = f"y^<{t}>"
        print(f"  step 6: y^<{t}> = softmax(o<{t}>) {y_hat.shape} = "
              f"{np.round(y_hat.data[0], 4)}, summing to {y_hat.data.sum():.6f}")
    a_prev = a_t

# %% [markdown]
# `rnn.ElmanRNN` runs the same loop; its prediction at the last step is the one above.

# %%
probs = model.predict(tg.tensor(xs))
error = np.abs(probs.data[-1] - y_hat.data).max()
print(f"rnn.ElmanRNN.predict gives the same y^<{T}> (max difference {error:.1e})")
assert error < 1e-12

# %% [markdown]
# The graph the engine recorded for `y^<3>`: one box per step, and each of the five
# weights used by every step.

# %%
print(f"the graph of y^<{T}>: the three steps, each reusing W_ax, W_aa, b_a, W_ya, b_y")
figure(tg.viz.to_dot(y_hat, rankdir="LR"), out, "03_rnn_cell")
