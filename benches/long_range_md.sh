#!/usr/bin/env bash
# The cost of long range in MD: the same SchNet trained on the ion-pair set with and without
# learned charges (potentials/ionpair-schnet, potentials/ionpair-schnet-charges), on the periodic
# ion-pair lattice (systems/ionpair/ion-lattice.extxyz, 9 atoms per cell) repeated to about
# 1,000, 3,000 and 10,000 atoms, on the CPU. Prints a Markdown table: ms per step of each and
# their ratio, and the share of the long-range stage (charge head + Ewald).
# Then the same blocks cut out as open clusters (pbc false: the charges' direct sum, O(N²)),
# with the distance-aware MCGM model (potentials/ionpair-schnet-distance) beside them.
#   benches/long_range_md.sh [steps] [threads]
# PLATFORM=gpu runs the periodic table on the GPU platform instead (Ewald in reciprocal space on
# the device; open clusters do not run there); LATTICES="5,5,4 8,8,5" picks the repeats.
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
platform=${PLATFORM:-cpu}
lattices=${LATTICES:-"5,5,4 8,8,5 11,11,9"}
echo "Platform: $platform"
echo "| atoms | local ms/step | charges ms/step | ratio | long-range stage ms/step |"
echo "|---|---|---|---|---|"
for repeat in $lattices; do
  for model in ionpair-schnet ionpair-schnet-charges; do
    dir=$work/$model-${repeat//[, ]/}
    mkdir -p "$dir"
    # The lattice's ions come closer than the model's training data within a few steps: the
    # run's failure checks are off (this measures cost).
    ml_system_toml "$root/systems/ionpair/ion-lattice.extxyz" "$root/potentials/$model" "$steps" "$repeat" "platform = \"$platform\"" 'max_temperature = "off"' 'max_outside_rows = "off"' 'max_energy_drift = "off"' > "$dir/system.toml"
    profile=()
    # Both profiled alike (the profiler's timestamps cost a little on every kernel).
    [ "$platform" = gpu ] && profile=(--gpu-profile)
    "$bin" "$dir/system.toml" --threads "$threads" --quiet --summary "$dir/summary.json" "${profile[@]}" > /dev/null 2> "$dir/stderr.log"
  done
  python3 - "$work" "${repeat//[, ]/}" <<'EOF'
import json, sys
work, tag = sys.argv[1], sys.argv[2]
local = json.load(open(f"{work}/ionpair-schnet-{tag}/summary.json"))
charges = json.load(open(f"{work}/ionpair-schnet-charges-{tag}/summary.json"))
ms = lambda s: 1e3 * s["wall_s"] / s["steps"]
# CPU: the force stage; GPU: the profiler's kernels of the "ml: long range" stage (--gpu-profile).
stage = dict(charges.get("force_stages_s", [])).get("long range", 0.0)
stage += sum(t for name, t in charges.get("gpu_kernel_s", {}).items() if name.startswith("ml: long range"))
stage *= 1e3 / charges["steps"]
print(f"| {local['n_atoms']} | {ms(local):.1f} | {ms(charges):.1f} | {ms(charges) / ms(local):.2f} | {stage:.1f} |")
EOF
done
[ "$platform" = cpu ] || exit 0
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
