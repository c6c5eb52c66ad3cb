"""g(r) and MSD of an extended XYZ trajectory by MDAnalysis, as CSV fixtures for tests/analysis.rs.

usage: fixtures.py TRAJECTORY.xyz OUT_DIR
The cell comes from the Lattice= of the first frame (cubic here): MDAnalysis's XYZ reader
ignores it.
"""
import re
import sys

import MDAnalysis as mda
import numpy as np
from MDAnalysis.analysis.msd import EinsteinMSD
from MDAnalysis.analysis.rdf import InterRDF

traj, out = sys.argv[1], sys.argv[2]
with open(traj) as f:
    f.readline()
    lattice = [float(x) for x in re.search(r'Lattice="([^"]+)"', f.readline()).group(1).split()]
box = [lattice[0], lattice[4], lattice[8], 90.0, 90.0, 90.0]

u = mda.Universe(traj, format="XYZ", dt=0.5)
everything = u.atoms
u.trajectory.add_transformations(lambda ts: (setattr(ts, "dimensions", box), ts)[1])
rdf = InterRDF(everything, everything, nbins=80, range=(0.0, 8.0), exclusion_block=(1, 1)).run()
np.savetxt(f"{out}/mdanalysis_rdf.csv", np.column_stack([rdf.results.bins, rdf.results.rdf]),
           delimiter=",", header="r,g", comments="", fmt="%.10e")

msd = EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run()
lags = np.arange(len(msd.results.timeseries)) * 0.5
np.savetxt(f"{out}/mdanalysis_msd.csv", np.column_stack([lags, msd.results.timeseries]),
           delimiter=",", header="t_ps,msd_a2", comments="", fmt="%.10e")
print(f"{len(u.trajectory)} frames of {len(u.atoms)} atoms: wrote {out}/mdanalysis_rdf.csv, mdanalysis_msd.csv")
