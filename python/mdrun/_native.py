"""ctypes binding of mdrun's C ABI (include/mdrun.h): the shared library, its structs, errors."""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


class MdrunError(RuntimeError):
    """An error mdrun reported (bad input, a model that cannot be loaded, ...), with its message."""


REDUCE = ctypes.CFUNCTYPE(None, ctypes.POINTER(ctypes.c_double), ctypes.c_size_t, ctypes.c_void_p)


class Structure(ctypes.Structure):
    _fields_ = [
        ("n_atoms", ctypes.c_size_t),
        ("n_owned", ctypes.c_size_t),
        ("positions", ctypes.c_void_p),
        ("types", ctypes.c_void_p),
        ("cell", ctypes.c_void_p),
        ("periodic", ctypes.c_int32 * 3),
        ("charge", ctypes.c_double),
        ("reduce", REDUCE),
        ("reduce_context", ctypes.c_void_p),
        ("exchange_forward", ctypes.c_void_p),
        ("exchange_reverse", ctypes.c_void_p),
        ("exchange_context", ctypes.c_void_p),
        ("same_atoms", ctypes.c_int32),
    ]


class Results(ctypes.Structure):
    _fields_ = [
        ("energy", ctypes.c_double),
        ("virial", ctypes.c_double * 9),
        ("forces", ctypes.c_void_p),
        ("atom_energies", ctypes.c_void_p),
        ("atom_virials", ctypes.c_void_p),
    ]


def library_path() -> Path:
    """MDRUN_LIBRARY if set (a development build: target/release/libmdrun.so), else the copy
    installed with the package."""
    explicit = os.environ.get("MDRUN_LIBRARY")
    if explicit:
        return Path(explicit)
    return HERE / "_lib" / "libmdrun.so"


def binary_path() -> Path:
    """MDRUN_BINARY if set, else the mdrun installed with the package (then the one on PATH)."""
    explicit = os.environ.get("MDRUN_BINARY")
    if explicit:
        return Path(explicit)
    shipped = HERE / "_lib" / "mdrun"
    if shipped.exists():
        return shipped
    import shutil

    found = shutil.which("mdrun")
    if found is None:
        raise MdrunError("no mdrun binary: reinstall the package (pip install ./python) or set MDRUN_BINARY")
    return Path(found)


_lib: ctypes.CDLL | None = None


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        path = library_path()
        if not path.exists():
            raise MdrunError(f"mdrun's library is missing at {path}: reinstall the package (pip install ./python) or set MDRUN_LIBRARY")
        l = ctypes.CDLL(str(path))
        l.mdrun_last_error.restype = ctypes.c_char_p
        l.mdrun_version.restype = ctypes.c_char_p
        l.mdrun_potential_load.restype = ctypes.c_void_p
        l.mdrun_potential_load.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
        l.mdrun_potential_free.argtypes = [ctypes.c_void_p]
        for name in ("mdrun_potential_cutoff", "mdrun_potential_receptive_field"):
            getattr(l, name).restype = ctypes.c_double
            getattr(l, name).argtypes = [ctypes.c_void_p]
        l.mdrun_potential_is_long_range.argtypes = [ctypes.c_void_p]
        l.mdrun_potential_describe.restype = ctypes.c_size_t
        l.mdrun_potential_describe.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        l.mdrun_potential_evaluate.argtypes = [ctypes.c_void_p, ctypes.POINTER(Structure), ctypes.POINTER(Results)]
        l.mdrun_potential_evaluate_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(Structure), ctypes.POINTER(Results), ctypes.c_size_t]
        _lib = l
    return _lib


def check(status: int) -> None:
    """Raises mdrun's own message when a call failed."""
    if status != 0:
        raise MdrunError(lib().mdrun_last_error().decode("utf-8", "replace"))


def last_error() -> str:
    return lib().mdrun_last_error().decode("utf-8", "replace")
