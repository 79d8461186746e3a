"""Saving and loading weights as .npz archives, never with pickle.

A pickle runs code while it loads, so a weights file from a stranger could do
anything. An .npz is a zip of .npy arrays; with ``allow_pickle=False`` NumPy reads
only numbers (and strings) out of it, and refuses an array of Python objects.

    tg.save(model.state_dict(), "model.npz")
    model.load_state_dict(tg.load("model.npz"))

A state dict that holds dicts (an optimizer's, or a checkpoint of model, optimizer
and schedule together) is saved as a *tree*: its arrays as .npy entries named by their
path ("optimizer/state/0/exp_avg"), and its structure (dicts with str or int keys,
lists, tuples, numbers, strings, None) as JSON in one more entry, ``__tree__``. JSON
is read without running anything, and floats written by ``repr`` come back bitwise.

    tg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, "ckpt.npz")
"""
import json
import os
import zipfile
import zlib

import numpy as np

from .tensor import Tensor


TREE = "__tree__"  # the entry holding a nested state dict's structure, as JSON


def save(state_dict, path):
    """Write {name: ndarray or Tensor} to ``path`` as an .npz archive (exactly that path).

    Names may hold dots (``layers.0.weight``). Arrays of Python objects are refused,
    since they could only be stored by pickling them. A dict that holds a dict, None or
    a Python number or string among its values (a schedule's state, a checkpoint) is
    written as a tree (see the module's docstring), so that each comes back as it was;
    a dict of arrays, tensors and lists of numbers is written as arrays.
    """
    if not isinstance(state_dict, dict):
        raise TypeError(f"save: takes a dict of named arrays, not {type(state_dict).__name__}")
    arrays = {}
    if any(value is None or isinstance(value, (dict, bool, int, float, str))
           and not isinstance(value, np.generic) for value in state_dict.values()):
        arrays[TREE] = np.frombuffer(json.dumps(_encode(state_dict, (), arrays)).encode(),
                                     dtype=np.uint8)
    for name, value in state_dict.items() if TREE not in arrays else ():
        if not isinstance(name, str) or not name or name == TREE:
            raise TypeError(f"save: names must be non-empty strings other than {TREE!r}, "
                            f"not {name!r}")
        arrays[name] = _array(value, name)
    # Written entry by entry rather than with np.savez, whose own keyword arguments
    # (file, allow_pickle) would collide with parameters of those names.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def _array(value, name):
    array = np.asarray(value.data if isinstance(value, Tensor) else value)
    if array.dtype.hasobject:
        raise TypeError(f"save: '{name}' is an array of Python objects, which only "
                        f"pickle could store; convert it to numbers")
    return array


def _encode(value, path, arrays):
    """The JSON form of one value of a tree; arrays go into ``arrays`` by path."""
    where = "/".join(map(str, path))
    if value is None or isinstance(value, (bool, int, float, str)):
        return value  # (np.float64 is a float: it comes back as a Python float)
    if isinstance(value, dict):
        for key in value:
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"save: the key {key!r} in '{where}' is a "
                                f"{type(key).__name__}; keys must be strings or ints")
        return {"dict": [[key, _encode(v, path + (key,), arrays)] for key, v in value.items()]}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, path + (i,), arrays) for i, v in enumerate(value)]}
    if not isinstance(value, (np.ndarray, np.generic, Tensor)):
        raise TypeError(f"save: '{where}' is a {type(value).__name__}, which only pickle "
                        f"could store; give arrays, numbers, strings, lists and dicts")
    name = where if where not in arrays else f"{where}#{len(arrays)}"
    arrays[name] = _array(value, where)
    return {"array": name}


def _decode(value, entries):
    """The value a tree's JSON form stands for, arrays taken from ``entries``."""
    if not isinstance(value, dict):
        return value
    (kind, content), = value.items()
    if kind == "dict":
        return {key: _decode(v, entries) for key, v in content}
    if kind in ("list", "tuple"):
        items = [_decode(v, entries) for v in content]
        return items if kind == "list" else tuple(items)
    if kind != "array":
        raise ValueError(f"unknown kind {kind!r}")
    return entries[content]


def load(path):
    """Read an .npz archive written by ``save`` (or ``np.savez``): {name: ndarray}, or
    the nested dict that ``save`` wrote as a tree.

    Nothing in the file is executed: an entry holding pickled Python objects raises
    a ValueError naming it, and so does a file that is a pickle rather than an .npz.
    A file that is empty, truncated, corrupt or in another format raises a ValueError
    that says so and names the path; a missing file, FileNotFoundError.
    """
    if os.path.isdir(path):
        raise ValueError(f"load: {path} is a directory, not an .npz archive; "
                         f"give the path of the file written by tg.save")
    with open(path, "rb") as file:
        head = file.read(8)
        if not head.startswith(b"PK"):
            raise ValueError(_not_a_zip(path, head))
        try:
            with zipfile.ZipFile(file) as archive:
                entries = dict(_read_entry(archive, info, path) for info in archive.infolist())
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
            raise ValueError(_corrupt(path, err)) from None
    if TREE not in entries:
        return entries
    try:
        return _decode(json.loads(entries[TREE].tobytes()), entries)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(_corrupt(path, f"its {TREE} entry does not describe its arrays: "
                                        f"{err!r}")) from None


def _not_a_zip(path, head):
    """Why a file that does not start as a zip file does (every .npz does) is refused.

    NumPy takes any such file for a pickle; only the first bytes are looked at here,
    so that a truncated download or a text file is not reported as one.
    """
    if not head:
        return (f"load: {path} is empty (0 bytes), not an .npz archive; it was "
                f"probably truncated while being written: save it again")
    if head.startswith(b"\x93NUMPY"):
        return (f"load: {path} holds a single array, not an .npz archive of named "
                f"arrays (write one with tg.save)")
    if head[0] == 0x80 and 2 <= head[1] <= 5:  # the PROTO opcode of pickle protocols 2-5
        return (f"load: {path} is a pickle, not an .npz archive; it was not loaded, "
                f"because unpickling can run arbitrary code: tinygraph never unpickles "
                f"files. Convert it to an .npz with tg.save where you trust it")
    return (f"load: {path} is not an .npz archive (it does not start as a zip file "
            f"does): it is truncated, corrupt or in another format")


def _corrupt(path, err):
    return (f"load: {path} is a truncated or corrupt .npz archive ({err}); "
            f"save it again, or copy it again if it was downloaded")


def _read_entry(archive, info, path):
    """``(name, ndarray)`` for one .npy entry. Its header is read first, so that an
    array of pickled objects is refused as such, and any other failure reported as damage."""
    name = info.filename.removesuffix(".npy")
    if name == info.filename:
        raise ValueError(f"load: {path} is a zip file but not an .npz archive: its "
                         f"entry '{info.filename}' is not an .npy array")
    with archive.open(info) as entry:
        try:
            version = np.lib.format.read_magic(entry)
            # Version 3.0 differs from 2.0 only in allowing UTF-8 field names, which the
            # 2.0 reader still parses well enough to tell whether the dtype holds objects.
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            if not read_header(entry)[2].hasobject:
                entry.seek(0)
                return name, np.lib.format.read_array(entry, allow_pickle=False)
        except ValueError as err:
            raise ValueError(_corrupt(path, f"entry '{name}': {err}")) from None
    raise ValueError(f"load: '{name}' in {path} is an array of pickled Python objects; "
                     f"it was not loaded, because unpickling can run arbitrary code. "
                     f"tinygraph files hold numbers only")
