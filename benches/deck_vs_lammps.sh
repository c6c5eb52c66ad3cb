#!/usr/bin/env bash
# `mdrun -in DECK` against LAMMPS on the same deck (default in.lj, LAMMPS's LJ benchmark, 32,000
# atoms, 100 steps; DECK=in.morse: a 32,000-atom Morse alloy), same machine, same run. Both
# print "Performance: ... Matom-step/s" for the run loop; this takes the best of `repeats` and
# prints a Markdown table with the ratios.
#   [DECK=in.morse] benches/deck_vs_lammps.sh [repeats]        (needs ../shared/bench/lammps)
set -euo pipefail
repeats=${1:-3}
source "$(dirname "$0")/lammps_peer.sh"
name=${DECK:-in.lj}
deck=$here/lammps/$name

m1=$(mdrun_deck_rate "$deck" 1); m2=$(mdrun_deck_rate "$deck" 2)
l1=$(lammps_rate "$deck" 1); lo=$(lammps_rate "$deck" 1 -sf opt); l2=$(lammps_rate "$deck" 2 -sf omp -pk omp 2)
echo "| run of $name | threads | M atom-steps/s | mdrun -in / this |"
echo "|---|---|---|---|"
echo "| mdrun -in $name | 1 | $(fmt "$m1") | |"
echo "| mdrun -in $name | 2 | $(fmt "$m2") | |"
echo "| lmp -in $name (plain) | 1 | $(fmt "$l1") | $(ratio "$m1" "$l1") (1 thread) |"
echo "| lmp -in $name -sf opt | 1 | $(fmt "$lo") | $(ratio "$m1" "$lo") (1 thread) |"
echo "| lmp -in $name -sf omp -pk omp 2 | 2 | $(fmt "$l2") | $(ratio "$m2" "$l2") (2 threads) |"
