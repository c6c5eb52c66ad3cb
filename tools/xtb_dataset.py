#!/usr/bin/env python3
"""Generates GFN2-xTB reference data (energies and forces) as extended XYZ for `mdrun train`.

Runs Langevin MD with GFN2-xTB (tblite, through ASE) and keeps every `--stride`-th frame, with
the energy (eV) in the comment line and per-atom forces (eV/Å) as a `forces` column, the
conventions ASE and every MLIP code use. `config_type=` labels each structure type, which
`mdrun eval` reports separately.

Systems:
  chain    the Ko et al. (2021) test of long-range charge transfer: linear C10H2 (neutral)
           and C10H3+ (protonated at one end, charge +1). The far end of the chain sits beyond a
           5 Å cutoff from the proton, yet its forces differ between the two. `--carbons 40`:
           C40H2 / C40H3+, 50 Å long, beyond any receptive field of a few 5 Å blocks.
  water    a periodic box of 8 water molecules (cubic, 6.21 Å, 1 g/cm³).
  acetamide  one CH3CONH2 molecule in vacuum: four elements, so MCGM's hard hierarchy has a
           K-means level (2 clusters of the 4 element means) whose labels can flip in MD.
  ionpair  ion-pair dissociation curves (the long-range test): NH4+ with formate and NH4+ with
           acetate, the ions' centres 3.5-10 Å apart (the energy follows about -14.4/r eV past a
           5 Å cutoff), random orientations, internal geometries jiggled about the relaxed ions.
           The pair is neutral (charge=0); `config_type` names the pair.
  clusters charged sodium chloride clusters (Ko et al.'s Na8Cl8 / Na9Cl8+ test): a 2x2x4 rock-salt
           block, neutral, and the same with one more Na+ on an end face (charge +1),
           Langevin MD at 300 K.

Usage (needs `pip install tblite ase numpy`):
  tools/xtb_dataset.py chain --frames 200 --out data/chain.extxyz
  tools/xtb_dataset.py chain --carbons 40 --frames 150 --out data/chain40.extxyz
  tools/xtb_dataset.py water --frames 100 --out data/water.extxyz
  tools/xtb_dataset.py acetamide --frames 600 --out data/acetamide.extxyz
  tools/xtb_dataset.py ionpair --frames 300 --out data/ionpair.extxyz
  tools/xtb_dataset.py clusters --frames 150 --temperature 300 --out data/nacl-clusters.extxyz
"""
import argparse
import sys

import numpy as np
from ase import Atoms, units
from ase.build import molecule
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from tblite.ase import TBLite


def polyyne(protonated, carbons=10):
    """H-(C≡C)n-H along x (n = carbons / 2); with an extra H on the first carbon when protonated."""
    xs = [0.0, 1.06]  # H, then the first carbon
    for k in range(carbons - 1):
        xs.append(xs[-1] + (1.21 if k % 2 == 0 else 1.35))
    xs.append(xs[-1] + 1.06)  # the far H
    symbols = ["H"] + ["C"] * carbons + ["H"]
    positions = [(x, 0.0, 0.0) for x in xs]
    if protonated:
        symbols.append("H")
        positions.append((1.06, 1.08, 0.0))
    return Atoms(symbols, positions=positions)


def water_box(seed):
    rng = np.random.default_rng(seed)
    box = 6.21
    grid = [(i, j, k) for i in range(2) for j in range(2) for k in range(2)]
    symbols, positions = [], []
    for g in grid:
        centre = (np.array(g) + 0.5) * box / 2 + rng.normal(0, 0.1, 3)
        # An H2O with random orientation: O at the centre, H at 0.96 Å, 104.5°.
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        half = np.radians(104.5 / 2)
        h1 = q @ np.array([0.96 * np.sin(half), 0.96 * np.cos(half), 0.0])
        h2 = q @ np.array([-0.96 * np.sin(half), 0.96 * np.cos(half), 0.0])
        symbols += ["O", "H", "H"]
        positions += [centre, centre + h1, centre + h2]
    return Atoms(symbols, positions=positions, cell=[box] * 3, pbc=True)


def nacl_cluster(extra_sodium):
    """A 2x2x4 block of rock salt (2.82 Å apart); with `extra_sodium`, one more Na+ facing a Cl-
    on an end face."""
    symbols, positions = [], []
    for i in range(2):
        for j in range(2):
            for k in range(4):
                symbols.append("Na" if (i + j + k) % 2 == 0 else "Cl")
                positions.append((2.82 * i, 2.82 * j, 2.82 * k))
    if extra_sodium:
        # Over the Cl at (1, 0, 3) (i + j + k odd), one step further along z.
        symbols.append("Na")
        positions.append((2.82, 0.0, 2.82 * 4))
    return Atoms(symbols, positions=positions)


