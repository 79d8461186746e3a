"""Which memory order of a matrix OpenBLAS multiplies by faster, measured once per shape.

``x @ M`` does the same arithmetic whether M is stored row by row (C order) or column
by column (F order), but not in the same time. For the few rows of an RNN step,
OpenBLAS repacks M on every call, and how fast it does that depends on M's order and
on the processor. With 16 rows of x by a 128 x 128 M (one step of the benchmarks'
size L), the F order took 0.68x the time of the C order on an AMD EPYC (OpenBLAS's
Haswell kernel); on an Intel Xeon (its SkylakeX kernel) the C order was the faster
one, at about 0.6x. No fixed choice is right everywhere.

So ``tg.linear`` keeps a weight that one Module call multiplies many times (an RNN's
W_aa, at every time step, forward and backward) in both orders, and ``matmul`` takes
the F order where ``f_order_faster`` says so: where it was clearly faster (by
``MARGIN``, so that a near tie and a noisy timing decide nothing) *and* gave the very
same bits as the C order. That is measured the first time a shape comes up, on
seeded random operands of that shape (both orders, three runs each, taking turns),
and kept for the process.

Results therefore never depend on a timing. Where the two orders round differently,
the C order is always used. On OpenBLAS's SkylakeX kernel (run on the AMD machine with
OPENBLAS_CORETYPE=SkylakeX) 188 of 400 random shapes with two rows or more did; on
its Haswell kernel none of 600 did; with one row (a matrix-vector product) they
always do. Products where the order hardly matters take the
C order without measuring: one row, a matrix of fewer than ``MIN_ENTRIES`` entries, or
more than ``MAX_ROWS`` rows (OpenBLAS then packs M once for many rows).
"""
from time import perf_counter

import numpy as np

MARGIN = 0.9           # the F order must take at most this share of the C order's time
MIN_ENTRIES = 64 * 64  # smaller matrices: the order hardly matters
MAX_ROWS = 256         # more rows: packing M is spread over them, the order hardly matters
RUNS = 3

_f_order_wins = {}  # (rows, shape of M, dtype) -> bool, measured once each


def matmul(x, M_c, M_f):
    """x @ M for a 2-D x, where ``M_c`` (C order) and ``M_f`` (F order) hold the same
    matrix M: in the F order where ``f_order_faster`` says so, else in the C order.
    (If the two are not really in those orders, ``M_c`` is used as it is.)"""
    if (x.dtype == M_c.dtype and M_c.flags.c_contiguous and M_f.flags.f_contiguous
            and f_order_faster(len(x), M_c.shape, M_c.dtype)):
        return x @ M_f
    return x @ M_c


def f_order_faster(rows, shape, dtype):
    """True if ``rows`` rows times a matrix of ``shape`` and ``dtype`` is clearly faster
    with the matrix in F order and gives the same bits as the C order (measured the
    first time it is asked, then remembered)."""
    if not 2 <= rows <= MAX_ROWS or shape[0] * shape[1] < MIN_ENTRIES:
        return False
    key = rows, shape, dtype
    wins = _f_order_wins.get(key)
    if wins is None:
        wins = _f_order_wins[key] = _measure(*_probe(rows, shape, dtype))
    return wins


def _probe(rows, shape, dtype):
    """Seeded random operands of the given shapes: x, M in C order, M in F order."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, shape[0])).astype(dtype)
    M_c = rng.standard_normal(shape).astype(dtype)
    return x, M_c, np.asfortranarray(M_c)


def _measure(x, M_c, M_f):
    """True if x @ M_f took at most ``MARGIN`` times as long as x @ M_c (the best of
    ``RUNS`` each) and gave the same product, bit for bit."""
    best, product = {"C": float("inf"), "F": float("inf")}, {}
    for _ in range(RUNS):
        for order, M in (("C", M_c), ("F", M_f)):
            start = perf_counter()
            product[order] = x @ M
            best[order] = min(best[order], perf_counter() - start)
    return bool(best["F"] <= MARGIN * best["C"] and np.array_equal(product["F"], product["C"]))
