# %% [markdown]
# # 01 · Autodiff from scratch
#
# Build an expression, call `backward()`, check every gradient entry against central
# differences, and draw the graph the engine recorded.
#
#     L = sum( tanh(x W + b)^2 )        x (3, 4), W (4, 2), b (2,)
#
# Reverse mode visits the graph once, from L back to the leaves, and gives dL/dx, dL/dW
# and dL/db together. Central differences need two evaluations of L per entry:
# `dL/dp ~ (L(p + eps) - L(p - eps)) / (2 eps)`, with an error of order eps^2.

# %%
import numpy as np

import tinygraph as tg
from _notebook import figure, setup

out, _ = setup("Autodiff from scratch: backward(), central differences, and the graph "
               "the engine recorded.")


def loss_of(x, W, b):
    return ((x @ W + b).tanh() ** 2).sum()


# %% [markdown]
# Central differences, entry by entry: perturb in place, evaluate, restore.

# %%
def central_differences(f, p, eps=1e-6):
    """dL/dp entry by entry: perturb p in place, evaluate, restore (never a copy that
    f would not see)."""
    grad = np.zeros_like(p.data)
    for index in np.ndindex(p.shape):
        original = p.data[index]
        p.data[index] = original + eps
        plus = f().item()
        p.data[index] = original - eps
        minus = f().item()
        p.data[index] = original
        grad[index] = (plus - minus) / (2 * eps)
    return grad


# %% [markdown]
# One backward pass gives every gradient; each is checked against central differences.

# %%
rng = np.random.default_rng(0)
x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True, name="x")
W = tg.tensor(rng.standard_normal((4, 2)), requires_grad=True, name="W")
b = tg.tensor(rng.standard_normal(2), requires_grad=True, name="b")

with tg.viz.keep_grads() as kept:  # every interior node keeps its dL/dv for the figure
    loss = loss_of(x, W, b)
loss.name = "L"
loss.backward(retain_graph=True)
print(f"L = {loss.item():.6f}")
for p in (x, W, b):
    # perturb copies: the recorded graph saved x, W and b's arrays for its backward
    q = tg.tensor(p.data.copy(), name=p.name)
    args = [q if r is p else tg.tensor(r.data) for r in (x, W, b)]
    numeric = central_differences(lambda: loss_of(*args), q)
    error = np.abs(numeric - p.grad).max()
    print(f"dL/d{p.name} {p.grad.shape}: max |backward - central difference| = "
          f"{error:.2e}")
    assert error < 1e-7, f"dL/d{p.name} disagrees with central differences"
tg.gradcheck(lambda x, W, b: loss_of(x, W, b), [x, W, b])
print("tg.gradcheck agrees too (float64, eps = 1e-6)")

# %% [markdown]
# The chain rule, node by node: every interior node kept its gradient `dL/dv`.

# %%
interior = [t for t in kept.tensors if t is not loss]
print(f"the chain rule, node by node: every one of the {len(interior)} interior nodes "
      f"holds its gradient dL/dv, e.g. ‖dL/d(x W + b)‖ = "
      f"{np.linalg.norm(interior[1].grad):.4f}")
assert all(t.grad is not None for t in kept.tensors)

# %% [markdown]
# The graph: leaves x, W, b (blue: they require grad), each op once with its gradient,
# edges coloured by the gradient they carry back.

# %%
print("the graph: leaves x, W, b (blue: they require grad), each op once with its "
      "gradient, edges coloured by the gradient they carry back")
figure(tg.viz.to_dot(loss, grads=True), out, "01_autodiff")

# %% [markdown]
# ## Step through the backward pass
#
# The graph was kept (`retain_graph=True`), so `tg.viz.explore(loss)` can run backward
# through it once more and replay it step by step: the node visited, the gradient that
# arrived, what it sends to each parent, and the running sums at x, W and b, which end at
# their `.grad`. (`page.save("backward.html")` writes it as one file.)

# %%
grads = [p.grad for p in (x, W, b)]
x.grad = W.grad = b.grad = None                # so the running sums start from zero
page = tg.viz.explore(loss)
assert all(np.allclose(p.grad, g, rtol=0, atol=1e-12) for p, g in zip((x, W, b), grads))
page
