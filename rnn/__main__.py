"""``python -m rnn``: the command line of rnn/cli.py (train, sample, draw, params)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
