# %% [markdown]
# # 02 · A small MLP trained with tinygraph's nn and optim: two interleaved spirals
#
#     h = tanh(x W1^T + b1),  h2 = tanh(h W2^T + b2),  logits = h2 W3^T + b3
#     L = cross-entropy(logits, labels), minimised with Adam
#
# No straight line separates the two arms, so the hidden layers have to bend the plane.

# %%
import numpy as np

import tinygraph as tg
from _notebook import figure, setup
from tinygraph import functional as F
from tinygraph import nn, optim

out, quick = setup("A small MLP trained with tinygraph's nn and optim: two interleaved "
                   "spirals.")


# %% [markdown]
# The data: two spiral arms of 100 points each, labelled 0 and 1.

# %%
def spirals(n_per_arm, turns=1.5):
    radius = np.linspace(0.1, 1.0, n_per_arm)
    points, labels = [], []
    for arm in (0, 1):
        angle = 2 * np.pi * turns * radius + arm * np.pi
        points.append(np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1))
        labels.append(np.full(n_per_arm, arm))
    return np.concatenate(points), np.concatenate(labels)


# %% [markdown]
# The network and its training loop, as in PyTorch: forward, loss, `zero_grad`,
# `backward`, `step`.

# %%
tg.manual_seed(0)
x, labels = spirals(100)
model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                      nn.Linear(32, 2))
print(model.summary())
optimizer = optim.Adam(model.parameters(), lr=0.02)
steps = 150 if quick else 400
for step in range(1, steps + 1):
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    accuracy = (logits.data.argmax(axis=1) == labels).mean()
    if step == 1 or step % (steps // 5) == 0:
        print(f"step {step:4d}  loss {loss.item():.4f}  accuracy {accuracy:.1%}")
print(f"chance: loss ln 2 = {np.log(2):.4f}, accuracy 50%; a linear model cannot do "
      f"much better on spirals")
assert accuracy > 0.9, "the MLP should separate the spirals"

# %% [markdown]
# The graph of the loss on 4 points, after backward: three Linear layers, two tanh, and
# every op node's gradient `dL/dv` (the chain rule, step by step back from L).

# %%
with tg.viz.keep_grads() as kept:  # every interior node keeps its dL/dv for the figure
    loss = F.cross_entropy(model(x[:4]), labels[:4])
loss.name = "L"
optimizer.zero_grad()
loss.backward()
assert all(t.grad is not None for t in kept.tensors)
print(f"the graph of the loss on 4 points: three Linear layers, two tanh; each of its "
      f"{len(kept.tensors)} op nodes shows its gradient dL/dv (the chain rule, step by "
      f"step back from L)")
figure(tg.viz.to_dot(loss, grads=True), out, "02_mlp")
