# %% [markdown]
# # 12 · Cross-check against PyTorch
#
# The same weights in `torch.nn.RNN` and `rnn.RNN` give the same outputs and the same
# gradients (float64, so the differences are rounding only).
#
# The names map by a rename, no transpose: `weight_ih_l0` -> `l0.W_ax` (the notes'
# `W_ax`, hidden x input), `weight_hh_l0` -> `l0.W_aa`, `bias_ih_l0` -> `l0.b_ax`,
# `bias_hh_l0` -> `l0.b_aa`, and `*_reverse` for the backward direction. PyTorch keeps
# two bias vectors where the notes have one: `b_a = bias_ih + bias_hh`, which the last
# check uses to load `torch.nn.RNN` + `nn.Linear` into the notes' `ElmanRNN`.
#
# Without torch the lesson says so and skips the checks (`pip install -e '.[torch]'`).

# %%
import numpy as np

import rnn
import tinygraph as tg
from _notebook import setup

setup("Cross-check against PyTorch: the same weights in torch.nn.RNN and rnn.RNN give "
      "the same outputs and gradients.")
try:
    import torch
    torch.manual_seed(0)
except ImportError:
    torch = None
    print("torch is not installed: skipping the cross-check "
          "(pip install -e '.[torch]' to run it)")

# %% [markdown]
# Two-layer bidirectional RNN, LSTM and GRU: load torch's `state_dict`, run both on the
# same input, and backpropagate `L = sum(output * grad_out)` through both.

# %%
T, B, m, n = 7, 3, 5, 6
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, m))
grad_out = rng.standard_normal((T, B, 2 * n))     # L = sum(output * grad_out)

if torch is not None:
    for kind in ("RNN", "LSTM", "GRU"):
        reference = getattr(torch.nn, kind)(m, n, num_layers=2, bidirectional=True).double()
        ours = getattr(rnn, kind)(m, n, num_layers=2, bidirectional=True)
        ours.load_torch_state_dict(reference.state_dict())

        x_torch = torch.tensor(x, requires_grad=True)
        out_torch, _ = reference(x_torch)
        (out_torch * torch.tensor(grad_out)).sum().backward()
        x_ours = tg.tensor(x, requires_grad=True)
        out_ours, _ = ours(x_ours)
        (out_ours * grad_out).sum().backward()

        output_error = np.abs(out_ours.data - out_torch.detach().numpy()).max()
        weight_error = max(
            np.abs(ours_p.grad - reference.get_parameter(name).grad.numpy()).max()
            for name, ours_p in zip(ours.to_torch_state_dict(), ours.parameters()))
        input_error = np.abs(x_ours.grad - x_torch.grad.numpy()).max()
        print(f"{kind}(2 layers, bidirectional): max |ours - torch| output "
              f"{output_error:.1e}, weight gradients {weight_error:.1e}, dL/dx "
              f"{input_error:.1e}")
        assert max(output_error, weight_error, input_error) < 1e-10

# %% [markdown]
# The notes' `ElmanRNN` from `torch.nn.RNN` + `nn.Linear`, with `b_a = bias_ih + bias_hh`.

# %%
if torch is not None:
    layer, head = torch.nn.RNN(m, n).double(), torch.nn.Linear(n, 4).double()
    model = rnn.ElmanRNN(m, n, 4)
    sd = {k: v.detach().numpy() for k, v in layer.state_dict().items()}
    model.load_state_dict({"W_ax": sd["weight_ih_l0"], "W_aa": sd["weight_hh_l0"],
                           "b_a": sd["bias_ih_l0"] + sd["bias_hh_l0"],
                           "W_ya": head.weight.detach().numpy(),
                           "b_y": head.bias.detach().numpy()})
    logits, _ = model(tg.tensor(x))
    with torch.no_grad():
        expected = head(layer(torch.tensor(x))[0]).numpy()
    error = np.abs(logits.data - expected).max()
    print(f"ElmanRNN with b_a = bias_ih + bias_hh vs nn.RNN + nn.Linear: max difference "
          f"{error:.1e}; parameters {model.num_parameters()} vs "
          f"{sum(p.numel() for p in (*layer.parameters(), *head.parameters()))}")
    assert error < 1e-12
