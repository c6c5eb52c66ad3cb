"""A learned mdrun potential evaluated in this process, one structure or a batch at a time."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import numpy as np

from . import _native
from ._native import MdrunError


@dataclass
class Evaluation:
    """One structure's results. virial: 3x3, sum of r (x) f (LAMMPS's sign), eV; atom_energies
    and atom_virials (n, 3, 3) only when asked for (per_atom=True)."""

    energy: float
    forces: np.ndarray
    virial: np.ndarray
    atom_energies: Optional[np.ndarray] = None
    atom_virials: Optional[np.ndarray] = None


class Potential:
    """A model written by `mdrun train` (its folder, model.json or model.safetensors), loaded for
    atoms of the elements `species` (type k of `evaluate` is species[k]).

    threads: the evaluation's thread pool, sized by the first load in the process (0: all cores).
    """

    def __init__(self, model: "str | os.PathLike[str]", species: Sequence[str], threads: int = 0):
        self.species = [str(s) for s in species]
        self.model = os.fspath(model)
        lib = _native.lib()
        handle = lib.mdrun_potential_load(self.model.encode(), " ".join(self.species).encode(), threads)
        if not handle:
            raise MdrunError(_native.last_error())
        self._handle = ctypes.c_void_p(handle)
        self.cutoff: float = lib.mdrun_potential_cutoff(self._handle)
        self.receptive_field: float = lib.mdrun_potential_receptive_field(self._handle)
        self.long_range: bool = bool(lib.mdrun_potential_is_long_range(self._handle))
        size = lib.mdrun_potential_describe(self._handle, None, 0)
        text = ctypes.create_string_buffer(size + 1)
        lib.mdrun_potential_describe(self._handle, text, size + 1)
        self.description: str = text.value.decode()

    def __del__(self):
        handle = getattr(self, "_handle", None)
        if handle is not None and handle.value:
            _native.lib().mdrun_potential_free(handle)
            self._handle = None

    def evaluate(
        self,
        positions: np.ndarray,
        types: np.ndarray,
        cell: Optional[np.ndarray] = None,
        pbc: Tuple[bool, bool, bool] = (False, False, False),
        charge: float = 0.0,
        per_atom: bool = False,
    ) -> Evaluation:
        """positions (n, 3) Å, types (n,) indices into `species`, cell (3, 3) rows = cell vectors."""
        return self.evaluate_batch([(positions, types, cell, pbc, charge)], per_atom)[0]

    def evaluate_batch(self, structures: Sequence[tuple], per_atom: bool = False) -> list:
        """Many structures in one pass of the model: each (positions, types, cell, pbc[, charge])."""
        count = len(structures)
        if count == 0:
            return []
        c_structures = (_native.Structure * count)()
        c_results = (_native.Results * count)()
        keep = []  # the arrays the C side reads and writes, alive until it returns
        outputs = []
        for k, item in enumerate(structures):
            positions, types, cell, pbc = item[:4]
            charge = float(item[4]) if len(item) > 4 else 0.0
            # No copy when the caller's arrays are already contiguous float64 / int32.
            x = np.ascontiguousarray(positions, dtype=np.float64)
            t = np.ascontiguousarray(types, dtype=np.int32)
            if x.ndim != 2 or x.shape[1] != 3:
                raise MdrunError(f"structure {k}: positions must be (n, 3), not {x.shape}")
            if t.shape != (x.shape[0],):
                raise MdrunError(f"structure {k}: {x.shape[0]} positions but types of shape {t.shape}")
            n = x.shape[0]
            s = c_structures[k]
            s.n_atoms = s.n_owned = n
            s.positions = x.ctypes.data
            s.types = t.ctypes.data
            flags = [bool(p) for p in (pbc if np.ndim(pbc) else (pbc,) * 3)]
            if cell is not None and any(flags):
                h = np.ascontiguousarray(cell, dtype=np.float64).reshape(3, 3)
                keep.append(h)
                s.cell = h.ctypes.data
            for a in range(3):
                s.periodic[a] = int(flags[a])
            s.charge = charge
            out = Evaluation(0.0, np.empty((n, 3)), np.empty((3, 3)))
            r = c_results[k]
            r.forces = out.forces.ctypes.data
            if per_atom:
                out.atom_energies = np.empty(n)
                out.atom_virials = np.empty((n, 3, 3))
                r.atom_energies = out.atom_energies.ctypes.data
                r.atom_virials = out.atom_virials.ctypes.data
            keep += [x, t]
            outputs.append(out)
        if count == 1:
            status = _native.lib().mdrun_potential_evaluate(self._handle, c_structures, c_results)
        else:
            status = _native.lib().mdrun_potential_evaluate_batch(self._handle, c_structures, c_results, count)
        _native.check(status)
        for out, r in zip(outputs, c_results):
            out.energy = r.energy
            out.virial = np.array(r.virial[:]).reshape(3, 3)
        return outputs
