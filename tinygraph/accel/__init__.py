"""The accelerator: optional speed machinery beside the core, reached through the
engine's one hook (``engine.observers``). Nothing here changes a value or a gradient
beyond rounding; the tests compare each piece with the core alone.

- ``scan``: a loop of one step function as one graph node, traced once and replayed
  on arrays (``scan.py``); ``unrolled()`` turns it back into the plain loop.
- ``rowsum``: a weight's gradients from its T uses kept as row blocks and multiplied
  once, inside Module calls (``rowsum.py``).

What each piece earns on the benchmarks, and what was measured and cut, is in
benchmarks/README.md.
"""
from .rowsum import lazy_weight_gradients
from .scan import replays, scan, unrolled
