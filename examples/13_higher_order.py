# %% [markdown]
# # 13 · Higher-order derivatives: differentiate the backward pass itself
#
# With `create_graph=True`, `tg.grad` records its backward pass as ops on tensors (every
# op's VJP is written in operations that work on arrays and tensors alike), so the
# gradient it returns is a graph too, and can be differentiated again, as often as we
# like. Three uses: Newton's method, tanh's first four derivatives, and a
# Hessian-vector product.

# %%
import numpy as np

import tinygraph as tg
from _notebook import chart, setup
from tinygraph import functional as F, nn

out, _ = setup("Higher-order derivatives: differentiate the backward pass itself.")


# %% [markdown]
# `derivatives(f, x, order)` gives f and its first derivatives by nested `tg.grad` calls.

# %%
def derivatives(f, x, order):
    """[f(x), f'(x), ..., f^(order)(x)] of an elementwise f, as arrays. The gradient of
    sum(f(x)) is f'(x) entry by entry; create_graph=True records it, so the next
    tg.grad differentiates it again."""
    x = tg.tensor(x, requires_grad=True)
    values = [f(x)]
    for _ in range(order):
        (d,) = tg.grad(values[-1].sum(), x, create_graph=True)
        values.append(d)
    return [v.data for v in values]


# %% [markdown]
# ## 1. Newton's method
#
# x is the log-odds of a coin that came up heads a fraction p of the time; its negative
# log-likelihood per toss is `g(x) = log(1 + e^x) - p x`, minimised at
# `x* = log(p / (1 - p))`. Newton's step `x <- x - g'(x) / g''(x)` takes g' and g'' from
# `tg.grad`, not from a derivation. Near x* the error squares each step:
#
#     e_{k+1} ~ C e_k^2,   C = g'''(x*) / (2 g''(x*)) = (1 - 2p) / 2

# %%
P_HEADS = 0.8


def g(x):
    return tg.softplus(x) - P_HEADS * x


exact = np.log(P_HEADS / (1 - P_HEADS))
print(f"1. Newton's method on g(x) = log(1 + e^x) - {P_HEADS} x, "
      f"minimum at x* = log 4 = {exact:.15f}")
print("    k                x_k    g'(x_k)  error e_k  e_k / e_(k-1)^2")
x, previous = 0.0, None
for k in range(10):
    _, d1, d2 = derivatives(g, x, 2)
    error = x - exact
    ratio = f"{error / previous ** 2:16.3f}" if previous and abs(error) > 1e-13 else ""
    print(f"   {k:2d} {x:18.15f} {d1:10.2e} {error:10.2e} {ratio}".rstrip())
    step = d1 / d2
    if abs(step) < 1e-14:
        break
    x, previous = x - step, error
*_, d2, d3 = derivatives(g, exact, 3)
print(f"   the ratio tends to C = g'''(x*) / (2 g''(x*)) = {d3 / (2 * d2):.3f} "
      f"(= (1 - 2p)/2, g''' by a third tg.grad)")
print(f"   Newton: x = {x:.15f}, |x - log 4| = {abs(x - exact):.1e}")

# %% [markdown]
# ## 2. tanh and its first four derivatives
#
# Four nested `tg.grad` calls, against the closed forms (each from the last by the chain
# rule with `dt/dx = 1 - t^2`, `t = tanh x`).

# %%
CLOSED_FORMS = {  # t = tanh x, s = 1 - t^2
    "d/dx tanh x": ("1 - t^2", lambda t, s: s),
    "d²/dx² tanh x": ("-2t (1 - t^2)", lambda t, s: -2 * t * s),
    "d³/dx³ tanh x": ("(6t^2 - 2)(1 - t^2)", lambda t, s: (6 * t * t - 2) * s),
    "d⁴/dx⁴ tanh x": ("8t (2 - 3t^2)(1 - t^2)", lambda t, s: 8 * t * (2 - 3 * t * t) * s),
}
xs = np.linspace(-3, 3, 241)
values = derivatives(lambda x: x.tanh(), xs, 4)
t = np.tanh(xs)
print("2. tanh and its derivatives by repeated tg.grad(create_graph=True), on "
      f"{xs.size} points in [-3, 3]")
for (name, (formula, closed)), d in zip(CLOSED_FORMS.items(), values[1:]):
    print(f"   {name:13s} = {formula:22s}  max |tg.grad - closed form| = "
          f"{np.abs(d - closed(t, 1 - t * t)).max():.1e}")
labels = ["tanh x", *CLOSED_FORMS]
chart({label: (xs, v) for label, v in zip(labels, values)},
      out / "13_tanh_derivatives.svg", "tanh and its first four derivatives",
      "x", "dᵏ/dxᵏ tanh x", log_y=False)

# %% [markdown]
# ## 3. A Hessian-vector product
#
# For a small MLP's loss `L(θ)`:
#
#     H v = d/dθ (∇L(θ) · v)
#
# one backward pass, recorded, gives `∇L(θ)` as a graph; a second one through that graph
# with v as its incoming gradient gives H v. Checked against central differences of the
# gradient, `(∇L(θ + εv) - ∇L(θ - εv)) / (2ε)`.

# %%
tg.manual_seed(0)
rng = np.random.default_rng(0)
x = tg.tensor(rng.standard_normal((16, 3)))
y = tg.tensor(np.sin(x.data.sum(axis=1, keepdims=True)))
layers = [nn.Linear(3, 8), nn.Linear(8, 1)]
theta = [p.data for layer in layers for p in layer.parameters()]


def loss(W1, b1, W2, b2):
    # the layers' forward, tg.linear(x, W, b) = x W^T + b, on the tensors hvp passes
    return F.mse_loss(tg.linear(tg.linear(x, W1, b1).tanh(), W2, b2), y)


def gradient(params):
    params = [tg.tensor(p, requires_grad=True) for p in params]
    return [g.data for g in tg.grad(loss(*params), params)]


v = [rng.standard_normal(p.shape) for p in theta]
_, Hv = tg.hvp(loss, theta, v)
eps = 1e-5
plus = gradient([p + eps * d for p, d in zip(theta, v)])
minus = gradient([p - eps * d for p, d in zip(theta, v)])
fd = np.concatenate([((a - b) / (2 * eps)).ravel() for a, b in zip(plus, minus)])
hv = np.concatenate([h.data.ravel() for h in Hv])
n = hv.size
print(f"3. H v for an MLP 3 -> 8 (tanh) -> 1 with mean squared error, {n} parameters")
print(f"   |H v| = {np.linalg.norm(hv):.4f}; |H v - central differences| / |H v| = "
      f"{np.linalg.norm(hv - fd) / np.linalg.norm(hv):.1e} (eps = {eps})")
print(f"   H v = d/dθ (∇L · v): one recorded backward gives ∇L as a graph, a second "
      f"through it with v gives H v;\n   the {n} x {n} Hessian is never formed, and "
      f"the cost stays a few gradients' worth however large θ is")
