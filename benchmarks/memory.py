"""Peak memory of one step of one implementation, measured in a fresh process.

    python -m benchmarks.memory IMPL SIZE      # prints one JSON object

Two figures, both "extra memory": what the step needs on top of what the process held
before it (weights, inputs, the implementation's setup):

- ``traced``: tracemalloc's peak minus its baseline over a step (the second one, so
  one-time caches are warm). NumPy reports its array buffers to tracemalloc, and
  Python objects (graph nodes, tensors) are traced too, so this is the step's own
  footprint. PyTorch's allocator is invisible to tracemalloc: None for torch.
- ``rss``: the growth of the resident set's high-water mark (VmHWM, reset through
  /proc/self/clear_refs) over the first step, before tracemalloc is on. Coarser (pages,
  the allocator's own caching), but it sees every allocator.
"""
import gc
import json
import re
import sys
import tracemalloc

from . import impls, machine
from .workload import SIZES, TINY, make_problem


def _status_kib(key):
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{key}:\s+(\d+) kB", status.read(), re.M).group(1))


def _rss_growth(step):
    """Bytes by which the resident high-water mark rises above the current RSS during
    ``step()``, or None where /proc does not allow resetting it (not Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current RSS
        before = _status_kib("VmRSS")
        step()
        return (_status_kib("VmHWM") - before) * 1024
    except (OSError, AttributeError):
        step()
        return None


def _traced_growth(step):
    """Peak bytes tracemalloc sees during ``step()``, above what was live before it."""
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()


def measure(impl_name, size_name):
    """{'rss': bytes or None, 'traced': bytes or None} for one step of ``impl_name``."""
    impl = impls.BY_NAME[impl_name]
    if impl.requires == "torch":
        machine.pin_torch(1)
    # A step on a tiny problem first, so that one-time costs (BLAS buffers, PyTorch's
    # first-call setup) do not count as this size's memory.
    impl.build(make_problem(TINY))()
    step = impl.build(make_problem(SIZES[size_name]))
    gc.collect()
    rss = _rss_growth(step)  # results are dropped at once: only the peak matters
    traced = None if impl.requires == "torch" else _traced_growth(step)
    return {"rss": rss, "traced": traced}


def main(argv=None):
    impl_name, size_name = argv if argv is not None else sys.argv[1:]
    print(json.dumps(measure(impl_name, size_name)))


if __name__ == "__main__":
    main()
