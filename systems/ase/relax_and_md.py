"""mdrun's shipped water model in ASE: relax 8 water molecules with BFGS, then run Langevin MD
at 300 K and velocity Verlet, writing the trajectory and printing energies as it goes.

    pip install ./python ase         # once (builds mdrun's library with cargo)
    python systems/ase/relax_and_md.py [STEPS]

Outputs go to systems/ase/out/ (relaxed.extxyz, md.traj).
"""
import sys
from pathlib import Path

import numpy as np
from ase import units
from ase.io import read, write
from ase.io.trajectory import Trajectory
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from mdrun import Calculator

here = Path(__file__).resolve().parent
repo = here.parent.parent
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 400
out = here / "out"
out.mkdir(exist_ok=True)

atoms = read(repo / "systems" / "quickstart" / "water8.extxyz")
atoms.calc = Calculator(repo / "potentials" / "water-schnet-mcgm-soft")
print(f"start: E = {atoms.get_potential_energy():.4f} eV, max force {np.linalg.norm(atoms.get_forces(), axis=1).max():.3f} eV/Å")

BFGS(atoms, logfile=None).run(fmax=0.05, steps=500)
fmax = np.linalg.norm(atoms.get_forces(), axis=1).max()
print(f"relaxed (BFGS): E = {atoms.get_potential_energy():.4f} eV, max force {fmax:.3f} eV/Å, stress {atoms.get_stress()[:3].mean() / units.GPa:.3f} GPa")
write(out / "relaxed.extxyz", atoms)

MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(7))
trajectory = Trajectory(out / "md.traj", "w", atoms)
thermostat = Langevin(atoms, timestep=0.5 * units.fs, temperature_K=300, friction=0.01, fixcm=False, rng=np.random.default_rng(8))
thermostat.attach(trajectory.write, interval=20)
thermostat.run(steps)
print(f"Langevin {steps} steps: T = {atoms.get_temperature():.0f} K")

nve = VelocityVerlet(atoms, timestep=0.5 * units.fs)
energies = []
nve.attach(lambda: energies.append(atoms.get_total_energy()), interval=10)
nve.run(steps)
drift = max(energies) - min(energies)
print(f"velocity Verlet {steps} steps: total energy spread {drift * 1000:.2f} meV ({drift / len(atoms) * 1000:.3f} meV/atom)")
if not (fmax < 0.05 and drift / len(atoms) < 0.01):
    sys.exit("the example did not relax or did not conserve energy")
