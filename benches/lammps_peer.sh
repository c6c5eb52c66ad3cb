# Sourced by the benchmarks that run mdrun and the real LAMMPS in the same run
# (lj_vs_lammps.sh, deck_vs_lammps.sh, npt_vs_lammps.sh): builds mdrun and defines how their
# rates are read and compared. Expects `repeats` set by the caller.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
lammps=${LAMMPS:-$root/../shared/bench/lammps}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun

# Atom-steps per second from a "Performance: ... Matom-step/s" line (mdrun -in and lmp alike).
rate() { awk '/Matom-step\/s/ { for (i = 1; i <= NF; i++) if ($i == "Matom-step/s") print $(i-1) * 1e6 }'; }
best() { sort -g | tail -1; }
# mdrun -in DECK (in benches/lammps) on THREADS threads, best of `repeats`.
mdrun_deck_rate() { # deck, threads
  for _ in $(seq "$repeats"); do (cd "$here/lammps" && "$mdrun" -in "$1" -log none -pk omp "$2") | rate; done | best
}
# LAMMPS on DECK with THREADS OpenMP threads and any extra lmp arguments, best of `repeats`.
lammps_rate() { # deck, threads, extra args
  local deck=$1 threads=$2; shift 2
  for _ in $(seq "$repeats"); do (cd "$here/lammps" && OMP_NUM_THREADS=$threads "$lammps" run "$deck" "$@") | rate; done | best
}
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
fmt() { python3 -c "print(f'{$1 / 1e6:.3f}')"; }
