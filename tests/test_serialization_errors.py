"""tg.load on files that are not good .npz archives: each refusal says what is wrong
with the file and names it; only real pickled data is ever called pickled."""
import io
import pickle
import zipfile

import numpy as np
import pytest

import tinygraph as tg

CORRUPT = "truncated or corrupt"
NOT_NPZ = "not an .npz archive"


def saved(tmp_path, name="m.npz"):
    path = tmp_path / name
    tg.save({"W": np.arange(2000.0).reshape(40, 50), "b": np.ones(50)}, path)
    return path


def refusal(path):
    """The message tg.load raises for ``path``; it must name the path and never
    call the file pickled."""
    with pytest.raises(ValueError) as caught:
        tg.load(path)
    message = str(caught.value)
    assert str(path) in message
    assert "pickle" not in message
    return message


def npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_a_file_cut_in_half_is_reported_truncated_or_corrupt(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    assert CORRUPT in refusal(path)


def test_a_file_of_random_bytes_is_not_an_npz_archive(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert NOT_NPZ in refusal(path)


def test_random_bytes_after_a_zip_signature_are_a_corrupt_archive(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(b"PK\x03\x04" + np.random.default_rng(1).bytes(4096))
    assert CORRUPT in refusal(path)


def test_an_empty_file_is_reported_empty_and_not_an_npz_archive(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    message = refusal(path)
    assert "empty" in message and NOT_NPZ in message


def test_a_text_file_is_not_an_npz_archive(tmp_path):
    path = tmp_path / "notes.npz"
    path.write_text("W_aa = [[0.1, 0.2], [0.3, 0.4]]\n")
    assert NOT_NPZ in refusal(path)


def test_a_valid_zip_whose_npy_entry_is_truncated_names_the_entry(tmp_path):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("b.npy", npy_bytes(np.ones(3)))
        archive.writestr("W.npy", npy_bytes(np.arange(100.0))[:300])
    message = refusal(path)
    assert CORRUPT in message and "'W'" in message


def test_a_valid_zip_whose_npy_entry_has_a_broken_header_is_corrupt(tmp_path):
    path = tmp_path / "m.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W.npy", npy_bytes(np.ones(3))[:20])
    assert CORRUPT in refusal(path)


def test_a_compressed_archive_with_a_flipped_byte_is_corrupt(tmp_path):
    path = tmp_path / "m.npz"
    np.savez_compressed(path, W=np.arange(1000.0))
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    assert CORRUPT in refusal(path)


def test_a_zip_of_other_files_is_not_an_npz_archive(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    message = refusal(path)
    assert NOT_NPZ in message and "'readme.txt'" in message


def test_a_directory_is_refused_as_not_an_npz_archive(tmp_path):
    assert NOT_NPZ in refusal(tmp_path)


def test_a_missing_file_raises_file_not_found_naming_it(tmp_path):
    path = tmp_path / "missing.npz"
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        tg.load(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_real_pickle_file_is_still_called_a_pickle_that_is_never_unpickled(
        tmp_path, protocol):
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"W": np.ones(2)}, protocol=protocol))
    with pytest.raises(ValueError, match="never unpickles") as caught:
        tg.load(path)
    assert str(path) in str(caught.value)


def test_an_object_array_entry_is_still_called_pickled_objects(tmp_path):
    path = tmp_path / "objects.npz"
    objects = np.empty(2, dtype=object)
    np.savez(path, W=np.ones(2), names=objects)
    with pytest.raises(ValueError, match="'names' in .* pickled Python objects"):
        tg.load(path)


def test_an_object_field_of_a_structured_array_is_called_pickled_objects(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, rows=np.zeros(2, dtype=[("x", "f8"), ("tag", "O")]))
    with pytest.raises(ValueError, match="'rows' in .* pickled Python objects"):
        tg.load(path)


def test_an_empty_archive_loads_as_an_empty_dict(tmp_path):
    tg.save({}, tmp_path / "empty.npz")
    assert tg.load(tmp_path / "empty.npz") == {}


def test_an_archive_written_by_np_savez_compressed_still_loads(tmp_path):
    np.savez_compressed(tmp_path / "m.npz", W=np.eye(3), b=np.arange(3))
    loaded = tg.load(tmp_path / "m.npz")
    assert list(loaded) == ["W", "b"]
    np.testing.assert_array_equal(loaded["W"], np.eye(3))
