"""Per-call overhead of the ASE calculator against mdrun's own MD step, same model, same threads
(run by benches/plugin_scaling.sh): water from systems/quickstart tiled to ~100 and ~10,000
atoms; the calculator's time per energy+forces call (new positions every call, as in ASE MD)
against the time per step of `mdrun run` on the same structure (velocity Verlet, 2 threads)."""
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.io import read, write

from mdrun import Calculator

repo = Path(__file__).resolve().parent.parent
model = repo / "potentials" / "water-schnet-mcgm-soft"
base = read(repo / "systems" / "quickstart" / "water8.extxyz")
binary = os.environ.get("MDRUN_BINARY", "mdrun")
print(f"{'atoms':>8} {'ASE call (ms)':>14} {'mdrun step (ms)':>16} {'overhead':>9}")
for reps in [(2, 2, 1), (7, 7, 8)]:
    atoms = base.repeat(reps)
    calls = 40 if len(atoms) < 1000 else 10
    with tempfile.TemporaryDirectory() as d:
        write(f"{d}/s.extxyz", atoms)
        Path(f"{d}/s.toml").write_text(f"""[structure]
file = "s.extxyz"
[velocities]
source = "maxwell-boltzmann"
temperature = "300 K"
seed = 1
[potential]
type = "ml"
model = "{model}"
[integrator]
type = "verlet"
timestep = "0.25 fs"
[run]
steps = {calls * 5}
threads = 2
platform = "cpu"
[output]
thermo = {calls * 5}
""")
        subprocess.run([binary, "run", f"{d}/s.toml", "--quiet", "--summary", f"{d}/sum.json"], check=True)
        summary = json.loads(Path(f"{d}/sum.json").read_text())
    step = summary["wall_s"] / summary["steps"]
    atoms.calc = Calculator(model, threads=2)
    rng = np.random.default_rng(0)
    atoms.get_forces()
    start = time.perf_counter()
    for _ in range(calls):
        atoms.positions += rng.normal(scale=1e-3, size=atoms.positions.shape)
        atoms.get_forces()
    call = (time.perf_counter() - start) / calls
    print(f"{len(atoms):>8} {call * 1e3:>14.2f} {step * 1e3:>16.2f} {100 * (call / step - 1):>8.1f}%")
