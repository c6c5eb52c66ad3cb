#!/usr/bin/env bash
# The LAMMPS LJ benchmark (32,000 atoms, 100 steps), mdrun against the real LAMMPS on this
# machine in the same run. Prints atom-steps per second and the ratios as a Markdown table.
#   benches/lj_vs_lammps.sh [repeats]        (needs ../shared/bench/lammps; best of `repeats`)
set -euo pipefail
repeats=${1:-3}
source "$(dirname "$0")/lammps_peer.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mdrun_rate() { # threads
  for _ in $(seq "$repeats"); do
    "$mdrun" "$root/systems/lj-bench/system.toml" --threads "$1" --quiet --output-dir "$tmp" --summary "$tmp/s.json"
    python3 -c "import json; print(json.load(open('$tmp/s.json'))['atom_steps_per_s'])"
  done | best
}

m1=$(mdrun_rate 1); m2=$(mdrun_rate 2)
l1=$(lammps_rate in.lj 1); lo=$(lammps_rate in.lj 1 -sf opt); l2=$(lammps_rate in.lj 2 -sf omp -pk omp 2)
c1=$(lammps_rate in.lj-checked 1); c2=$(lammps_rate in.lj-checked 2 -sf omp -pk omp 2)
echo "| run | threads | M atom-steps/s | mdrun / this |"
echo "|---|---|---|---|"
echo "| mdrun | 1 | $(fmt "$m1") | |"
echo "| mdrun | 2 | $(fmt "$m2") | |"
echo "| LAMMPS in.lj (plain) | 1 | $(fmt "$l1") | $(ratio "$m1" "$l1") (1 thread) |"
echo "| LAMMPS in.lj -sf opt | 1 | $(fmt "$lo") | $(ratio "$m1" "$lo") (1 thread) |"
echo "| LAMMPS in.lj -sf omp | 2 | $(fmt "$l2") | $(ratio "$m2" "$l2") (2 threads) |"
echo "| LAMMPS in.lj-checked (plain) | 1 | $(fmt "$c1") | $(ratio "$m1" "$c1") (1 thread) |"
echo "| LAMMPS in.lj-checked -sf omp | 2 | $(fmt "$c2") | $(ratio "$m2" "$c2") (2 threads) |"
