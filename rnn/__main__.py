"""``python -m rnn``: for now, a small autodiff demo (the RNN trainer replaces it)."""
import numpy as np

import tinygraph as tg


def main(argv=None):
    rng = np.random.default_rng(0)
    x = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True, name="x")
    W = tg.tensor(rng.standard_normal((4, 5)), requires_grad=True, name="W")
    loss = (x @ W).tanh().sum()
    loss.backward()
    print(f"loss = {loss.item():.6f}")
    print("dL/dW =\n", W.grad)
    tg.gradcheck(lambda x, W: (x @ W).tanh(), [x, W])
    print("gradcheck: backward matches central differences")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
