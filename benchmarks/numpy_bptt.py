"""Hand-written BPTT in plain NumPy: the floor an autodiff engine on NumPy is measured
against. Both functions take the weights ``params`` {name: array}, inputs ``xs``
(T, B, m) and integer ``targets`` (T, B), and return ``(loss, grads)``.

The equations, in batch rows (see ``rnn/bptt.py`` for their derivation):

    forward   z<t> = x<t> W_ax^T + a<t-1> W_aa^T + b_a,  a<t> = tanh(z<t>)
              o<t> = a<t> W_ya^T + b_y,  y^<t> = softmax(o<t>)
    backward  do<t> = y^<t> - onehot(y<t>)
              da<t> = do<t> W_ya + dz<t+1> W_aa,  dz<t> = (1 - a<t>^2) * da<t>
              dW_ax = sum_t dz<t>^T x<t>,  dW_aa = sum_t dz<t>^T a<t-1>,  db_a = sum_t dz<t>
              dW_ya = sum_t do<t>^T a<t>,  db_y = sum_t do<t>

``per_step`` is min-char-rnn's loop with batch rows: every step does its own small
matmuls and adds its own contribution to each weight gradient. ``batched`` does what
only the recurrence forces to be sequential step by step; the input projection, the
output layer, softmax and every weight-gradient sum run once over all T*B rows.
"""
import numpy as np


def _softmax_rows(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def per_step(params, xs, targets):
    """Loss and gradients by a per-time-step forward and backward loop."""
    W_ax, W_aa, b_a, W_ya, b_y = (params[k] for k in ("W_ax", "W_aa", "b_a", "W_ya", "b_y"))
    T, B, _ = xs.shape
    rows = np.arange(B)
    a_prev = np.zeros((B, W_aa.shape[0]))
    states, probs, loss = [], [], 0.0
    for t in range(T):
        a_t = np.tanh(xs[t] @ W_ax.T + a_prev @ W_aa.T + b_a)
        y_hat = _softmax_rows(a_t @ W_ya.T + b_y)
        loss -= np.log(y_hat[rows, targets[t]]).sum()
        states.append(a_t)
        probs.append(y_hat)
        a_prev = a_t

    grads = {name: np.zeros_like(value) for name, value in params.items()}
    dz_next = np.zeros_like(a_prev)
    for t in reversed(range(T)):
        do = probs[t]
        do[rows, targets[t]] -= 1.0  # y^ - onehot(y), in place: y^<t> is not needed again
        a_t = states[t]
        a_prev = states[t - 1] if t > 0 else np.zeros_like(a_t)
        grads["W_ya"] += do.T @ a_t
        grads["b_y"] += do.sum(axis=0)
        dz = (1.0 - a_t * a_t) * (do @ W_ya + dz_next @ W_aa)
        grads["W_ax"] += dz.T @ xs[t]
        grads["W_aa"] += dz.T @ a_prev
        grads["b_a"] += dz.sum(axis=0)
        dz_next = dz
    return loss, grads


def batched(params, xs, targets):
    """Loss and gradients with everything but the recurrence batched over time."""
    W_ax, W_aa, b_a, W_ya, b_y = (params[k] for k in ("W_ax", "W_aa", "b_a", "W_ya", "b_y"))
    T, B, m = xs.shape
    n = W_aa.shape[0]
    x_proj = (xs.reshape(T * B, m) @ W_ax.T + b_a).reshape(T, B, n)
    states = np.empty((T, B, n))
    a_prev = np.zeros((B, n))
    for t in range(T):
        a_prev = states[t] = np.tanh(x_proj[t] + a_prev @ W_aa.T)
    flat_states = states.reshape(T * B, n)
    do = _softmax_rows(flat_states @ W_ya.T + b_y)
    picked = (np.arange(T * B), targets.reshape(T * B))
    loss = -np.log(do[picked]).sum()
    do[picked] -= 1.0

    da_out = (do @ W_ya).reshape(T, B, n)
    dz = np.empty((T, B, n))
    dz_next = np.zeros((B, n))
    for t in reversed(range(T)):
        a_t = states[t]
        dz_next = dz[t] = (1.0 - a_t * a_t) * (da_out[t] + dz_next @ W_aa)
    flat_dz = dz.reshape(T * B, n)
    grads = {
        "W_ax": flat_dz.T @ xs.reshape(T * B, m),
        "W_aa": flat_dz[B:].T @ flat_states[:-B],  # a<0> = 0 adds nothing at t = 1
        "b_a": flat_dz.sum(axis=0),
        "W_ya": do.T @ flat_states,
        "b_y": do.sum(axis=0),
    }
    return loss, grads
