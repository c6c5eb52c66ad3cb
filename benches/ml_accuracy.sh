#!/usr/bin/env bash
# Held-out energy and force errors of SchNet and PaiNN, each without MCGM and with MCGM hard
# and soft, on the long-range chain set and the periodic water set, all with the same training
# budget. Prints a Markdown table (validation = the seeded 10 % split).
#   benches/ml_accuracy.sh [epochs] [parallel jobs]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
epochs=${1:-60}
jobs=${2:-2}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$(mktemp -d)/mdrun
cp "$CARGO_TARGET_DIR/release/mdrun" "$bin"
out=$(mktemp -d)
runs=()
for data in chain water; do
  for backbone in schnet painn; do
    for mcgm in off hard soft; do
      runs+=("$data $backbone $mcgm")
    done
  done
done
printf '%s\n' "${runs[@]}" | xargs -P "$jobs" -L 1 bash -c '
  "$0" train --train "'"$root"'/potentials/data/$1.extxyz" --backbone "$2" --mcgm "$3" --epochs '"$epochs"' --patience 1000 --seed 1 --out "'"$out"'/$1-$2-$3" > "'"$out"'/$1-$2-$3.log" 2>&1
' "$bin"
echo "| data | backbone | MCGM | E MAE meV/atom | F MAE meV/Å | F RMSE meV/Å | structures/s |"
echo "|---|---|---|---|---|---|---|"
for run in "${runs[@]}"; do
  set -- $run
  log=$out/$1-$2-$3.log
  awk -v d="$1" -v b="$2" -v m="$3" '
    $1 == "all" { e = $3; f = $6; fr = $7 }
    /structures\/s;/ { for (i = 1; i <= NF; i++) if ($i == "structures/s;") s = $(i-1) }
    END { printf "| %s | %s | %s | %.3f | %.1f | %.1f | %s |\n", d, b, m, e, f, fr, s }' "$log"
done
