"""The one command: time every implementation, measure memory and per-op overhead, and
print the table (the full run also writes it to benchmarks/results.md).

    python -m benchmarks.run              # full run: S, M, L; 1 and 2 BLAS threads
    python -m benchmarks.run --quick      # S and M, 1 thread, fewer repeats; prints only
    python -m benchmarks.run --profile tinygraph-unroll --size L    # where the time goes

Every measurement runs in a child process whose BLAS is pinned through its
environment before NumPy loads (see ``machine.py``). Inside a timing process the
implementations take turns, one step each per round, in an order that rotates from
round to round, so that drift of a shared machine hits them all alike; each one's
gradients are checked against the hand-written reference first, and one that
disagrees is reported and not timed.
"""
import argparse
import cProfile
import gc
import json
import os
import pstats
import statistics
import subprocess
import sys
import time

from . import impls, machine
from .workload import SIZES, make_problem

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results.md")
MB = 1e6


class Plan:
    """How long to time each size, how many threads, what else to measure."""

    def __init__(self, quick):
        self.sizes = ["S", "M"] if quick else ["S", "M", "L"]
        self.threads = [1] if quick else [1, 2]
        # seconds per size, and the least and most rounds, per thread count
        self.budget = {"S": 2, "M": 4, "L": 10} if quick else {"S": 6, "M": 12, "L": 35}
        self.min_rounds = 3 if quick else 5
        self.max_rounds = {"S": 200, "M": 60, "L": 25}
        self.memory_sizes = self.sizes
        self.micro_ops = 20_000 if quick else 100_000


