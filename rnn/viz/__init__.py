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

The package, by job: ``graph`` reads the recorded graph as an unrolled recurrence
(``Unrolled``: steps from the ``tg.scope("t=k")`` labels, states from the names
``rnn.names`` gives, ops on every step at once), ``gradients`` runs and records BPTT
(``trace``, ``Gradients``), ``figure`` lays out the DOT (``to_dot``, ``draw``), and
``explore`` writes the interactive page (``explore(run, "explore.html")``: the backward
pass step by step, time left to right, each weight's Σ_t table, the strips ‖dL/da<t>‖,
a slider over W_aa's spectral radius and the connectivity ‖∂L<t>/∂x<s>‖).

What the figure shows (everything is read off the graph the engine recorded):

* **Time runs left to right**, one cluster per step t = 1..T, in order; inside a
  step x<t> at the bottom, one row per layer and direction above it, the output
  o<t> above them and the loss L = Σ_t L<t> on top. The state chain
  a<0> -> a<1> -> ... -> a<T> is heavy; a reverse direction's arrows point back.
* ``detail="cell"`` (the default) draws one node per cell application, titled with
  its formula in the notes' names (a<t> = tanh(W_ax x<t> + W_aa a<t-1> + b_a), or
  the LSTM / GRU cell with its gates) and each state's ‖dL/da<t>‖ (and ‖dL/dc<t>‖);
  ``detail="ops"`` draws every primitive op, each step's lanes in dashed boxes.
* **Shared weights are drawn once**, beside the steps with the legend, each in its
  own colour, with "used at t = ..." and dL/dW = Σ_t dL/dW^(t), one row per step.
  How a step shows its use (``shared=``): ``"proxy"`` (the default) a slice W^(t)
  in the weight's colour inside the step, shaded by ‖dL/dW^(t)‖; ``"once"`` an edge
  from the weight's row t to the step; ``"auto"`` "once" up to 20 drawn steps. A
  layer's input projection of the whole sequence and a head on the stacked outputs
  are drawn as their per-step rows, so their weights too have one use per step.
* **Shares add up**: step t's share of a weight's gradient is the projection
  <dW^(t), dW> / ‖dW‖², so a weight's shares sum to 100% (a negative one pulls
  against the rest); the legend says so.
* **Long sequences are elided**: above 20 steps only the first and last ``keep``
  steps are drawn, with a "t = 6 ... 195" cluster between them.
* **Truncated BPTT**: where the hidden state was detached (a state carried over
  from the previous chunk, or ``detach()`` inside the unroll), the chain edge is
  dashed and grey.
* **Size**: a figure larger than 2,000 px on its longer side (at 96 dpi) is scaled
  down to it; a 2-layer bidirectional LSTM at T = 4 lays out at about 2,500 px wide.

Node ids and clusters come from the graph's order, never from ``id()``: the same
program gives the same DOT, byte for byte. Building the DOT never recurses.
"""
from tinygraph.viz import render

from .explore import explore
from .figure import CUT_COLOR, draw, to_dot
from .gradients import Gradients, Trace, gradient_norms, trace
from .graph import Unrolled, step_key

__all__ = ["trace", "Trace", "Gradients", "gradient_norms", "to_dot", "draw", "render",
           "explore", "Unrolled", "step_key"]
