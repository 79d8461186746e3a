"""One implementation's step timed against numpy-per-step, step by step in turns.

    python -m benchmarks.alternate IMPL SIZE [--steps N]

Builds IMPL (e.g. tinygraph-layers) and numpy-per-step at SIZE (S, M or L), warms both
up, then runs them in turns, N steps each, and prints the minimum and median ms per
step of each and the median of the per-step ratios. Running the two in turns in one
process keeps the machine's drift out of the ratio; running it in several processes,
taking turns with another checkout, compares two versions of the engine (issue 14's
third session in benchmarks/README.md). Set OPENBLAS_NUM_THREADS=1 for the 1-thread
figures.
"""
import argparse
import statistics
import time

from .impls import BY_NAME
from .workload import SIZES, make_problem


def alternate(impl, size, steps):
    """(impl's seconds per step, numpy-per-step's, ratios), each a list of ``steps``."""
    problem = make_problem(SIZES[size])
    step, reference = BY_NAME[impl].build(problem), BY_NAME["numpy-per-step"].build(problem)
    for _ in range(5):
        step(), reference()
    times, reference_times = [], []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        middle = time.perf_counter()
        reference()
        times.append(middle - start)
        reference_times.append(time.perf_counter() - middle)
    return times, reference_times, [a / b for a, b in zip(times, reference_times)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("impl", choices=sorted(BY_NAME))
    parser.add_argument("size", choices=sorted(SIZES))
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args(argv)
    times, reference_times, ratios = alternate(args.impl, args.size, args.steps)
    print(f"{args.impl} at {args.size}: min {min(times) * 1e3:.3f} ms, median "
          f"{statistics.median(times) * 1e3:.3f} ms; numpy-per-step min "
          f"{min(reference_times) * 1e3:.3f} ms; median ratio {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
