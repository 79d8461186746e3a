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


# ---- nested state dicts (trees) -------------------------------------------------------------
def test_a_nested_state_dict_round_trips_with_its_types(tmp_path):
    tree = {"model": {"W": np.arange(6.0).reshape(2, 3), "b": np.zeros(0, np.float32)},
            "optimizer": {"state": {0: {"step": 3, "exp_avg": np.ones(2)}, 7: {}},
                          "param_groups": [{"lr": 0.1 + 0.2, "betas": (0.9, 0.999),
                                            "params": [0, 7], "amsgrad": False,
                                            "name": "head", "extra": None}]},
            "best": float("inf"), "scale": np.float32(0.5), "ints": np.arange(3)}
    tg.save(tree, tmp_path / "tree.npz")
    loaded = tg.load(tmp_path / "tree.npz")
    assert list(loaded) == list(tree)
    group = loaded["optimizer"]["param_groups"][0]
    assert group == tree["optimizer"]["param_groups"][0]
    assert type(group["betas"]) is tuple and type(group["params"]) is list
    assert group["lr"] == 0.1 + 0.2 and loaded["best"] == float("inf")
    assert list(loaded["optimizer"]["state"]) == [0, 7]  # int keys stay ints
    assert loaded["optimizer"]["state"][0]["step"] == 3
    for got, expected in [(loaded["model"]["W"], tree["model"]["W"]),
                          (loaded["model"]["b"], tree["model"]["b"]),
                          (loaded["ints"], tree["ints"]),
                          (loaded["optimizer"]["state"][0]["exp_avg"], np.ones(2))]:
        np.testing.assert_array_equal(got, expected)
        assert got.dtype == expected.dtype and got.shape == expected.shape
    assert loaded["scale"].dtype == np.float32 and loaded["scale"] == 0.5


def test_a_tree_names_its_arrays_by_path_so_numpy_can_read_them(tmp_path):
    tg.save({"model": {"W": np.ones(2)}, "state": {0: {"m": np.zeros(3)}}}, tmp_path / "t.npz")
    with np.load(tmp_path / "t.npz", allow_pickle=False) as archive:
        assert {"model/W", "state/0/m", "__tree__"} <= set(archive.files)


def test_a_tree_with_a_python_object_is_refused_and_writes_nothing(tmp_path):
    with pytest.raises(TypeError, match="'optimizer/fn' is a function, which only pickle"):
        tg.save({"optimizer": {"fn": lambda: 0}}, tmp_path / "t.npz")
    assert not (tmp_path / "t.npz").exists()


def test_a_tree_key_that_is_not_a_string_or_int_is_refused(tmp_path):
    with pytest.raises(TypeError, match="keys must be strings or ints"):
        tg.save({"state": {(1, 2): np.ones(1)}}, tmp_path / "t.npz")


def test_a_flat_dict_of_lists_still_saves_arrays(tmp_path):
    tg.save({"w": [1.0, 2.0]}, tmp_path / "flat.npz")
    loaded = tg.load(tmp_path / "flat.npz")
    assert isinstance(loaded["w"], np.ndarray)


def test_a_dict_with_python_numbers_or_strings_keeps_their_types(tmp_path):
    """A schedule's state saved on its own: numbers, strings and lists come back as such."""
    from tinygraph.optim import lr_scheduler
    saved = {"w": np.ones(2), "epoch": 3, "mode": "min", "best": 0.5, "lrs": [0.1, 0.01],
             "flag": True}
    tg.save(saved, tmp_path / "t.npz")
    loaded = tg.load(tmp_path / "t.npz")
    assert loaded.keys() == saved.keys()
    for key in ("epoch", "mode", "best", "lrs", "flag"):
        assert type(loaded[key]) is type(saved[key]) and loaded[key] == saved[key]
    schedule = lr_scheduler.StepLR(tg.optim.SGD([nn.Parameter(np.ones(1))], lr=0.1), 3)
    tg.save(schedule.state_dict(), tmp_path / "s.npz")
    assert tg.load(tmp_path / "s.npz") == schedule.state_dict()


def test_the_tree_entry_name_is_reserved_in_a_flat_dict(tmp_path):
    with pytest.raises(TypeError, match="other than '__tree__'"):
        tg.save({"__tree__": np.ones(1)}, tmp_path / "t.npz")


def test_a_tree_that_names_a_missing_array_is_reported_corrupt(tmp_path):
    path = tmp_path / "t.npz"
    tg.save({"a": {"b": np.ones(1)}}, path)
    arrays = dict(np.load(path, allow_pickle=False))
    del arrays["a/b"]
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="corrupt .npz archive.*__tree__ entry"):
        tg.load(path)
