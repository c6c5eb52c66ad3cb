#!/usr/bin/env bash
# The cost of long range in MD: the same SchNet trained on the ion-pair set with and without
# learned charges (potentials/ionpair-schnet, potentials/ionpair-schnet-charges), on the periodic
# ion-pair lattice (systems/ionpair/ion-lattice.extxyz, 9 atoms per cell) repeated to about
# 1,000, 3,000 and 10,000 atoms, on the CPU. Prints a Markdown table: ms per step of each and
# their ratio, and the share of the long-range stage (charge head + Ewald).
# Then the same blocks cut out as open clusters (pbc false: the charges' direct sum, O(N²)),
# with the distance-aware MCGM model (potentials/ionpair-schnet-distance) beside them.
#   benches/long_range_md.sh [steps] [threads]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
steps=${1:-20}
threads=${2:-$(nproc)}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/mdrun
source "$here/ml_system.sh"
work=$(mktemp -d)
echo "| atoms | local ms/step | charges ms/step | ratio | long-range stage ms/step |"
echo "|---|---|---|---|---|"
for repeat in "5, 5, 4" "8, 8, 5" "11, 11, 9"; do
  for model in ionpair-schnet ionpair-schnet-charges; do
    dir=$work/$model-${repeat//[, ]/}
    mkdir -p "$dir"
    ml_system_toml "$root/systems/ionpair/ion-lattice.extxyz" "$root/potentials/$model" "$steps" "$repeat" 'platform = "cpu"' > "$dir/system.toml"
    "$bin" "$dir/system.toml" --threads "$threads" --quiet --summary "$dir/summary.json" > /dev/null 2> "$dir/stderr.log"
  done
  python3 - "$work" "${repeat//[, ]/}" <<'EOF'
import json, sys
work, tag = sys.argv[1], sys.argv[2]
local = json.load(open(f"{work}/ionpair-schnet-{tag}/summary.json"))
charges = json.load(open(f"{work}/ionpair-schnet-charges-{tag}/summary.json"))
ms = lambda s: 1e3 * s["wall_s"] / s["steps"]
stage = dict(charges["force_stages_s"]).get("long range", 0.0) * 1e3 / charges["steps"]
print(f"| {local['n_atoms']} | {ms(local):.1f} | {ms(charges):.1f} | {ms(charges) / ms(local):.2f} | {stage:.1f} |")
EOF
done
echo
echo "Open clusters (no periodic images):"
echo "| atoms | local ms/step | charges ms/step | ratio | distance-aware MCGM ms/step | ratio |"
echo "|---|---|---|---|---|---|"
for repeat in "5, 5, 4" "8, 8, 5" "11, 11, 9"; do
  for model in ionpair-schnet ionpair-schnet-charges ionpair-schnet-distance; do
    dir=$work/open-$model-${repeat//[, ]/}
    mkdir -p "$dir"
    ml_system_toml "$root/systems/ionpair/ion-lattice.extxyz" "$root/potentials/$model" "$steps" "$repeat" 'platform = "cpu"' | sed '/^repeat = /a pbc = [false, false, false]' > "$dir/system.toml"
    "$bin" "$dir/system.toml" --threads "$threads" --quiet --summary "$dir/summary.json" > /dev/null 2> "$dir/stderr.log"
  done
  python3 - "$work" "${repeat//[, ]/}" <<'EOF'
import json, sys
work, tag = sys.argv[1], sys.argv[2]
runs = [json.load(open(f"{work}/open-{m}-{tag}/summary.json")) for m in ("ionpair-schnet", "ionpair-schnet-charges", "ionpair-schnet-distance")]
ms = [1e3 * s["wall_s"] / s["steps"] for s in runs]
print(f"| {runs[0]['n_atoms']} | {ms[0]:.1f} | {ms[1]:.1f} | {ms[1] / ms[0]:.2f} | {ms[2]:.1f} | {ms[2] / ms[0]:.2f} |")
EOF
done
