#!/usr/bin/env python3
"""How much periodic GFN2-xTB depends on the box: the same water configuration as its small
periodic box and tiled 2x2x2 and 3x3x3 (the same crystal of copies, so every molecule has the
same environment). A reference computed in a box too small differs from the large-box value by
more than the model's error; this measures the difference, per frame, for energy per atom
(meV/atom) and forces (MAE, meV/Å, over the atoms of the first copy).

Usage (needs `pip install tblite ase numpy`):
    python3 tools/xtb_finite_size.py potentials/data/water.extxyz --frames 3 [--tilings 2,3]
"""

import argparse
import time

import numpy as np
from ase.io import read
from tblite.ase import TBLite


def single_point(atoms):
    atoms = atoms.copy()
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    t = time.time()
    energy = float(atoms.get_potential_energy())
    forces = np.array(atoms.get_forces())
    return energy, forces, time.time() - t


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="periodic frames (extended XYZ)")
    parser.add_argument("--frames", type=int, default=3, help="frames to measure, spread over the file")
    parser.add_argument("--tilings", default="2,3", help="tilings n (n x n x n copies) to compare with the box itself")
    args = parser.parse_args()
    frames = read(args.data, index=":")
    picks = np.linspace(0, len(frames) - 1, args.frames).round().astype(int)
    tilings = [int(n) for n in args.tilings.split(",")]
    print("| frame | atoms | box Å | E/atom − largest box's (meV/atom) | force MAE vs largest box (meV/Å) | xTB s |")
    print("|---|---|---|---|---|---|")
    for k in picks:
        small = frames[k]
        n0 = len(small)
        results = []
        for n in [1] + tilings:
            big = small.repeat((n, n, n))
            e, f, s = single_point(big)
            # ASE's repeat puts the first copy's atoms first.
            results.append((n, len(big), big.cell.lengths()[0], e / len(big), f[:n0], s))
        e_ref, f_ref = results[-1][3], results[-1][4]
        for n, atoms, box, e, f, s in results:
            print(f"| {k} | {atoms} | {box:.2f} | {1e3 * (e - e_ref):+.2f} | {1e3 * np.abs(f - f_ref).mean():.1f} | {s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
