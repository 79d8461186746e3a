# %% [markdown]
# # 07 · Vanishing and exploding gradients: `‖dL/da<t>‖` through time
#
# The loss is read at the last step only, `L = ½‖o<T>‖²`, so whatever reaches `a<t>`
# has come back through T - t copies of the recurrence:
#
#     dL/da<t> = W_aa^T diag(g1'(z<t+1>)) dL/da<t+1>
#
# Each step multiplies by `W_aa^T` and the activation's slope. Here `W_aa = s Q` with Q
# orthogonal, so every singular value of `W_aa` is s: below 1 the gradient shrinks
# geometrically (vanishes), above 1 it can grow geometrically (explodes). tanh's slope
# is at most 1 and shrinks as the units saturate; relu's is 0 or 1.
#
# Clipping (`optim.clip_grad_norm_`) rescales the parameter gradients after backward:
# it tames an exploding update, but cannot bring back a vanished gradient.

# %%
import numpy as np

import rnn
import rnn.viz
import tinygraph as tg
from _notebook import chart, figure, setup
from tinygraph import optim

out, _ = setup("Vanishing and exploding gradients: ‖dL/da<t>‖ through time.")
CLIP = 1.0


def model_with(nonlinearity, scale, n, rng):
    tg.manual_seed(0)
    model = rnn.ElmanRNN(1, n, 1, nonlinearity=nonlinearity, output="identity")
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    model.W_aa.data = scale * Q
    model.b_a.data = np.zeros(n)
    return model


def last_step_loss(logits):
    return 0.5 * (logits[-1] ** 2).sum()


# %% [markdown]
# Four runs: tanh and relu, `s = 0.7` and `s = 2`. For each, `‖dL/da<t>‖` at every
# step, and the parameters' gradient norm before and after clipping at 1.

# %%
n, T = 16, 40     # small enough for --quick as it is
xs = np.random.default_rng(0).standard_normal((T, 1, 1))
series, rows = {}, []
for nonlinearity in ("tanh", "relu"):
    for scale in (0.7, 2.0):
        model = model_with(nonlinearity, scale, n, np.random.default_rng(1))
        g = rnn.viz.gradient_norms(model, xs, loss_fn=last_step_loss)
        norms = g.state_norms["a<t>"]
        params = list(model.parameters())
        before = optim.clip_grad_norm_(params, CLIP)
        after = np.sqrt(sum((p.grad ** 2).sum() for p in params))
        label = f"{nonlinearity}, s = {scale}"
        series[label] = (list(range(1, T + 1)), list(norms))
        rows.append((label, norms[-1], norms[0], norms[0] / norms[-1], before, after))

print(f"‖dL/da<t>‖ for a loss at t = T = {T}, n = {n}, W_aa = s·Q (Q orthogonal)")
print(f"{'':15s} {'‖dL/da<T>‖':>11s} {'‖dL/da<1>‖':>11s} {'ratio 1/T':>10s}   "
      f"{'‖grad‖ unclipped':>16s} {'clipped at ' + str(CLIP):>16s}")
for label, last, first, ratio, before, after in rows:
    print(f"{label:15s} {last:11.3e} {first:11.3e} {ratio:10.2e}   {before:16.3e} "
          f"{after:16.3e}")
print("s < 1: the gradient from the loss fades before it reaches the early steps "
      "(vanishing); clipping does nothing for it.")
print("s > 1: it can grow step by step back in time (exploding); tanh's saturating "
      "slope and relu's dead units hold part of it back. Clipping caps the update's "
      f"norm at {CLIP} and keeps its direction.")
vanishing = next(r for r in rows if r[0] == "tanh, s = 0.7")
exploding = next(r for r in rows if r[0] == "tanh, s = 2.0")
assert vanishing[3] < 1e-2 and exploding[3] > 1e2 and exploding[5] <= CLIP + 1e-6

# %% [markdown]
# The four curves on a log scale.

# %%
chart(series, out / "07_gradient_norms.svg",
      f"‖dL/da<t>‖ through time (loss at t = {T})", "time step t", "‖dL/da<t>‖")


# %% [markdown]
# Two runs unrolled: tanh, n = 4, T = 6, inputs small enough that tanh stays near its
# linear part (slope ~1), so each step back multiplies `‖dL/da‖` by about s.

# %%
def unrolled(name, scale):
    """Trace the run with W_aa = scale Q, print ‖dL/da<t>‖, and draw it."""
    model = model_with("tanh", scale, 4, np.random.default_rng(1))
    run = rnn.viz.trace(model, 0.01 * xs[:6], loss_fn=last_step_loss)
    norms = run.gradients().state_norms["a<t>"]
    print(f"{name} (tanh, s = {scale}, n = 4, T = 6): ‖dL/da<t>‖ for t = 1..6: "
          + " ".join(f"{v:.3e}" for v in norms))
    growing = np.all(np.diff(norms) < 0)      # larger at earlier t: it grows back in time
    shrinking = np.all(np.diff(norms) > 0)    # smaller at earlier t: it fades back in time
    assert growing if name == "exploding" else shrinking, norms
    print(f"  the figure: ‖dL/da<t>‖ {'darkens' if growing else 'fades'} back in time, "
          f"from {norms[-1]:.3e} at t = 6 to {norms[0]:.3e} at t = 1")
    return figure(run.to_dot(), out, f"07_{name}_unrolled")


# %%
unrolled("exploding", 2.0)

# %%
unrolled("vanishing", 0.5)
