"""The ASE calculator: `atoms.calc = Calculator("potentials/water-schnet-mcgm-soft")`."""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.calculator import all_changes

from ._native import MdrunError
from .potential import Evaluation, Potential


class Calculator(AseCalculator):
    """An mdrun model as an ASE calculator: energy (= free_energy), forces, stress (periodic
    cells), per-atom energies and stresses.

    model: a folder (or model.json / model.safetensors) written by `mdrun train`.
    charge: the total charge (models with learned charges); default: atoms.info["charge"], else
    the sum of the initial charges.
    threads: the evaluation's thread pool, sized once per process (0: all cores).
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies", "stresses"]

    def __init__(self, model: "str | os.PathLike[str]", charge: Optional[float] = None, threads: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.model = os.fspath(model)
        self.charge = charge
        self.threads = threads
        # One loaded potential per set of elements (a model maps each host type to a species).
        self._potentials: Dict[Tuple[str, ...], Potential] = {}

    def potential_for(self, atoms: Atoms) -> Tuple[Potential, np.ndarray]:
        """The model loaded for these atoms' elements, and each atom's type (its element's
        place among them, by atomic number)."""
        numbers = atoms.numbers
        present = np.unique(numbers)
        elements = tuple(chemical_symbols[z] for z in present)
        if elements not in self._potentials:
            self._potentials[elements] = Potential(self.model, elements, self.threads)
        return self._potentials[elements], np.searchsorted(present, numbers).astype(np.int32)

    def _charge(self, atoms: Atoms) -> float:
        if self.charge is not None:
            return float(self.charge)
        if "charge" in atoms.info:
            return float(atoms.info["charge"])
        return float(np.sum(atoms.get_initial_charges()))

    def _inputs(self, atoms: Atoms):
        potential, types = self.potential_for(atoms)
        pbc = tuple(bool(p) for p in atoms.pbc)
        cell = np.asarray(atoms.cell[:], dtype=np.float64) if any(pbc) else None
        return potential, (atoms.positions, types, cell, pbc, self._charge(atoms))

    def _results(self, atoms: Atoms, out: Evaluation, per_atom: bool) -> dict:
        results = {"energy": out.energy, "free_energy": out.energy, "forces": out.forces}
        if all(atoms.pbc):
            volume = atoms.get_volume()
            # ASE's stress is dE/dε / V = -W / V (W = Σ r ⊗ f), Voigt order xx yy zz yz xz xy.
            results["stress"] = voigt(-out.virial / volume)
            if per_atom:
                results["stresses"] = np.array([voigt(-w / volume) for w in out.atom_virials])
        if per_atom:
            results["energies"] = out.atom_energies
        return results

    def calculate(self, atoms: Optional[Atoms] = None, properties: Sequence[str] = ("energy",), system_changes: Sequence[str] = all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if ("stress" in properties or "stresses" in properties) and not all(atoms.pbc):
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a cell periodic along all three axes")
        potential, inputs = self._inputs(atoms)
        per_atom = "energies" in properties or "stresses" in properties
        if per_atom and potential.long_range:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("per-atom energies of a model with learned charges: its Coulomb energy is not split per atom")
        out = potential.evaluate_batch([inputs], per_atom)[0]
        self.results = self._results(atoms, out, per_atom)

    def calculate_batch(self, images: Sequence[Atoms], per_atom: bool = False) -> List[dict]:
        """Energies, forces (and stresses of periodic cells) of many structures in one pass of the
        model per set of elements; returns one results dict per image, in order."""
        groups: Dict[int, list] = {}
        for k, atoms in enumerate(images):
            potential, inputs = self._inputs(atoms)
            groups.setdefault(id(potential), [potential, [], []])
            groups[id(potential)][1].append(k)
            groups[id(potential)][2].append(inputs)
        results: List[dict] = [{} for _ in images]
        for potential, indices, inputs in groups.values():
            for k, out in zip(indices, potential.evaluate_batch(inputs, per_atom)):
                results[k] = self._results(images[k], out, per_atom)
        return results


def voigt(t: np.ndarray) -> np.ndarray:
    return np.array([t[0, 0], t[1, 1], t[2, 2], t[1, 2], t[0, 2], t[0, 1]])


__all__ = ["Calculator", "MdrunError"]
