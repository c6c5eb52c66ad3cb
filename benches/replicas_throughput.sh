#!/usr/bin/env bash
# Throughput of `[run] replicas = N` against N: the quickstart's 8-water box (24 atoms) with a
# shipped SchNet model, NVE at 0.25 fs, every replica's graph evaluated in one batch per step
# (PLATFORM=cpu, the default) or every replica in every kernel of one GPU batch (PLATFORM=gpu).
# Prints atom-steps per second of all replicas together and the gain over one replica.
#   benches/replicas_throughput.sh [N...]        (default: 1 2 4 8 16 32)
# MODEL=DIR picks the model (default potentials/water-schnet-mcgm-soft); STEPS (default 400);
# THREADS (default: all cores).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
model=$(cd "${MODEL:-$root/potentials/water-schnet-mcgm-soft}" && pwd)
steps=${STEPS:-400}
platform=${PLATFORM:-cpu}
threads=${THREADS:-$(nproc)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun
source "$here/ml_system.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "model: $model, $steps steps, platform $platform, $threads threads, $(nproc) cores"
echo
echo "| replicas | atoms in all | wall s | atom-steps/s (all replicas) | vs 1 replica |"
echo "|---|---|---|---|---|"
base=""
for n in ${*:-1 2 4 8 16 32}; do
  {
    ml_system_toml "$root/systems/quickstart/water8.extxyz" "$model" "$steps" "" "replicas = $n" "platform = \"$platform\""
    printf '[output]\nthermo = %s\nlog = "thermo.log"\ncheckpoint = "final.chk"\n' "$steps"
  } > "$tmp/system.toml"
  "$mdrun" "$tmp/system.toml" --threads "$threads" --summary "$tmp/summary.json" --quiet 2>/dev/null
  read -r wall rate < <(python3 -c "
import json
s = json.load(open('$tmp/summary.json'))
s = s if isinstance(s, list) else [s]
wall = max(x['wall_s'] for x in s)
print(f'{wall:.3f}', f'{24 * $steps * len(s) / wall:.4g}')")
  [ -z "$base" ] && base=$rate
  echo "| $n | $((24 * n)) | $wall | $rate | $(python3 -c "print(f'{$rate / $base:.2f}x')") |"
done