def relaxed_ion(name, charge):
    """A molecular ion relaxed with GFN2-xTB, centred on its heavy atoms' centroid."""
    from ase.optimize import BFGS
    if name == "NH4+":
        atoms = Atoms("NH4", positions=[(0, 0, 0), (0.63, 0.63, 0.63), (-0.63, -0.63, 0.63), (-0.63, 0.63, -0.63), (0.63, -0.63, -0.63)])
    elif name == "HCOO-":
        atoms = Atoms("CHOO", positions=[(0, 0, 0), (0, 0, 1.1), (1.1, 0, -0.6), (-1.1, 0, -0.6)])
    else:  # acetate CH3COO-
        atoms = Atoms("CCHHHOO", positions=[(0, 0, 0), (0, 0, 1.52), (0, 1.03, 1.9), (0.9, -0.5, 1.9), (-0.9, -0.5, 1.9), (1.1, 0, -0.6), (-1.1, 0, -0.6)])
    atoms.calc = TBLite(method="GFN2-xTB", charge=charge, verbosity=0)
    BFGS(atoms, logfile=None).run(fmax=0.01, steps=300)
    heavy = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s != "H"]
    atoms.positions -= atoms.positions[heavy].mean(axis=0)
    atoms.calc = None
    return atoms


def ion_pairs(frames, seed, out):
    """Dissociation curves: (cation, anion) at centre distances uniform in 3.5-10 Å."""
    rng = np.random.default_rng(seed)
    for anion in ["HCOO-", "CH3COO-"]:
        cation, anion_atoms = relaxed_ion("NH4+", 1), relaxed_ion(anion, -1)
        label = f"NH4+/{anion}"
        n = 0
        while n < frames:
            d = rng.uniform(3.5, 10.0)
            parts = []
            for ion, shift in [(cation, 0.0), (anion_atoms, d)]:
                q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
                part = ion.copy()
                part.positions = part.positions @ q.T + rng.normal(0, 0.04, part.positions.shape) + [shift, 0, 0]
                parts.append(part)
            # Ions in contact (closer than 1.6 Å) would transfer a proton: not a dissociation curve.
            gap = np.linalg.norm(parts[0].positions[:, None] - parts[1].positions[None], axis=2).min()
            if gap < 1.6:
                continue
            atoms = parts[0] + parts[1]
            atoms.calc = TBLite(method="GFN2-xTB", charge=0, verbosity=0, max_iterations=500)
            try:
                energy = atoms.get_potential_energy()
                forces = atoms.get_forces()
            except Exception as e:  # an SCF that does not converge labels nothing
                print(f"{label}: skipped d = {d:.2f} Å ({e})", file=sys.stderr)
                continue
            n += 1
            write_frame(out, atoms, energy, forces, label, 0)
            print(f"{label}: frame {n}/{frames}, d = {d:.2f} Å, E = {energy:.4f} eV", file=sys.stderr)


def sample(atoms, charge, frames, stride, temperature, seed, label, out):
    atoms.calc = TBLite(method="GFN2-xTB", charge=charge, verbosity=0)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed))
    dyn = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.02, rng=np.random.default_rng(seed + 1))
    dyn.run(100)  # leave the starting geometry
    for n in range(frames):
        dyn.run(stride)
        energy = atoms.get_potential_energy()
        forces = atoms.get_forces()
        write_frame(out, atoms, energy, forces, label, charge)
        print(f"{label}: frame {n + 1}/{frames}, E = {energy:.4f} eV", file=sys.stderr)


def write_frame(out, atoms, energy, forces, label, charge):
    out.write(f"{len(atoms)}\n")
    header = f'energy={energy:.10f} config_type={label} charge={charge} Properties=species:S:1:pos:R:3:forces:R:3'
    if atoms.pbc.any():
        cell = " ".join(f"{x:.10f}" for x in atoms.cell.array.flatten())
        pbc = " ".join("T" if p else "F" for p in atoms.pbc)
        header = f'Lattice="{cell}" pbc="{pbc}" ' + header
    out.write(header + "\n")
    for s, r, f in zip(atoms.get_chemical_symbols(), atoms.positions, forces):
        out.write(f"{s} {r[0]:.10f} {r[1]:.10f} {r[2]:.10f} {f[0]:.10f} {f[1]:.10f} {f[2]:.10f}\n")
    out.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=["chain", "water", "acetamide", "ionpair", "clusters"])
    parser.add_argument("--frames", type=int, default=100, help="frames per structure type")
    parser.add_argument("--stride", type=int, default=10, help="MD steps between kept frames")
    parser.add_argument("--temperature", type=float, default=500.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--carbons", type=int, default=10, help="chain: carbons (even)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.out, "w") as out:
        if args.system == "chain":
            n = args.carbons
            if n < 2 or n % 2:
                parser.error(f"--carbons {n}: expected an even number of at least 2")
            sample(polyyne(False, n), 0, args.frames, args.stride, args.temperature, args.seed, f"C{n}H2", out)
            sample(polyyne(True, n), 1, args.frames, args.stride, args.temperature, args.seed + 10, f"C{n}H3+", out)
        elif args.system == "clusters":
            sample(nacl_cluster(False), 0, args.frames, args.stride, args.temperature, args.seed, "Na8Cl8", out)
            sample(nacl_cluster(True), 1, args.frames, args.stride, args.temperature, args.seed + 10, "Na9Cl8+", out)
        elif args.system == "ionpair":
            ion_pairs(args.frames, args.seed, out)
        elif args.system == "acetamide":
            sample(molecule("CH3CONH2"), 0, args.frames, args.stride, args.temperature, args.seed, "acetamide", out)
        else:
            sample(water_box(args.seed), 0, args.frames, args.stride, args.temperature, args.seed, "water", out)


if __name__ == "__main__":
    main()
