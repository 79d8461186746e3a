"""The one source of randomness in tinygraph.

Every random initialisation (``nn.Linear``, ``nn.Embedding``, ``nn.init``) and every
dropout mask draws from the generator kept here, so ``tg.manual_seed(seed)`` at the
top of a script makes the whole run reproducible. Until it is called the generator
is seeded from the operating system, as NumPy's own default is.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Restart tinygraph's random stream from ``seed`` (an int); returns the generator."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator():
    """The ``np.random.Generator`` that initialisations and dropout draw from."""
    return _generator
