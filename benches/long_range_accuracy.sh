#!/usr/bin/env bash
# Held-out errors with and without long range (issue 19): SchNet alone, + MCGM soft,
# + the distance-aware soft MCGM (soft-distance), + learned charges, + MCGM and charges, and
# PaiNN alone, + charges, + soft-distance and + both, SchNet and PaiNN with charges by charge
# equilibration (qeq), each trained alike on
#   ionpair: potentials/data/ionpair.extxyz (NH4+ with formate or acetate, 3.5-10 Å apart),
#            tested on potentials/data/ionpair-test.extxyz (other draws, another seed);
#   chain:   potentials/data/chain.extxyz (C10H2 / C10H3+), every 5th frame held out;
#   chain40: potentials/data/chain40.extxyz (C40H2 / C40H3+, 50 Å long), every 5th held out.
# SETS (environment, default all three) picks some, e.g. SETS="ionpair chain40"; MODELS picks
# the rows, "backbone mcgm long-range" separated by commas, e.g. MODELS="painn off qeq"
# (long range: off, charges, or qeq for charges by charge equilibration).
# Prints a Markdown table: energy MAE per structure (meV) and per atom, force MAE (meV/Å),
# training time. Models and logs stay in OUT.
#   benches/long_range_accuracy.sh [epochs] [parallel jobs] [OUT]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
epochs=${1:-200}
jobs=${2:-2}
out=${3:-$(mktemp -d)}
mkdir -p "$out"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$out/mdrun
cp "$CARGO_TARGET_DIR/release/mdrun" "$bin"
data=$root/potentials/data
cp "$data/ionpair.extxyz" "$out/ionpair-train.extxyz"
cp "$data/ionpair-test.extxyz" "$out/ionpair-test.extxyz"
# The chain sets: frame k is held out when k % 5 == 4.
for set in chain chain40; do
  awk -v train="$out/$set-train.extxyz" -v test="$out/$set-test.extxyz" '
    left == 0 { n = $1; left = n + 2; frame++ }
    { print > ((frame % 5 == 0) ? test : train); left-- }' "$data/$set.extxyz"
done
runs=()
models=${MODELS:-"schnet off off,schnet soft off,schnet soft-distance off,schnet off charges,schnet soft charges,schnet soft-distance charges,painn off off,painn off charges,painn soft-distance off,painn soft-distance charges,schnet off qeq,painn off qeq"}
IFS=, read -r -a models <<< "$models"
for set in ${SETS:-ionpair chain chain40}; do
  for model in "${models[@]}"; do
    runs+=("$set $model")
  done
done
printf '%s\n' "${runs[@]}" | xargs -P "$jobs" -L 1 bash -c '
  name="$1-$2-mcgm-$3-lr-$4"
  # soft-distance: the soft level with --mcgm-distance.
  mcgm=("--mcgm" "${3%-distance}")
  [ "$3" = soft-distance ] && mcgm+=("--mcgm-distance")
  start=$(date +%s.%N)
  "$0" train --train "'"$out"'/$1-train.extxyz" --backbone "$2" "${mcgm[@]}" --long-range "$4" --epochs '"$epochs"' --patience 40 --seed 1 --out "'"$out"'/$name" > "'"$out"'/$name.log" 2>&1
  awk -v a="$(date +%s.%N)" -v b="$start" "BEGIN { print a - b }" > "'"$out"'/$name.seconds"
  "$0" eval "'"$out"'/$name" "'"$out"'/$1-test.extxyz" --json > "'"$out"'/$name.json"
' "$bin"
echo "| data | backbone | MCGM | long range | E MAE meV/structure | E MAE meV/atom | F MAE meV/Å | training s |"
echo "|---|---|---|---|---|---|---|---|"
for run in "${runs[@]}"; do
  set -- $run
  name="$1-$2-mcgm-$3-lr-$4"
  python3 - "$out/$name.json" "$out/$name.seconds" "$1" "$2" "$3" "$4" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
seconds = float(open(sys.argv[2]).read())
print(f"| {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | {sys.argv[6]} | {1e3 * m['energy_mae_ev']:.1f} | {1e3 * m['energy_mae_ev_per_atom']:.2f} | {1e3 * m['force_mae_ev_per_a']:.1f} | {seconds:.0f} |")
EOF
done
