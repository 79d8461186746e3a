"""Shared test settings.

Hypothesis runs under the "ci" profile by default: derandomized with a fixed number
of examples, so a red run is reproducible, and no deadline, since these machines are
shared and noisy. For a longer search: ``HYPOTHESIS_PROFILE=long python -m pytest``.
"""
import os

# The tests use small arrays, where a second BLAS thread only waits on the first (and,
# on a busy machine, waits long). NumPy reads this once, when it is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=25, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=1000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
