"""MDAnalysis's g(r) (InterRDF, 200 bins to 10 Å, self pairs excluded) and MSD (EinsteinMSD,
FFT) of a DCD trajectory, timed; prints the seconds of each as 'rdf_s msd_s' (with a third
argument "msd", g(r) is skipped and reported as 0)."""
import sys
import time

import MDAnalysis as mda
from MDAnalysis.analysis.msd import EinsteinMSD
from MDAnalysis.analysis.rdf import InterRDF

path = sys.argv[1]
n_atoms = int(sys.argv[2])
# A DCD has no topology: an empty universe with n atoms, coordinates from the DCD.
u = mda.Universe.empty(n_atoms, trajectory=True)
u.load_new(path, format="DCD")
t0 = time.perf_counter()
if sys.argv[3:] != ["msd"]:
    InterRDF(u.atoms, u.atoms, nbins=200, range=(0.0, 10.0), exclusion_block=(1, 1)).run()
t1 = time.perf_counter()
EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run()
t2 = time.perf_counter()
print(f"{t1 - t0:.3f} {t2 - t1:.3f}")
