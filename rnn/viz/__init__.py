"""Draw an unrolled recurrent network, and show where BPTT's gradients come from.

    import numpy as np, rnn
    model = rnn.ElmanRNN(input_size=3, hidden_size=4, output_size=2)
    xs = np.random.randn(6, 1, 3)                        # (T, B, m)
    targets = np.random.randint(0, 2, size=(6, 1))       # (T, B) class indices
    run = rnn.viz.trace(model, xs, targets)   # forward, retain_grad on every a<t>, backward
    run.draw()                                # in Jupyter: the figure (SVG)
    rnn.viz.render(run.to_dot(detail="ops"), "elman.svg")
    g = run.gradients()                       # the same numbers as arrays
    g.state_norms["a<t>"]                     # (T,)  ‖dL/da<t>‖, t = 1..T
    g.contributions["W_aa"]                   # (T, n, n), summing to W_aa.grad
    rnn.viz.draw(model, xs)                   # just the forward graph, no gradients

What the figure shows (everything is read off the graph the engine recorded, using
only the ``tg.scope("t=k")`` labels that ``rnn.unroll`` puts on each step):

* **Time runs left to right**, one cluster per step t = 1..T (inside it one box per
  layer and direction, for stacked and bidirectional layers). The hidden-state
  chain a<0> -> a<1> -> ... -> a<T> is heavy and straight; a reverse direction's
  chain runs right to left.
* ``detail="cell"`` draws one node per cell application (and one for the rest of
  the step, such as the output layer o<t> = W_ya a<t> + b_y); ``detail="ops"``
  draws every primitive op.
* **Shared weights are drawn once**, outside the steps, each in its own colour,
  with an edge to every step that uses it and a "used at t = 1..T" mark.
  ``shared="proxy"`` draws instead a small dashed copy of the weight inside each
  step that uses it (dot needs tens of seconds to lay out one node with a hundred
  long edges); ``"auto"`` switches to proxies above 20 drawn steps. Ops that run
  outside the steps (the loss, a layer's batched input projection) are treated
  the same way.
* **Long sequences are elided**: above 20 steps only the first and last ``keep``
  steps are drawn, with a "t = 6 ... 195" cluster between them.
* **After backward** (a ``trace``): each shared weight's node lists
  dL/dW = sum over t of dL/dW^(t), one row per step with the norm of that step's
  contribution and its share of the summed norms (in ``once`` mode each step's
  edge leaves from its own row), and each step carries ‖dL/da<t>‖, all on one log
  colour scale (``tinygraph.viz.LogScale``), so vanishing and exploding gradients
  show. The chain edges are coloured by the gradient that flows back along them.
* **Truncated BPTT**: where the hidden state was detached (a state carried over
  from the previous chunk, or ``detach()`` inside the unroll), the chain edge is
  dashed and grey.

Node ids and clusters come from the graph's order, never from ``id()``: the same
program gives the same DOT, byte for byte. Building the DOT never recurses.
"""
from tinygraph.viz import render

from .figure import CUT_COLOR, draw, to_dot
from .gradients import Gradients, Trace, gradient_norms, trace
from .graph import Unrolled, step_key

__all__ = ["trace", "Trace", "Gradients", "gradient_norms", "to_dot", "draw", "render",
           "Unrolled", "step_key"]
