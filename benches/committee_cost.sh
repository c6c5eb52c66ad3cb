#!/usr/bin/env bash
# The cost of a committee in MD: potentials/water-schnet alone against a committee of 4 (four
# copies of it: the same arithmetic as four trained members) on the quickstart's water repeated
# to 192 and 768 atoms, on the CPU, with the committee's deviation computed at every 100th,
# 10th and every step (the thermo interval). Prints a Markdown table: ms per step and the ratio
# to the single model.
#   benches/committee_cost.sh [steps] [threads]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
steps=${1:-200}
threads=${2:-$(nproc)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/mdrun
source "$here/ml_system.sh"
work=$(mktemp -d)
committee=$work/committee
for k in 1 2 3 4; do
  mkdir -p "$committee/member-$k"
  cp "$root/potentials/water-schnet/model.json" "$root/potentials/water-schnet/model.safetensors" "$committee/member-$k/"
done
printf '{"format": "mdrun-committee", "members": ["member-1", "member-2", "member-3", "member-4"]}\n' > "$committee/committee.json"
run() { # name model repeat thermo
  local dir=$work/$1
  mkdir -p "$dir"
  ml_system_toml "$root/systems/quickstart/water8.extxyz" "$2" "$steps" "$3" 'platform = "cpu"' 'max_outside_rows = "off"' > "$dir/system.toml"
  printf '[output]\nthermo = %s\nlog = "thermo.log"\ncheckpoint = "final.chk"\n' "$4" >> "$dir/system.toml"
  "$bin" "$dir/system.toml" --threads "$threads" --quiet --summary "$dir/summary.json" > /dev/null 2> "$dir/stderr.log"
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(1e3*s['wall_s']/s['steps'])" "$dir/summary.json"
}
echo "| atoms | one model ms/step | committee of 4, deviation every 100 steps | every 10 | every step |"
echo "|---|---|---|---|---|"
for repeat in "2, 2, 2" "4, 4, 2"; do
  tag=${repeat//[, ]/}
  one=$(run one-$tag "$root/potentials/water-schnet" "$repeat" 100)
  row="| $((24 * ${tag:0:1} * ${tag:1:1} * ${tag:2:1})) | $(printf '%.2f' "$one")"
  for thermo in 100 10 1; do
    ms=$(run committee-$tag-$thermo "$committee" "$repeat" "$thermo")
    row="$row | $(printf '%.2f (%.2fx)' "$ms" "$(python3 -c "print($ms / $one)")")"
  done
  echo "$row |"
done
