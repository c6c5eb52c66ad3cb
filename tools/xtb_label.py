#!/usr/bin/env python3
"""Labels frames with GFN2-xTB (tblite, through ASE): energies and forces of every frame of an
extended XYZ file, written as mdrun's training data. The labelling command of `mdrun learn`:

    label = "python3 tools/xtb_label.py {input} {output}"

Each frame keeps its cell and periodicity (`Lattice=`, `pbc=`) and its total charge (`charge=`,
default 0); `config_type=` says where it came from (default "labelled"). Periodic frames also
get the stress (`stress=`, 9 components, eV/Å³, ASE's sign: (1/V) dE/dε, negative under
compression), which `mdrun train` fits with `--stress-weight` so that a model's pressure, and
so its density in NPT, follows the reference. Any ASE calculator can
stand in for tblite: swap `calculator()` below (a DFT code for production data).

Usage (needs `pip install tblite ase numpy`):
    python3 tools/xtb_label.py frames.extxyz labelled.extxyz [--method GFN2-xTB]
"""

import argparse
import os
import sys

from ase.io import read
from tblite.ase import TBLite


def calculator(method, charge):
    return TBLite(method=method, charge=charge, verbosity=0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="frames to label (extended XYZ)")
    parser.add_argument("output", help="where the labelled frames go (extended XYZ)")
    parser.add_argument("--method", default="GFN2-xTB", help="tblite method (GFN2-xTB, GFN1-xTB)")
    parser.add_argument("--config-type", default="labelled", help="config_type= of frames that have none")
    args = parser.parse_args()
    frames = read(args.input, index=":", format="extxyz")
    part = args.output + ".writing"
    with open(part, "w") as out:
        for k, atoms in enumerate(frames):
            charge = float(atoms.info.get("charge", 0.0))
            atoms.calc = calculator(args.method, charge)
            # Plain floats: numpy 2's repr writes np.float64(...), which no XYZ reader takes.
            energy = float(atoms.get_potential_energy())
            forces = atoms.get_forces().tolist()
            label = atoms.info.get("config_type", args.config_type)
            out.write(f"{len(atoms)}\n")
            header = f"energy={energy!r} config_type={label} charge={charge!r} Properties=species:S:1:pos:R:3:forces:R:3"
            if atoms.pbc.all():
                stress = " ".join(repr(float(x)) for x in atoms.get_stress(voigt=False).flatten())
                header = f'stress="{stress}" ' + header
            if atoms.pbc.any():
                cell = " ".join(repr(float(x)) for x in atoms.cell.array.flatten())
                pbc = " ".join("T" if p else "F" for p in atoms.pbc)
                header = f'Lattice="{cell}" pbc="{pbc}" ' + header
            out.write(header + "\n")
            for s, r, f in zip(atoms.get_chemical_symbols(), atoms.positions.tolist(), forces):
                out.write(f"{s} {r[0]!r} {r[1]!r} {r[2]!r} {f[0]!r} {f[1]!r} {f[2]!r}\n")
            print(f"frame {k + 1}/{len(frames)}: E = {energy:.6f} eV", file=sys.stderr)
    # Whole or nothing: a labelling cut short leaves no output behind.
    os.replace(part, args.output)


if __name__ == "__main__":
    main()
