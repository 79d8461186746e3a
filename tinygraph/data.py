"""Datasets and mini-batches, shaped like ``torch.utils.data``.

    from tinygraph.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(X, y), batch_size=32, shuffle=True, seed=0)
    for epoch in range(10):
        for x, y in loader:          # tensors: x (32, ...) float, y (32,) integer targets
            ...

A dataset has ``len()`` and ``dataset[i]`` (one sample: an array, or a tuple of them);
samples run along the first axis. ``DataLoader`` takes a dataset (a list of samples is
one), an array or a tuple of arrays (both made a ``TensorDataset``) and yields each
batch as the sample does: a tensor, or a tuple of tensors, of the stored dtype
(integers stay integer tensors, for targets and indices). Sequence data kept time-major (T, B, m) is made samples-first
with ``np.swapaxes(xs, 0, 1)`` before, and a batch made time-major again with
``x.transpose(1, 0, 2)`` after.

Shuffling draws a new order every epoch (every ``iter``), from ``seed`` (its own
generator, so a run is reproducible whatever else draws random numbers), from
``generator`` (an ``np.random.Generator``), or else from tinygraph's generator, which
``tg.manual_seed`` seeds.
"""
import math

import numpy as np

from . import random
from .tensor import Tensor


class Dataset:
    """Base class: a subclass defines ``__len__`` and ``__getitem__(i)`` for i in [0, len)."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Arrays (or tensors) with the same first dimension; sample i is the tuple of their
    rows i. Indexing with an array of indices gives a whole batch at once."""

    def __init__(self, *arrays):
        self.arrays = [np.asarray(a.data if isinstance(a, Tensor) else a) for a in arrays]
        if not self.arrays or any(a.ndim == 0 for a in self.arrays):
            raise ValueError("TensorDataset needs one or more arrays with a first "
                             "(sample) dimension")
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) > 1:
            raise ValueError(f"TensorDataset: the arrays hold different numbers of samples "
                             f"(first dimensions {lengths}); they must be equal")

    def __getitem__(self, index):
        return tuple(a[index] for a in self.arrays)

    def __len__(self):
        return len(self.arrays[0])


def default_collate(samples):
    """Stack a list of samples into one batch: arrays (or numbers) into one tensor along
    a new first axis; tuples field by field."""
    if isinstance(samples[0], (tuple, list)):
        return tuple(default_collate(list(field)) for field in zip(*samples))
    return Tensor(np.stack([np.asarray(s.data if isinstance(s, Tensor) else s)
                            for s in samples]))


class DataLoader:
    """The samples of ``dataset`` in batches of ``batch_size``, in order or shuffled.

    ``len(loader)`` is the number of batches: ceil(N / batch_size), or floor with
    ``drop_last`` (which leaves out a last, smaller batch). ``collate_fn`` turns a list
    of samples into a batch (default: ``default_collate``); a ``TensorDataset`` is
    sliced directly, a batch at a time, when it is not given.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 generator=None, collate_fn=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
                or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, "
                             f"got {batch_size!r}")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader: give seed or generator, not both")
        if isinstance(dataset, tuple):  # (a list is a dataset of samples, as in torch)
            dataset = TensorDataset(*dataset)
        elif isinstance(dataset, (np.ndarray, Tensor)):
            dataset, self._single = TensorDataset(dataset), True
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"DataLoader takes a dataset (with len() and [i]), an array or "
                            f"a tuple of arrays, not {type(dataset).__name__}")
        self.dataset, self.batch_size, self.shuffle = dataset, int(batch_size), shuffle
        self.drop_last, self.collate_fn = drop_last, collate_fn
        self.generator = np.random.default_rng(seed) if seed is not None else generator

    _single = False  # made from one array: batches are tensors, not 1-tuples

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        rng = self.generator if self.generator is not None else random.generator()
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield self._batch(order[start:start + self.batch_size])

    def _batch(self, indices):
        if self.collate_fn is None and isinstance(self.dataset, TensorDataset):
            batch = tuple(Tensor(a[indices]) for a in self.dataset.arrays)
        else:
            batch = (self.collate_fn or default_collate)([self.dataset[int(i)] for i in indices])
        return batch[0] if self._single else batch
