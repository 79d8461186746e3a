"""Thread pinning and the machine facts a results table is meaningless without.

BLAS reads its thread count once, when NumPy loads it, so a benchmark process is
pinned by its *environment* (``pinned_env``), set by the parent that spawns it;
PyTorch is pinned with ``torch.set_num_threads`` inside the process.
"""
import ctypes
import glob
import importlib.metadata
import os
import platform
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# Recorded, never changed: OPENBLAS_CORETYPE may be set on some processors and changes
# which kernels OpenBLAS runs.
RECORDED_VARIABLES = THREAD_VARIABLES + ("OPENBLAS_CORETYPE",)


def pinned_env(threads):
    """A copy of this process's environment with BLAS and OpenMP set to ``threads``."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    return env


def pin_torch(threads):
    """Set PyTorch's intra-op threads, if PyTorch is importable; returns its version."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch.__version__


def _openblas_library():
    """NumPy's bundled OpenBLAS as a ctypes handle with its symbol prefix and suffix, or
    None (another BLAS, or a layout this does not know)."""
    import numpy as np
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in glob.glob(os.path.join(libs, "*openblas*")):
        library = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas_", "64_"), ("openblas_", "64_"),
                               ("scipy_openblas_", ""), ("openblas_", "")):
            if hasattr(library, f"{prefix}get_num_threads{suffix}"):
                return library, prefix, suffix
    return None


def blas_runtime():
    """{'threads', 'core'} as NumPy's OpenBLAS reports them in this process, or {}."""
    found = _openblas_library()
    if found is None:
        return {}
    library, prefix, suffix = found
    corename = getattr(library, f"{prefix}get_corename{suffix}")
    corename.restype = ctypes.c_char_p
    return {"threads": getattr(library, f"{prefix}get_num_threads{suffix}")(),
            "core": corename().decode()}


def facts():
    """The machine and software facts, as {label: text}, with the environment's BLAS
    variables as they were before any pinning (call it in the parent)."""
    import numpy as np
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    runtime = blas_runtime()
    facts = {
        "cores (os.cpu_count)": str(os.cpu_count()),
        "CPU": _cpu_model(),
        "Python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "NumPy": np.__version__,
        "BLAS (NumPy build)": f"{blas.get('name')} {blas.get('version')}: "
                              f"{blas.get('openblas configuration', '')}".strip(),
        "BLAS core in use": runtime.get("core", "unknown"),
    }
    try:
        facts["PyTorch"] = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        facts["PyTorch"] = "not installed"
    for name in RECORDED_VARIABLES:
        facts[name] = os.environ.get(name, "unset")
    return facts


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
