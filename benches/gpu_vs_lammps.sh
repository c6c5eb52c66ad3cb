#!/usr/bin/env bash
# The LAMMPS LJ benchmark system (fcc, density 0.8442, cutoff 2.5 sigma, skin 0.3 sigma, NVE,
# 0.005 tau) at 32k, 256k and 1M atoms: mdrun on every GPU adapter wgpu sees, against the real
# LAMMPS on this machine's CPU (all cores, -sf omp), in the same run. Prints a Markdown table.
#   benches/gpu_vs_lammps.sh [sizes]    sizes: LAMMPS x-scales, default "1 2 3.15"
#                                       (20^3, 40^3, 63^3 unit cells: 32,000 / 256,000 / 1,000,188)
# Steps: 100 for LAMMPS (its deck); for mdrun enough to take a few seconds (set MDRUN_STEPS).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
lammps=${LAMMPS:-$root/../shared/bench/lammps}
sizes=${1:-"1 2 3.15"}
threads=$(nproc)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

adapters=$("$mdrun" --list-devices | grep -E '^[0-9]+:' || true)
echo "adapters:"; echo "$adapters" | sed 's/^/  /'
echo

mdrun_rate() { # cells steps adapter-index|cpu
  sed -e "s/repeat = \[20, 20, 20\]/repeat = [$1, $1, $1]/" -e "s/^steps = 100/steps = $2/" \
      -e "s/^thermo = 50/thermo = $2/" "$root/systems/lj-bench/system.toml" > "$tmp/system.toml"
  if [ "$3" = cpu ]; then
    "$mdrun" "$tmp/system.toml" --platform cpu --quiet --output-dir "$tmp" --summary "$tmp/s.json"
  else
    MDRUN_GPU_ADAPTER=$3 "$mdrun" "$tmp/system.toml" --platform gpu --quiet --output-dir "$tmp" --summary "$tmp/s.json"
  fi
  python3 -c "import json; print(json.load(open('$tmp/s.json'))['atom_steps_per_s'])"
}
lammps_rate() { # x-scale
  (cd "$here/lammps" && OMP_NUM_THREADS=$threads "$lammps" run in.lj -var x "$1" -var y "$1" -var z "$1" -sf omp -pk omp "$threads") |
    awk '/Matom-step\/s/ { for (i = 1; i <= NF; i++) if ($i == "Matom-step/s") print $(i-1) * 1e6 }'
}

echo "| atoms | LAMMPS -sf omp, $threads threads (M atom-steps/s) | mdrun platform | mdrun (M atom-steps/s) | mdrun / LAMMPS |"
echo "|---|---|---|---|---|"
for x in $sizes; do
  cells=$(python3 -c "print(round(20 * $x))")
  atoms=$((4 * cells * cells * cells))
  l=$(lammps_rate "$x")
  steps=${MDRUN_STEPS:-$(python3 -c "print(max(10, min(200, round(4e6 / $atoms))))")}
  m=$(mdrun_rate "$cells" "$((steps * 10))" cpu)
  python3 -c "print(f'| {$atoms:,} | {$l / 1e6:.3f} | cpu, $threads threads | {$m / 1e6:.3f} | {$m / $l:.3f} |')"
  echo "$adapters" | while IFS= read -r line; do
    [ -n "$line" ] || continue
    index=${line%%:*}
    name=$(echo "${line#*: }" | sed 's/ (.*//')
    steps=${MDRUN_STEPS:-$(python3 -c "print(max(10, min(200, round(4e6 / $atoms))))")}
    m=$(mdrun_rate "$cells" "$steps" "$index")
    python3 -c "print(f'| {$atoms:,} | {$l / 1e6:.3f} | $name | {$m / 1e6:.3f} | {$m / $l:.3f} |')"
  done
done
