"""Which memory order of a matrix OpenBLAS multiplies by faster, measured once per shape.

``x @ M`` does the same arithmetic whether M is stored row by row (C order) or column
by column (F order), but not in the same time. For the few rows of an RNN step,
OpenBLAS repacks M on every call, and how fast it does that depends on M's order and
on the processor. With 16 rows of x by a 128 x 128 M (one step of the benchmarks'
size L), the F order took 0.68x the time of the C order on an AMD EPYC (OpenBLAS's
Haswell kernel); on an Intel Xeon (its SkylakeX kernel) the C order was the faster
one, at about 0.6x. No fixed choice is right everywhere.

So ``tg.linear`` keeps a weight that one Module call multiplies many times (an RNN's
W_aa, at every time step, forward and backward) in both orders, and ``matmul`` uses
whichever is faster. It times both the first time it meets a shape (three runs each,
taking turns, on the operands at hand) and remembers the answer for the process.

A single row is a matrix-vector product, and there the two orders round differently
(in the last bit), so a timing must not choose: one row always uses the C order, and
results never depend on how busy the machine was. With two rows or more the two
orders gave bit-identical products in float64 and float32, with one BLAS thread and
with two, for 600 random shapes on the AMD machine above.
"""
from time import perf_counter

# (rows of x, shape of M, dtype) -> True where the F-order operand was faster
_f_order_faster = {}


def matmul(x, M_c, M_f):
    """x @ M for a 2-D x, where ``M_c`` and ``M_f`` hold the same matrix M (in C and in
    F order): with whichever of the two x's shape multiplies faster."""
    if len(x) == 1:
        return x @ M_c
    key = len(x), M_c.shape, x.dtype
    f_faster = _f_order_faster.get(key)
    if f_faster is None:
        f_faster = _f_order_faster[key] = _time_both(x, M_c, M_f)
    return x @ (M_f if f_faster else M_c)


def _time_both(x, M_c, M_f, runs=3):
    """True if x @ M_f took less time than x @ M_c (the best of ``runs`` each)."""
    best = {"C": float("inf"), "F": float("inf")}
    for _ in range(runs):
        for order, M in (("C", M_c), ("F", M_f)):
            start = perf_counter()
            x @ M
            best[order] = min(best[order], perf_counter() - start)
    return best["F"] < best["C"]
