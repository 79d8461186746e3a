"""Saving and loading weights as .npz archives, never with pickle.

A pickle runs code while it loads, so a weights file from a stranger could do
anything. An .npz is a zip of .npy arrays; with ``allow_pickle=False`` NumPy reads
only numbers (and strings) out of it, and refuses an array of Python objects.

    tg.save(model.state_dict(), "model.npz")
    model.load_state_dict(tg.load("model.npz"))
"""
import zipfile

import numpy as np

from .tensor import Tensor


def save(state_dict, path):
    """Write {name: ndarray or Tensor} to ``path`` as an .npz archive (exactly that path).

    Names may hold dots (``layers.0.weight``). Arrays of Python objects are refused,
    since they could only be stored by pickling them.
    """
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"save: names must be non-empty strings, not {name!r}")
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if array.dtype.hasobject:
            raise TypeError(f"save: '{name}' is an array of Python objects, which only "
                            f"pickle could store; convert it to numbers")
        arrays[name] = array
    # Written entry by entry rather than with np.savez, whose own keyword arguments
    # (file, allow_pickle) would collide with parameters of those names.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, array, allow_pickle=False)


def load(path):
    """Read an .npz archive written by ``save`` (or ``np.savez``): {name: ndarray}.

    Nothing in the file is executed: an entry holding pickled Python objects raises
    a ValueError naming it, and so does a file that is a pickle rather than an .npz.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise ValueError(f"load: {path} is not an .npz archive of plain arrays ({err}); "
                         f"tinygraph never unpickles files") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"load: {path} holds a single array, not an .npz archive of "
                         f"named arrays (write one with tg.save)")
    with archive:
        state_dict = {}
        for name in archive.files:
            try:
                state_dict[name] = archive[name]
            except ValueError:
                raise ValueError(
                    f"load: '{name}' in {path} is an array of pickled Python objects; "
                    f"it was not loaded, because unpickling can run arbitrary code. "
                    f"tinygraph files hold numbers only") from None
        return state_dict
