# %% [markdown]
# # 06 · Why the weights are shared
#
# One `W_aa` tensor, used at all T steps, gets one gradient that is the sum of T
# contributions.
#
# Untie the weights (a separate copy `W_aa^(t)` for each step, all starting equal) and
# each copy's gradient is exactly step t's contribution; the shared `W_aa`'s gradient is
# their sum. Sharing keeps the parameter count independent of T (so one model reads
# sequences of any length) and applies the same rule at every position of the sequence.

# %%
import numpy as np

import rnn
import rnn.viz
import tinygraph as tg
from _notebook import figure, setup
from tinygraph import functional as F

out, quick = setup("Why the weights are shared: one W_aa, used at all T steps, gets the "
                   "sum of T contributions.")

# %% [markdown]
# The shared model: one `W_aa`, used by every step of the unrolled graph. Backward sends
# it one contribution per use.

# %%
tg.manual_seed(0)
m, n, p, T, B = 3, 4, 3, 5, 2
model = rnn.ElmanRNN(m, n, p)
rng = np.random.default_rng(1)
xs = rng.standard_normal((T, B, m))
targets = rng.integers(0, p, size=(T, B))

run = rnn.viz.trace(model, xs, targets)
_, uses = tg.viz.walk([run.loss])
print(f"parameters: {model.num_parameters()} for any T (W_aa alone: {n * n})")
print(f"W_aa is one tensor, used {uses[model.W_aa]} times in the graph of T = {T} steps")
contributions = run.gradients().contributions["W_aa"]
print(f"backward sent it {len(run.contributions[model.W_aa])} contributions, one per use")

# %% [markdown]
# The same forward pass with the weights untied: step t uses its own copy `W_aa^(t)`.


# %%
def untied_loss(model, copies, xs, targets):
    """The same forward pass, but step t uses its own copy W_aa^(t)."""
    a = tg.tensor(np.zeros((xs.shape[1], model.hidden_size)))
    logits = []
    for t, W_aa_t in enumerate(copies):
        a = (xs[t] @ model.W_ax.T + a @ W_aa_t.T + model.b_a).tanh()
        logits.append(model.output_layer(a))
    return F.cross_entropy(tg.stack(logits), targets, reduction="sum")


# %% [markdown]
# Each copy's gradient is the shared weight's contribution from that step, and the
# copies' gradients add up to `W_aa.grad`.

# %%
copies = [tg.tensor(model.W_aa.data.copy(), requires_grad=True, name=f"W_aa^({t})")
          for t in range(1, T + 1)]
untied_loss(model, copies, tg.tensor(xs), targets).backward()
print(f"untied: {T} copies, {T * n * n} numbers for the recurrence instead of {n * n}")
print("   t   ‖contribution to shared W_aa‖   ‖grad of copy W_aa^(t)‖   max |diff|")
for t, copy in enumerate(copies, start=1):
    ours = contributions[t - 1]
    print(f"  {t:2d}   {np.linalg.norm(ours):.6e}                  "
          f"{np.linalg.norm(copy.grad):.6e}              {np.abs(ours - copy.grad).max():.1e}")
    assert np.allclose(ours, copy.grad, atol=1e-12)
total = sum(copy.grad for copy in copies)
print(f"sum of the copies' gradients vs W_aa.grad: max difference "
      f"{np.abs(total - model.W_aa.grad).max():.1e}")
assert np.allclose(total, model.W_aa.grad, atol=1e-12)

# %% [markdown]
# The unrolled graph with each weight drawn once, an edge to every step that uses it,
# and its node listing `dL/dW = Σ_t dL/dW^(t)`.

# %%
print("the figure: each weight drawn once with an edge to every step; its node lists "
      "dL/dW = Σ_t dL/dW^(t)")
figure(run.to_dot(shared="once"), out, "06_shared_weights")
