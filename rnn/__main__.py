"""``python -m rnn`` (and the ``rnn`` console script): the command line of rnn/cli.py."""
import os
import sys

from . import cli

BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def main():
    """Run the command line with one BLAS thread unless the user chose a number.

    The models here are small: a second BLAS thread mostly waits for the first, and on
    a busy 2-core machine that waiting dominated (18 training steps/s with two threads
    against 172 with one, measured). NumPy reads the setting once, when it loads, and
    it has loaded by now, so the process starts again with it set.
    """
    if not any(variable in os.environ for variable in BLAS_THREAD_VARIABLES):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
        os.execv(sys.executable, [sys.executable, "-m", "rnn", *sys.argv[1:]])
    return cli.main()


if __name__ == "__main__":
    raise SystemExit(main())
