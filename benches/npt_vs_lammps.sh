#!/usr/bin/env bash
# NPT against NVE on LAMMPS's LJ benchmark (32,000 atoms, 100 steps): `mdrun -in` and LAMMPS
# on in.lj (fix nve) and in.lj-npt (fix npt iso), same machine, same run, 1 and 2 threads.
# The question is whether mdrun's speed relative to LAMMPS holds when the barostat is on (the
# virial every step, the cell and the list's image shifts moving): it prints both ratios and
# their quotient as a Markdown table. Best of `repeats` runs each.
#   benches/npt_vs_lammps.sh [repeats]        (needs ../shared/bench/lammps)
set -euo pipefail
repeats=${1:-3}
source "$(dirname "$0")/lammps_peer.sh"

# LAMMPS with -sf omp beyond one thread.
lammps_omp_rate() { # deck, threads
  if [ "$2" -gt 1 ]; then lammps_rate "$1" "$2" -sf omp -pk omp "$2"; else lammps_rate "$1" "$2"; fi
}
echo "| threads | mdrun NVE | LAMMPS NVE | mdrun/LAMMPS NVE | mdrun NPT | LAMMPS NPT | mdrun/LAMMPS NPT | NPT ratio / NVE ratio |"
echo "|---|---|---|---|---|---|---|---|"
for t in 1 2; do
  mn=$(mdrun_deck_rate in.lj "$t"); ln=$(lammps_omp_rate in.lj "$t")
  mp=$(mdrun_deck_rate in.lj-npt "$t"); lp=$(lammps_omp_rate in.lj-npt "$t")
  rn=$(ratio "$mn" "$ln"); rp=$(ratio "$mp" "$lp")
  echo "| $t | $(fmt "$mn") | $(fmt "$ln") | $rn | $(fmt "$mp") | $(fmt "$lp") | $rp | $(ratio "$rp" "$rn") |"
done
echo
echo "(M atom-steps/s; LAMMPS with -sf omp at 2 threads)"
