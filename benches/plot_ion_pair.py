#!/usr/bin/env python3
"""The ion-pair dissociation curves of the held-out set: GFN2-xTB against each model's
predictions (from `mdrun eval --predictions`). Needs ase and matplotlib.
  benches/plot_ion_pair.py OUT.png "SchNet local=LOCAL.extxyz" "SchNet + charges=CHARGES.extxyz" ..."""
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from ase.io import read

out = sys.argv[1]
models = [arg.split("=", 1) for arg in sys.argv[2:]]
if not models or any(len(m) != 2 for m in models):
    sys.exit(__doc__)
frames = {label: read(path, ":") for label, path in models}
colors = ["tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for pair, marker in [("NH4+/HCOO-", "o"), ("NH4+/CH3COO-", "s")]:
    reference = [a for a in frames[models[0][0]] if a.info["config_type"] == pair]
    # N (first atom) to the carboxylate side's first heavy atom (atom 5).
    d = np.array([np.linalg.norm(a.positions[5] - a.positions[0]) for a in reference])
    order = np.argsort(d)
    d = d[order]
    ref = np.array([a.get_potential_energy() for a in reference])[order]
    shift = ref[d > 9].mean()
    axes[0].plot(d, ref - shift, marker, color="black", ms=4, label=f"GFN2-xTB {pair}")
    for (label, _), color in zip(models, colors):
        predicted = np.array([a.info["mdrun_energy"] for a in frames[label] if a.info["config_type"] == pair])[order]
        axes[0].plot(d, predicted - shift, marker, mfc="none", color=color, ms=5, label=f"{label} {pair}")
        axes[1].plot(d, 1e3 * (predicted - ref), marker, mfc="none", color=color, ms=5, label=f"{label} {pair}")
r = np.linspace(3.5, 10, 100)
axes[0].plot(r, -14.4 / r + 14.4 / 9.5, "--", color="gray", lw=1, label="-14.4/r (shifted)")
axes[0].axvline(5.0, color="gray", lw=0.5)
axes[1].axvline(5.0, color="gray", lw=0.5)
axes[0].set(xlabel="N to first anion atom distance (Å)", ylabel="E - E(d > 9 Å) (eV)", title="Held-out ion-pair curves")
axes[1].set(xlabel="N to first anion atom distance (Å)", ylabel="predicted - reference (meV)", title="Energy error per structure")
axes[0].legend(fontsize=6)
axes[1].legend(fontsize=6)
fig.tight_layout()
fig.savefig(out, dpi=120)
