"""tg.save / tg.load: .npz archives of named arrays, and no pickle, ever."""
import pathlib
import pickle

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import nn


class Payload:
    """Unpickling this object creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def malicious_npz(tmp_path):
    """An .npz whose 'weight' entry is an object array holding a Payload."""
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.npz"
    objects = np.empty(1, dtype=object)
    objects[0] = Payload(marker)
    np.savez(path, weight=objects, bias=np.zeros(2))
    return path, marker


def test_round_trip_keeps_names_values_dtypes_and_order(tmp_path):
    state = {"layers.0.weight": np.arange(6.0).reshape(2, 3),
             "layers.0.bias": np.ones(2, dtype=np.float32),
             "cell.W_ax": np.array([[1, 2]], dtype=np.int64),
             "b_y": np.float64(3.5)}
    tg.save(state, tmp_path / "m.npz")
    loaded = tg.load(tmp_path / "m.npz")
    assert list(loaded) == list(state)
    for name, array in state.items():
        assert loaded[name].dtype == np.asarray(array).dtype
        np.testing.assert_array_equal(loaded[name], array)


def test_load_returns_a_plain_dict_of_ndarrays(tmp_path):
    tg.save({"w": np.zeros(2)}, tmp_path / "m.npz")
    loaded = tg.load(tmp_path / "m.npz")
    assert type(loaded) is dict and isinstance(loaded["w"], np.ndarray)


def test_model_survives_save_and_load(tmp_path):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    tg.save(model.state_dict(), tmp_path / "model.npz")
    tg.manual_seed(1)
    fresh = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    fresh.load_state_dict(tg.load(tmp_path / "model.npz"))
    x = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(fresh(x).data, model(x).data)


def test_save_accepts_tensors(tmp_path):
    tg.save({"W": nn.Parameter(np.eye(2))}, tmp_path / "m.npz")
    np.testing.assert_array_equal(tg.load(tmp_path / "m.npz")["W"], np.eye(2))


def test_save_writes_exactly_the_given_path(tmp_path):
    tg.save({"w": np.zeros(1)}, tmp_path / "weights.bin")
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]
    with np.load(tmp_path / "weights.bin", allow_pickle=False) as archive:
        assert archive.files == ["w"]


def test_names_that_are_np_savez_keywords_survive(tmp_path):
    tg.save({"file": np.ones(1), "allow_pickle": np.zeros(1)}, tmp_path / "m.npz")
    assert sorted(tg.load(tmp_path / "m.npz")) == ["allow_pickle", "file"]


def test_save_refuses_object_arrays_and_writes_nothing(tmp_path):
    objects = np.empty(1, dtype=object)
    with pytest.raises(TypeError, match="'bad' is an array of Python objects"):
        tg.save({"good": np.zeros(1), "bad": objects}, tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_the_malicious_file_really_runs_code_when_unpickled(tmp_path):
    # The control experiment: what np.load(allow_pickle=True) would do with it.
    path, marker = malicious_npz(tmp_path)
    with np.load(path, allow_pickle=True) as archive:
        archive["weight"]
    assert marker.exists()


def test_load_refuses_pickled_objects_and_runs_nothing(tmp_path):
    path, marker = malicious_npz(tmp_path)
    with pytest.raises(ValueError, match="'weight' .* pickled Python objects"):
        tg.load(path)
    assert not marker.exists()


def test_load_refuses_a_pickle_file_and_runs_nothing(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"weight": Payload(marker)}))
    with pytest.raises(ValueError, match="never unpickles"):
        tg.load(path)
    assert not marker.exists()


def test_load_refuses_a_single_npy_array(tmp_path):
    np.save(tmp_path / "w.npy", np.zeros(3))
    with pytest.raises(ValueError, match="single array, not an .npz archive"):
        tg.load(tmp_path / "w.npy")
