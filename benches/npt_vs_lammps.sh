#!/usr/bin/env bash
# NPT against NVE on LAMMPS's LJ benchmark (32,000 atoms, 100 steps): `mdrun -in` and LAMMPS
# on in.lj (fix nve) and in.lj-npt (fix npt iso), same machine, same run, 1 and 2 threads.
# The question is whether mdrun's speed relative to LAMMPS holds when the barostat is on (the
# virial every step, the cell and the list's image shifts moving): it prints both ratios and
# their quotient as a Markdown table. Best of `repeats` runs each.
#   benches/npt_vs_lammps.sh [repeats]        (needs ../shared/bench/lammps)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lammps=${LAMMPS:-$root/../shared/bench/lammps}
repeats=${1:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun

rate() { awk '/Matom-step\/s/ { for (i = 1; i <= NF; i++) if ($i == "Matom-step/s") print $(i-1) * 1e6 }'; }
best() { sort -g | tail -1; }
mdrun_rate() { # deck, threads
  for _ in $(seq "$repeats"); do (cd "$here/lammps" && "$mdrun" -in "$1" -log none -pk omp "$2") | rate; done | best
}
lammps_rate() { # deck, threads
  local extra=(); [ "$2" -gt 1 ] && extra=(-sf omp -pk omp "$2")
  for _ in $(seq "$repeats"); do (cd "$here/lammps" && OMP_NUM_THREADS=$2 "$lammps" run "$1" "${extra[@]}") | rate; done | best
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
fmt() { python3 -c "print(f'{$1 / 1e6:.3f}')"; }
echo "| threads | mdrun NVE | LAMMPS NVE | mdrun/LAMMPS NVE | mdrun NPT | LAMMPS NPT | mdrun/LAMMPS NPT | NPT ratio / NVE ratio |"
echo "|---|---|---|---|---|---|---|---|"
for t in 1 2; do
  mn=$(mdrun_rate in.lj "$t"); ln=$(lammps_rate in.lj "$t")
  mp=$(mdrun_rate in.lj-npt "$t"); lp=$(lammps_rate in.lj-npt "$t")
  rn=$(ratio "$mn" "$ln"); rp=$(ratio "$mp" "$lp")
  echo "| $t | $(fmt "$mn") | $(fmt "$ln") | $rn | $(fmt "$mp") | $(fmt "$lp") | $rp | $(ratio "$rp" "$rn") |"
done
echo
echo "(M atom-steps/s; LAMMPS with -sf omp at 2 threads)"
