#!/usr/bin/env python3
"""The ion-pair dissociation curves of the held-out set: GFN2-xTB against SchNet without and
with learned charges (predictions from `mdrun eval --predictions`). Needs ase and matplotlib.
  benches/plot_ion_pair.py LOCAL.extxyz CHARGES.extxyz OUT.png"""
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from ase.io import read

local, charges, out = sys.argv[1:4]
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
for pair, marker in [("NH4+/HCOO-", "o"), ("NH4+/CH3COO-", "s")]:
    rows = []
    for a, b in zip(read(local, ":"), read(charges, ":")):
        if a.info["config_type"] != pair:
            continue
        d = np.linalg.norm(a.positions[5] - a.positions[0])  # N (first) to the carboxylate side's first heavy atom
        rows.append((d, a.get_potential_energy(), a.info["mdrun_energy"], b.info["mdrun_energy"]))
    d, ref, e_local, e_charges = map(np.array, zip(*sorted(rows)))
    shift = ref[d > 9].mean()
    axes[0].plot(d, ref - shift, marker, color="black", ms=4, label=f"GFN2-xTB {pair}")
    axes[0].plot(d, e_local - shift, marker, mfc="none", color="tab:red", ms=5, label=f"SchNet local {pair}")
    axes[0].plot(d, e_charges - shift, marker, mfc="none", color="tab:blue", ms=5, label=f"SchNet + charges {pair}")
    axes[1].plot(d, 1e3 * (e_local - ref), marker, mfc="none", color="tab:red", ms=5, label=f"local {pair}")
    axes[1].plot(d, 1e3 * (e_charges - ref), marker, mfc="none", color="tab:blue", ms=5, label=f"+ charges {pair}")
r = np.linspace(3.5, 10, 100)
axes[0].plot(r, -14.4 / r + 14.4 / 9.5, "--", color="gray", lw=1, label="-14.4/r (shifted)")
axes[0].axvline(5.0, color="gray", lw=0.5)
axes[1].axvline(5.0, color="gray", lw=0.5)
axes[0].set(xlabel="N to first anion atom distance (Å)", ylabel="E - E(d > 9 Å) (eV)", title="Held-out ion-pair curves")
axes[1].set(xlabel="N to first anion atom distance (Å)", ylabel="predicted - reference (meV)", title="Energy error per structure")
axes[0].legend(fontsize=7)
axes[1].legend(fontsize=7)
fig.tight_layout()
fig.savefig(out, dpi=120)
