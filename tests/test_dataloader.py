"""tinygraph.data: TensorDataset and DataLoader behave as torch.utils.data's."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygraph as tg
from tinygraph.data import DataLoader, Dataset, TensorDataset, default_collate


def arrays(n=10):
    X = np.arange(n * 3, dtype=np.float64).reshape(n, 3)
    y = np.arange(n) % 4
    return X, y


@given(n=st.integers(0, 40), batch_size=st.integers(1, 12), drop_last=st.booleans(),
       shuffle=st.booleans())
def test_batches_cover_the_samples_once_in_len_batches_as_torch_counts(n, batch_size,
                                                                       drop_last, shuffle):
    torch = pytest.importorskip("torch")
    X, y = arrays(n)
    loader = DataLoader((X, y), batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                        seed=0)
    reference = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.tensor(X), torch.tensor(y)), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(batches) == len(loader) == len(reference)
    sizes = [len(x) for x, _ in batches]
    assert sizes == [len(x) for x, _ in reference]
    seen = np.concatenate([y_b.data for _, y_b in batches]) if batches else np.zeros(0, int)
    rows = np.concatenate([x.data[:, 0] for x, _ in batches]) / 3 if batches else []
    assert len(set(np.asarray(rows).tolist())) == len(rows)  # no sample twice
    np.testing.assert_array_equal(seen, np.asarray(rows, dtype=int) % 4)  # rows stay paired
    if not shuffle:
        np.testing.assert_array_equal(rows, np.arange(len(rows)))


def test_batches_equal_torchs_in_order():
    torch = pytest.importorskip("torch")
    X, y = arrays(10)
    ours = list(DataLoader((X, y), batch_size=4))
    theirs = list(torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.tensor(X), torch.tensor(y)), batch_size=4))
    for (x_a, y_a), (x_b, y_b) in zip(ours, theirs):
        np.testing.assert_array_equal(x_a.data, x_b.numpy())
        np.testing.assert_array_equal(y_a.data, y_b.numpy())


def test_batches_are_tensors_keeping_dtypes():
    X, y = arrays()
    x_batch, y_batch = next(iter(DataLoader(TensorDataset(X, y), batch_size=3)))
    assert isinstance(x_batch, tg.Tensor) and isinstance(y_batch, tg.Tensor)
    assert x_batch.dtype == np.float64 and y_batch.dtype.kind == "i"
    assert x_batch.shape == (3, 3) and y_batch.shape == (3,)
    assert not x_batch.requires_grad


def test_a_single_array_gives_tensors_not_tuples():
    X, _ = arrays()
    batch = next(iter(DataLoader(X, batch_size=4)))
    assert isinstance(batch, tg.Tensor) and batch.shape == (4, 3)


def test_the_same_seed_gives_the_same_epochs_and_epochs_differ():
    X, y = arrays(20)

    def epochs(loader):
        return [np.concatenate([b.data[:, 0] for b, _ in loader]) for _ in range(3)]
    first = epochs(DataLoader((X, y), batch_size=6, shuffle=True, seed=7))
    second = epochs(DataLoader((X, y), batch_size=6, shuffle=True, seed=7))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])
    assert sorted(first[0]) == list(X[:, 0])


def test_shuffle_without_a_seed_follows_tg_manual_seed():
    X, y = arrays(20)
    orders = []
    for _ in range(2):
        tg.manual_seed(3)
        orders.append(np.concatenate([b.data for _, b in DataLoader((X, np.arange(20)),
                                                                   batch_size=5, shuffle=True)]))
    np.testing.assert_array_equal(*orders)
    assert not np.array_equal(orders[0], np.arange(20))


def test_a_generator_can_be_given():
    X, _ = arrays(20)
    a = np.concatenate(list(b.data for b in DataLoader(
        X, batch_size=5, shuffle=True, generator=np.random.default_rng(1))))
    b = np.concatenate(list(b.data for b in DataLoader(X, batch_size=5, shuffle=True, seed=1)))
    np.testing.assert_array_equal(a, b)


def test_drop_last_leaves_out_the_short_batch():
    X, y = arrays(10)
    loader = DataLoader((X, y), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(x) for x, _ in loader] == [4, 4]
    assert len(DataLoader((X, y), batch_size=4)) == 3


def test_a_custom_dataset_is_collated_field_by_field():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i, i * i], dtype=float), i

    x, y = next(iter(DataLoader(Squares(), batch_size=5)))
    np.testing.assert_array_equal(x.data, [[0, 0], [1, 1], [2, 4], [3, 9], [4, 16]])
    np.testing.assert_array_equal(y.data, np.arange(5))


def test_a_list_of_samples_is_a_dataset_as_in_torch():
    samples = [(np.full(2, float(i)), i) for i in range(5)]
    x, y = list(DataLoader(samples, batch_size=2))[-1]
    np.testing.assert_array_equal(x.data, [[4.0, 4.0]])
    np.testing.assert_array_equal(y.data, [4])


def test_collate_fn_receives_the_list_of_samples():
    X, y = arrays(6)
    loader = DataLoader((X, y), batch_size=3, collate_fn=lambda samples: len(samples))
    assert list(loader) == [3, 3]


def test_default_collate_stacks_arrays_numbers_and_tensors():
    batch = default_collate([(np.ones(2), 1.5, tg.tensor([0.0])) for _ in range(3)])
    assert [b.shape for b in batch] == [(3, 2), (3,), (3, 1)]


def test_an_empty_dataset_gives_no_batches():
    loader = DataLoader(np.zeros((0, 3)), batch_size=2)
    assert len(loader) == 0 and list(loader) == []


def test_tensor_dataset_indexes_rows_and_counts_samples():
    X, y = arrays(10)
    dataset = TensorDataset(X, tg.tensor(y))
    assert len(dataset) == 10
    x_row, y_row = dataset[3]
    np.testing.assert_array_equal(x_row, X[3])
    assert y_row == y[3]


def test_arrays_of_different_lengths_are_refused():
    with pytest.raises(ValueError, match="different numbers of samples.*\\[10, 9\\]"):
        TensorDataset(np.zeros((10, 2)), np.zeros(9))


def test_a_0d_array_is_refused():
    with pytest.raises(ValueError, match="first \\(sample\\) dimension"):
        TensorDataset(np.float64(3.0))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True])
def test_batch_size_must_be_a_positive_integer(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        DataLoader(np.zeros((4, 1)), batch_size=batch_size)


def test_seed_and_generator_together_are_refused():
    with pytest.raises(ValueError, match="seed or generator"):
        DataLoader(np.zeros((4, 1)), seed=0, generator=np.random.default_rng(0))


def test_something_that_is_no_dataset_is_refused():
    with pytest.raises(TypeError, match="takes a dataset"):
        DataLoader(42)
