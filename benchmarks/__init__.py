"""The benchmark suite of issue 7: run it with ``python -m benchmarks.run`` (see README.md)."""