# ---- child processes --------------------------------------------------------------------------
def _child(module_args, threads):
    """Run ``python -m <module_args>`` pinned to ``threads``; its last stdout line as JSON."""
    completed = subprocess.run([sys.executable, "-m", *module_args], cwd=ROOT,
                               env=machine.pinned_env(threads), stdout=subprocess.PIPE,
                               text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _say(message):
    print(message, file=sys.stderr, flush=True)


# ---- timing (runs in a pinned child) ----------------------------------------------------------
def time_size(size_name, budget, min_rounds, max_rounds):
    """Round-robin timing of every available implementation at one size.

    Returns {'times': {name: [seconds per round]}, 'errors': {name: max relative
    error}, 'failed': {name: message}}; the lists of one size are aligned by round.
    """
    problem = make_problem(SIZES[size_name])
    reference = impls.REFERENCE.build(problem)()
    steps, errors, failed = {}, {}, {}
    for impl in impls.IMPLEMENTATIONS:
        if not impl.available():
            continue
        step = impl.build(problem)
        try:
            errors[impl.name] = max(impls.check_gradients(impl.name, step(), reference).values())
        except impls.GradientMismatch as mismatch:
            failed[impl.name] = str(mismatch)
            continue
        steps[impl.name] = step
    # Everything alive now (modules, PyTorch's import) is moved out of the collector's
    # sight, so that the collections below and inside the steps cost the same for
    # every implementation whether or not PyTorch happens to be loaded.
    gc.collect()
    gc.freeze()
    times = {name: [] for name in steps}
    order = list(steps)
    started, rounds = time.perf_counter(), 0
    while rounds < min_rounds or (rounds < max_rounds
                                  and time.perf_counter() - started < budget):
        for name in order[rounds % len(order):] + order[:rounds % len(order)]:
            gc.collect()  # the previous step's garbage is not this one's cost
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
        rounds += 1
    gc.unfreeze()
    return {"times": times, "errors": errors, "failed": failed}


def timing_worker(sizes, budgets, min_rounds, max_rounds, threads):
    torch_version = machine.pin_torch(threads)
    result = {"blas": machine.blas_runtime(), "torch_threads": None, "sizes": {}}
    if torch_version is not None:
        import torch
        result["torch_threads"] = torch.get_num_threads()
    for size_name in sizes:
        _say(f"  timing {SIZES[size_name]} ({threads} thread{'s' * (threads > 1)})")
        result["sizes"][size_name] = time_size(size_name, budgets[size_name], min_rounds,
                                               max_rounds[size_name])
    return result


def profile_worker(impl_name, size_name, steps, top):
    """Print where ``steps`` steps of one implementation spend their time (cProfile)."""
    machine.pin_torch(1)
    problem = make_problem(SIZES[size_name])
    step = impls.BY_NAME[impl_name].build(problem)
    impls.check_gradients(impl_name, step(), impls.REFERENCE.build(problem)())
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(steps):
        step()
    profiler.disable()
    print(f"{impl_name} at {SIZES[size_name]}: {steps} steps under cProfile "
          f"(1 thread; cProfile's own overhead inflates per-call costs)")
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# ---- the report -------------------------------------------------------------------------------
def paired_ratio(times, name, reference):
    """Median over rounds of this round's time over the reference's in the same round."""
    if reference not in times:
        return None
    return statistics.median(t / r for t, r in zip(times[name], times[reference]))


def _ratio(value):
    return "n/a" if value is None else f"{value:.2f}x"


def timing_table(run):
    lines = ["| size | implementation | median ms | min ms | x per-step | x batched | rounds "
             "| grad error |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for size_name, result in run["sizes"].items():
        times = result["times"]
        for name in times:
            lines.append(
                f"| {size_name} | {name} | {1e3 * statistics.median(times[name]):.2f} | "
                f"{1e3 * min(times[name]):.2f} | "
                f"{_ratio(paired_ratio(times, name, 'numpy-per-step'))} | "
                f"{_ratio(paired_ratio(times, name, 'numpy-batched'))} | {len(times[name])} | "
                f"{result['errors'][name]:.1e} |")
        for name, message in result["failed"].items():
            lines.append(f"| {size_name} | {name} | gradient check FAILED: {message} "
                         f"| | | | | |")
    return lines


def _megabytes(value):
    return "n/a" if value is None else f"{value / MB:.1f}"


def memory_table(memory):
    lines = ["| size | implementation | extra MB (tracemalloc) | x per-step | RSS growth MB |",
             "| --- | --- | ---: | ---: | ---: |"]
    for (name, size_name), figures in memory.items():
        reference = memory.get(("numpy-per-step", size_name), {}).get("traced")
        traced = figures["traced"]
        ratio = traced / reference if traced is not None and reference else None
        lines.append(f"| {size_name} | {name} | {_megabytes(traced)} | {_ratio(ratio)} | "
                     f"{_megabytes(figures['rss'])} |")
    return lines


def micro_table(micro):
    chains = micro["chains"]
    lines = [f"| engine | chain ({micro['ops']:,} ops) | forward us/op | backward us/op | "
             f"together us/op |", "| --- | --- | ---: | ---: | ---: |"]
    for engine, kinds in chains.items():
        for kind, cost in kinds.items():
            lines.append(f"| {engine} | {kind} | {1e6 * cost['forward']:.2f} | "
                         f"{1e6 * cost['backward']:.2f} | "
                         f"{1e6 * (cost['forward'] + cost['backward']):.2f} |")
    unroll = micro["unroll"]
    lines += ["", f"tinygraph ElmanRNN unrolled over 1,000 steps (B=1, m=p=8, n=16; "
              f"{unroll['nodes']:,} graph nodes with the loss): forward "
              f"{1e3 * unroll['forward']:.1f} ms, backward {1e3 * unroll['backward']:.1f} ms "
              f"({1e6 * unroll['backward'] / unroll['nodes']:.1f} us per node)."]
    return lines


TARGETS = [  # (implementation, compared with, size, at most)
    ("tinygraph-unroll", "numpy-per-step", "S", 1.2),
    ("tinygraph-unroll", "numpy-per-step", "M", 1.2),
    ("tinygraph-unroll", "numpy-per-step", "L", 1.2),
    ("tinygraph-layers", "numpy-batched", "S", 1.5),
    ("tinygraph-layers", "numpy-batched", "M", 1.1),
    ("tinygraph-layers", "numpy-batched", "L", 1.1),
]


def _verdict(value, limit):
    if value is None:
        return "not measured"
    return "met" if value <= limit else "MISSED"


def target_lines(run, memory, micro):
    lines = ["| target | measured | verdict |", "| --- | --- | --- |"]
    chains = micro["chains"]
    for kind, cost in chains["tinygraph"].items():
        ours = cost["forward"] + cost["backward"]
        torch_cost = chains.get("torch", {}).get(kind)
        if torch_cost is None:
            measured, ratio = f"{1e6 * ours:.2f} us", None
            verdict = _verdict(ours, 7e-6)
        else:
            ratio = ours / (torch_cost["forward"] + torch_cost["backward"])
            measured = f"{1e6 * ours:.2f} us = {ratio:.2f}x PyTorch's"
            verdict = _verdict(ratio, 0.5)
        lines.append(f"| tiny-op overhead, fwd + bwd ({kind} chain) <= 0.5x PyTorch's | "
                     f"{measured} | {verdict} |")
    for name, reference, size_name, limit in TARGETS:
        result = run["sizes"].get(size_name)
        ratio = None if result is None else paired_ratio(result["times"], name, reference)
        if result is not None and name in result["failed"]:
            measured, verdict = "gradient check failed", "MISSED"
        else:
            measured, verdict = _ratio(ratio), _verdict(ratio, limit)
        lines.append(f"| {name} at {size_name} <= {limit}x {reference} | {measured} | "
                     f"{verdict} |")
    ours, theirs = (memory.get((name, "L"), {}).get("traced")
                    for name in ("tinygraph-unroll", "numpy-per-step"))
    ratio = ours / theirs if ours is not None and theirs else None
    lines.append(f"| tinygraph-unroll extra memory at L <= 1.5x numpy-per-step's | "
                 f"{_ratio(ratio)} | {_verdict(ratio, 1.5)} |")
    return lines


def report(facts, runs, memory, micro, elapsed, quick):
    lines = ["# Benchmark results", "",
             f"`python -m benchmarks.run{' --quick' if quick else ''}`, "
             f"{time.strftime('%Y-%m-%d %H:%M')}, {elapsed:.0f} s. "
             "Workload and columns: see README.md.", "", "## Machine", ""]
    lines += [f"- {label}: {value}" for label, value in facts.items()]
    lines += ["", "## Targets (1 thread)", ""]
    lines += target_lines(runs[min(runs)], memory, micro)
    for threads, run in runs.items():
        blas = run["blas"]
        lines += ["", f"## Time per step, {threads} thread{'s' * (threads > 1)}", "",
                  f"BLAS threads in use: {blas.get('threads', 'unknown')}; PyTorch threads: "
                  f"{run['torch_threads'] or 'n/a'}. Ratios are medians of per-round "
                  f"ratios (same round, same machine state).", ""]
        lines += timing_table(run)
    lines += ["", "## Extra memory of one step (1 thread, a fresh process each)", "",
              "tracemalloc: peak minus baseline over the second step (NumPy buffers and "
              "Python objects; PyTorch's allocator is not traced). RSS growth: rise of the "
              "resident high-water mark over the first step.", ""]
    lines += memory_table(memory)
    lines += ["", "## Engine micro-benchmarks (1 thread, tiny 4-element tensors)", ""]
    lines += micro_table(micro)
    return "\n".join(lines) + "\n"


# ---- the command --------------------------------------------------------------------------------
def run_all(plan):
    facts = machine.facts()
    started = time.perf_counter()
    runs = {}
    for threads in plan.threads:
        config = {"sizes": plan.sizes, "budgets": plan.budget, "min_rounds": plan.min_rounds,
                  "max_rounds": plan.max_rounds, "threads": threads}
        runs[threads] = _child(["benchmarks.run", "--time-worker", json.dumps(config)], threads)
    memory = {}
    for size_name in plan.memory_sizes:
        _say(f"  memory at {size_name}")
        for impl in impls.IMPLEMENTATIONS:
            if impl.available():
                memory[impl.name, size_name] = _child(
                    ["benchmarks.memory", impl.name, size_name], 1)
    _say(f"  micro-benchmarks ({plan.micro_ops:,}-op chains)")
    micro = _child(["benchmarks.micro", "--ops", str(plan.micro_ops)], 1)
    return facts, runs, memory, micro, time.perf_counter() - started


def _size_list(text):
    sizes = [name.strip().upper() for name in text.split(",") if name.strip()]
    unknown = [name for name in sizes if name not in SIZES]
    if unknown or not sizes:
        raise SystemExit(f"benchmarks.run: --sizes takes names from {', '.join(SIZES)}, "
                         f"not {text!r}")
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="S and M, 1 thread, fewer repeats; prints without writing")
    parser.add_argument("--sizes", help="comma-separated sizes to run, e.g. L (default: "
                                        "S,M,L; S,M with --quick)")
    parser.add_argument("--output", help=f"write the table here (default for a full run: "
                                         f"{os.path.relpath(RESULTS, ROOT)})")
    parser.add_argument("--profile", metavar="IMPL", choices=sorted(impls.BY_NAME),
                        help="profile one implementation with cProfile instead")
    parser.add_argument("--size", default="S", choices=sorted(SIZES),
                        help="the size to profile (with --profile)")
    parser.add_argument("--steps", type=int, default=5, help="steps to profile")
    parser.add_argument("--top", type=int, default=20, help="functions to list")
    parser.add_argument("--time-worker", help=argparse.SUPPRESS)
    parser.add_argument("--profile-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.time_worker:
        config = json.loads(args.time_worker)
        print(json.dumps(timing_worker(config["sizes"], config["budgets"],
                                       config["min_rounds"], config["max_rounds"],
                                       config["threads"])))
    elif args.profile_worker:
        profile_worker(args.profile, args.size, args.steps, args.top)
    elif args.profile:
        subprocess.run([sys.executable, "-m", "benchmarks.run", "--profile-worker",
                        "--profile", args.profile, "--size", args.size, "--steps",
                        str(args.steps), "--top", str(args.top)],
                       cwd=ROOT, env=machine.pinned_env(1), check=True)
    else:
        plan = Plan(args.quick)
        if args.sizes:
            plan.sizes = plan.memory_sizes = _size_list(args.sizes)
        _say(f"benchmarks: {'quick' if args.quick else 'full'} run")
        text = report(*run_all(plan), quick=args.quick)
        print(text)
        output = args.output or (None if args.quick else RESULTS)
        if output:
            with open(output, "w") as results:
                results.write(text)
            _say(f"written to {output}")


if __name__ == "__main__":
    main()
