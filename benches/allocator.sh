#!/usr/bin/env bash
# mdrun's own allocator (src/memory.rs: large blocks mapped in huge pages and kept for reuse,
# the rest from glibc) against mimalloc (`--features mimalloc`), on the same machine, the two
# binaries alternating, REPEATS times each: the LAMMPS LJ benchmark (32,000 atoms, 100 steps),
# the quickstart (4,000 steps; 24-atom SchNet + MCGM water when the figures in BENCHMARKS.md were taken, 192-atom PaiNN committee since 2026-12-06), PaiNN water repeated to 1,536
# atoms (40 steps), and training (SchNet F = 32 on the 267 water frames, 3 epochs). Prints the
# median wall time of each and the ratio mimalloc / own.
#   benches/allocator.sh [repeats] [threads]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
repeats=${1:-3}
threads=${2:-$(nproc)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
work=$(mktemp -d)
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --features mimalloc
cp "$CARGO_TARGET_DIR/release/mdrun" "$work/mdrun-mimalloc"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
cp "$CARGO_TARGET_DIR/release/mdrun" "$work/mdrun-own"
source "$here/ml_system.sh"
mkdir -p "$work/painn"
ml_system_toml "$root/systems/quickstart/water8.extxyz" "$root/potentials/water-painn" 40 "4, 4, 4" 'platform = "cpu"' > "$work/painn/system.toml"
printf '[output]\nthermo = 20\nlog = "thermo.log"\ncheckpoint = "final.chk"\n' >> "$work/painn/system.toml"
seconds() { # command...: wall seconds
  local t0 t1
  t0=$(date +%s.%N)
  "$@" > /dev/null 2>&1
  t1=$(date +%s.%N)
  python3 -c "print($t1 - $t0)"
}
workload() { # binary name
  case $2 in
    lj) "$1" "$root/systems/lj-bench/system.toml" --threads "$threads" --quiet --platform cpu --output-dir "$work/lj" ;;
    quickstart) "$1" "$root/systems/quickstart/system.toml" --threads "$threads" --quiet --platform cpu --output-dir "$work/qs" ;;
    painn) "$1" "$work/painn/system.toml" --threads "$threads" --quiet ;;
    train) RAYON_NUM_THREADS=$threads "$1" train --train "$root/potentials/data/water.extxyz" --out "$work/model" --features 32 --epochs 3 ;;
  esac
}
echo "| workload | own allocator s | mimalloc s | mimalloc / own |"
echo "|---|---|---|---|"
for name in lj quickstart painn train; do
  own=(); mi=()
  for r in $(seq "$repeats"); do
    own+=("$(seconds workload "$work/mdrun-own" "$name")")
    mi+=("$(seconds workload "$work/mdrun-mimalloc" "$name")")
  done
  python3 - "$name" "${own[*]}" "${mi[*]}" <<'PY'
import statistics, sys
name, own, mi = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
o, m = statistics.median(own), statistics.median(mi)
print(f"| {name} | {o:.2f} ({min(own):.2f}-{max(own):.2f}) | {m:.2f} ({min(mi):.2f}-{max(mi):.2f}) | {m / o:.2f} |")
PY
done
