"""The Python package against mdrun itself and against ASE's own checks (run by tests/python_package.rs).

Environment: MDRUN_REPO (the repository), MDRUN_SCRATCH (a writable folder); the package is
importable and finds its library and binary (installed, or MDRUN_LIBRARY / MDRUN_BINARY).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from ase import units
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.io import read, write
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE

import mdrun
from mdrun import Calculator, MdrunError, Potential

REPO = Path(os.environ["MDRUN_REPO"])
SCRATCH = Path(os.environ["MDRUN_SCRATCH"])
MODEL = REPO / "potentials" / "water-schnet-mcgm-soft"
WATER = REPO / "systems" / "quickstart" / "water8.extxyz"


def check(condition, message):
    if not condition:
        raise AssertionError(message)
    print("ok:", message)


def mdrun_toml(name, steps, extra=""):
    toml = SCRATCH / f"{name}.toml"
    toml.write_text(f"""[structure]
file = "{WATER}"
[velocities]
source = "zero"
[potential]
type = "ml"
model = "{MODEL}"
[integrator]
type = "verlet"
timestep = "0.5 fs"
[run]
steps = {steps}
platform = "cpu"
[output]
thermo = 10
log = "{name}.log"
checkpoint = "{name}.ckpt"
{extra}""")
    return toml


def thermo(path):
    rows = [l.split() for l in Path(path).read_text().splitlines() if l.strip() and l.split()[0].isdigit()]
    return {int(r[0]): (float(r[3]), float(r[4])) for r in rows}


def energies_and_forces_equal_mdrun():
    atoms = read(WATER)
    atoms.calc = Calculator(MODEL)
    e = atoms.get_potential_energy()
    toml = mdrun_toml("step0", 0)
    mdrun.run(toml, quiet=True, output_dir=SCRATCH)
    pe0 = thermo(SCRATCH / "step0.log")[0][0]
    check(abs(e - pe0) < 1e-8 * abs(pe0) + 1e-9, f"energy equals mdrun's MD path: {e} vs {pe0}")
    # mdrun eval: the model's reference implementation (burn, f64) on several structures.
    frames = read(REPO / "potentials" / "data" / "water.extxyz", index=":6")
    data = SCRATCH / "frames.extxyz"
    write(data, frames)
    preds = SCRATCH / "preds.extxyz"
    mdrun.mdrun("eval", str(MODEL), str(data), "--predictions", str(preds), quiet=True)
    reference = read(preds, index=":")
    worst_e = worst_f = 0.0
    for frame, ref in zip(frames, reference):
        frame.calc = Calculator(MODEL)
        worst_e = max(worst_e, abs(frame.get_potential_energy() - ref.info["mdrun_energy"]) / len(frame))
        worst_f = max(worst_f, np.abs(frame.get_forces() - ref.arrays["mdrun_forces"]).max())
    check(worst_e < 1e-6 and worst_f < 5e-5, f"energies and forces equal mdrun eval's (f64 reference): {worst_e:.1e} eV/atom, {worst_f:.1e} eV/Å")


def finite_differences_agree():
    atoms = read(WATER)
    atoms.calc = Calculator(MODEL)
    f = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-3, iatoms=range(0, 24, 5))
    worst = np.abs(numeric - f[0:24:5]).max()
    check(worst < 5e-3, f"forces agree with ASE's central differences: {worst:.1e} eV/Å (largest {np.abs(f).max():.2f})")
    s = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps=1e-3, voigt=True)
    worst = np.abs(numeric - s).max()
    check(worst < 2e-4, f"stress agrees with ASE's central differences: {worst:.1e} eV/Å³ (largest {np.abs(s).max():.1e})")
    e_atoms = atoms.get_potential_energies()
    check(abs(e_atoms.sum() - atoms.get_potential_energy()) < 1e-9 * len(atoms) * 100, "per-atom energies sum to the energy")
    stresses = atoms.get_stresses()
    check(np.abs(stresses.sum(axis=0) - s).max() < 1e-9, "per-atom stresses sum to the stress")


def charge_equilibration_model():
    # A model whose charges come from charge equilibration (--long-range qeq): its forces are
    # the gradient of its energy through ASE too (the envelope theorem, with the solve's
    # conjugate gradients at every call), and the total charge reaches the constraint.
    atoms = read(REPO / "potentials" / "data" / "ionpair-test.extxyz", index="0")
    atoms.calc = Calculator(REPO / "potentials" / "ionpair-schnet-qeq")
    f = atoms.get_forces()
    numeric = calculate_numerical_forces(atoms, eps=1e-3)
    worst = np.abs(numeric - f).max()
    check(worst < 5e-3, f"Qeq forces agree with ASE's central differences: {worst:.1e} eV/Å (largest {np.abs(f).max():.2f})")
    neutral = atoms.get_potential_energy()
    charged = atoms.copy()
    charged.calc = Calculator(REPO / "potentials" / "ionpair-schnet-qeq", charge=1.0)
    e = charged.get_potential_energy()
    check(np.isfinite(e) and abs(e - neutral) > 1e-3, f"the total charge reaches the equilibration: {neutral:.4f} eV neutral, {e:.4f} eV at +1 e")


def velocity_verlet_follows_mdrun_nve():
    toml = mdrun_toml("nve", 100)
    mdrun.run(toml, quiet=True, output_dir=SCRATCH)
    reference = thermo(SCRATCH / "nve.log")
    atoms = read(WATER)
    atoms.calc = Calculator(MODEL)
    atoms.set_velocities(np.zeros((len(atoms), 3)))
    md = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    worst = 0.0
    for step in range(0, 101, 10):
        if step:
            md.run(10)
        pe, ke = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        worst = max(worst, abs(pe - reference[step][0]), abs(ke - reference[step][1]))
    moved = abs(reference[100][1])
    check(moved > 0.05 and worst < 1e-5, f"ASE VelocityVerlet follows mdrun's NVE for 100 steps: {worst:.1e} eV (kinetic energy reached {moved:.3f} eV)")


def drivers_and_optimisers_run():
    atoms = read(WATER)
    atoms.calc = Calculator(MODEL)
    e0 = atoms.get_potential_energy()
    for opt in (BFGS, FIRE):
        a = atoms.copy()
        a.calc = Calculator(MODEL)
        converged = opt(a, logfile=None).run(fmax=0.05, steps=1000)
        fmax = np.linalg.norm(a.get_forces(), axis=1).max()
        check(converged and fmax < 0.05 and a.get_potential_energy() < e0, f"{opt.__name__} converges: fmax {fmax:.3f} eV/Å, energy {e0:.3f} -> {a.get_potential_energy():.3f} eV")
    a = atoms.copy()
    a.calc = Calculator(MODEL)
    rng = np.random.default_rng(1)
    dyn = Langevin(a, timestep=0.5 * units.fs, temperature_K=300, friction=0.02, fixcm=False, rng=rng)
    dyn.run(200)
    t = a.get_temperature()
    check(50 < t < 800 and np.isfinite(a.get_potential_energy()), f"Langevin runs: {t:.0f} K after 200 steps")


def batches_and_arrays():
    frames = read(REPO / "potentials" / "data" / "water.extxyz", index=":5")
    calc = Calculator(MODEL)
    batch = calc.calculate_batch(frames, per_atom=True)
    for frame, res in zip(frames, batch):
        frame.calc = Calculator(MODEL)
        assert abs(frame.get_potential_energy() - res["energy"]) < 1e-8 * abs(res["energy"])
        assert np.abs(frame.get_forces() - res["forces"]).max() < 1e-6
        assert np.abs(frame.get_stress() - res["stress"]).max() < 1e-8
    check(True, "a batch equals the structures one by one")
    pot = Potential(MODEL, ["O", "H"])
    atoms = read(WATER)
    x = np.ascontiguousarray(atoms.positions)
    types = np.array([0 if s == "O" else 1 for s in atoms.get_chemical_symbols()], dtype=np.int32)
    out = pot.evaluate(x, types, atoms.cell[:], (True, True, True), per_atom=True)
    check(out.forces.shape == (24, 3) and out.atom_virials.shape == (24, 3, 3) and abs(out.atom_energies.sum() - out.energy) < 1e-6, "Potential.evaluate on numpy arrays")
    check(abs(pot.receptive_field - 15.0) < 1e-12 and pot.cutoff == 5.0 and "schnet" in pot.description, f"model facts: {pot.description}")


def errors_carry_mdruns_message():
    for call, expect in [
        (lambda: Calculator(REPO / "potentials" / "no-such-model").get_potential_energy(read(WATER)), "no-such-model"),
        (lambda: Potential(MODEL, ["O", "Xe"]), "Xe"),
        (lambda: Potential(MODEL, ["O", "H"]).evaluate(np.zeros((2, 3)), np.array([0, 5])), "type 5"),
        (lambda: mdrun.run(REPO / "no-such.toml", quiet=True), "no-such.toml"),
    ]:
        try:
            call()
        except MdrunError as e:
            check(expect in str(e), f"MdrunError names {expect}: {e}")
            continue
        raise AssertionError(f"no MdrunError naming {expect}")


def train_wrapper():
    data = SCRATCH / "train.extxyz"
    write(data, read(REPO / "potentials" / "data" / "water.extxyz", index=":8"))
    out = SCRATCH / "tiny-model"
    mdrun.train(train=data, valid=data, out=out, epochs=1, features=8, blocks=1, quiet=True)
    atoms = read(WATER)
    atoms.calc = Calculator(out)
    check(np.isfinite(atoms.get_potential_energy()), f"mdrun.train writes a model the calculator loads: {atoms.get_potential_energy():.2f} eV")


for test in [energies_and_forces_equal_mdrun, finite_differences_agree, charge_equilibration_model, velocity_verlet_follows_mdrun_nve, batches_and_arrays, errors_carry_mdruns_message, drivers_and_optimisers_run, train_wrapper]:
    print(f"--- {test.__name__}")
    test()
print("all passed")
