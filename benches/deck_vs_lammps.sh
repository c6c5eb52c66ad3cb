#!/usr/bin/env bash
# `mdrun -in DECK` against LAMMPS on the same deck (default in.lj, LAMMPS's LJ benchmark, 32,000
# atoms, 100 steps; DECK=in.morse: a 32,000-atom Morse alloy), same machine, same run. Both
# print "Performance: ... Matom-step/s" for the run loop; this takes the best of `repeats` and
# prints a Markdown table with the ratios.
#   [DECK=in.morse] benches/deck_vs_lammps.sh [repeats]        (needs ../shared/bench/lammps)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lammps=${LAMMPS:-$root/../shared/bench/lammps}
repeats=${1:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun
name=${DECK:-in.lj}
deck=$here/lammps/$name

rate() { awk '/Matom-step\/s/ { for (i = 1; i <= NF; i++) if ($i == "Matom-step/s") print $(i-1) * 1e6 }'; }
best() { sort -g | tail -1; }
mdrun_rate() { # threads
  for _ in $(seq "$repeats"); do (cd "$here/lammps" && "$mdrun" -in "$deck" -log none -pk omp "$1") | rate; done | best
}
lammps_rate() { # threads, extra args
  local threads=$1; shift
  for _ in $(seq "$repeats"); do (cd "$here/lammps" && OMP_NUM_THREADS=$threads "$lammps" run "$deck" "$@") | rate; done | best
}
m1=$(mdrun_rate 1); m2=$(mdrun_rate 2)
l1=$(lammps_rate 1); lo=$(lammps_rate 1 -sf opt); l2=$(lammps_rate 2 -sf omp -pk omp 2)
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
fmt() { python3 -c "print(f'{$1 / 1e6:.3f}')"; }
echo "| run of $name | threads | M atom-steps/s | mdrun -in / this |"
echo "|---|---|---|---|"
echo "| mdrun -in $name | 1 | $(fmt "$m1") | |"
echo "| mdrun -in $name | 2 | $(fmt "$m2") | |"
echo "| lmp -in $name (plain) | 1 | $(fmt "$l1") | $(ratio "$m1" "$l1") (1 thread) |"
echo "| lmp -in $name -sf opt | 1 | $(fmt "$lo") | $(ratio "$m1" "$lo") (1 thread) |"
echo "| lmp -in $name -sf omp -pk omp 2 | 2 | $(fmt "$l2") | $(ratio "$m2" "$l2") (2 threads) |"
