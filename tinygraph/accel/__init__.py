"""The accelerator: optional speed machinery beside the core. Nothing here changes a
value or a gradient beyond rounding; the tests compare each piece with the core alone.

- ``scan``: a loop of one step function as one graph node, traced once (through the
  engine's one hook, ``engine.observers``) and replayed on arrays (``scan.py``);
  ``unrolled()`` turns it back into the plain loop.
- ``rowsum``: a weight's gradients from its T uses kept as row blocks and multiplied
  once (``rowsum.py``): linear and matmul registered again, as subclasses of the
  core's ops with that backward.
- ``inplace``: log_softmax registered again, with a first-order backward that works in
  place: two fewer large temporaries at the peak of a language model's backward.

What each piece earns on the benchmarks, and what was measured and cut, is in
benchmarks/README.md.
"""
from . import inplace
from .rowsum import RowSum
from .scan import replays, scan, unrolled
