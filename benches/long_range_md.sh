#!/usr/bin/env bash
# The cost of long range in MD: the same SchNet trained on the ion-pair set with and without
# learned charges (potentials/ionpair-schnet, potentials/ionpair-schnet-charges), on the periodic
# ion-pair lattice (systems/ionpair/ion-lattice.extxyz, 9 atoms per cell) repeated to about
# 1,000, 3,000 and 10,000 atoms, on the CPU. Prints a Markdown table: ms per step of each and
# their ratio, and the share of the long-range stage (charge head + Ewald).
# Then the same blocks cut out as open clusters (pbc false: the charges summed on the free-space
# mesh, or directly over all pairs where that costs less), with the distance-aware MCGM model
# (potentials/ionpair-schnet-distance) beside them. OPEN_ONLY=1 times only the open clusters.
#   benches/long_range_md.sh [steps] [threads]
# Every figure is the steady cost of a step: each run is made twice, `steps` and 2 × `steps`
# long, and the difference divided by `steps`, so that what a run pays once (reading the model,
# the first neighbour lists and Ewald grid, their pages) is left out, as in a long run.
# The lattice at 300 K flies apart within a hundred 0.25 fs steps, differently under each model
# (so the two would be timed on different structures, with different neighbour counts): the
# steps are TIMESTEP long (default 0.01 fs), which keeps the atoms where they start, so both
# models are timed on the same structure and its neighbour lists are not rebuilt (a calm
# system rebuilds them every few tens of steps).
# This VM's run-to-run spread is about 20 %: each run is made REPEATS times (default 3), the
# four runs of a row taking turns, and the fastest of each kept (noise only adds time).
# PLATFORM=gpu runs the periodic table on the GPU platform instead (Ewald in reciprocal space on
# the device, by both of its methods side by side: the sum over k-vectors and particle-mesh
# Ewald, `[potential] ewald`; open clusters do not run there); LATTICES="5,5,4 8,8,5" picks the
# repeats, METHODS="mesh" the methods. CHARGES_MODEL=ionpair-schnet-qeq times the periodic table
# with the charges by charge equilibration (conjugate gradients, one Coulomb sum an iteration)
# in place of the projected charges, and adds each row's iterations per evaluation; time it at
# TIMESTEP="0.25 fs" (each solve starts from the steps before, so 0.01 fs steps flatter it).
# OPEN=0 skips the open clusters.
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
timestep=${TIMESTEP:-0.01 fs}
repeats=${REPEATS:-3}

# setup DIR MODEL REPEAT periodic|open [LINE ...]: the model on the lattice, `steps` and
# 2 × `steps` long (DIR/1/system.toml and DIR/2/system.toml).
setup() {
  local dir=$1 model=$2 repeat=$3 boundary=$4
  shift 4
  for n in 1 2; do
    mkdir -p "$dir/$n"
    ml_system_toml "$root/systems/ionpair/ion-lattice.extxyz" "$root/potentials/$model" $((n * steps)) "$repeat" "$@" > "$dir/$n/system.toml"
    sed -i "s/^timestep = .*/timestep = \"$timestep\"/" "$dir/$n/system.toml"
    if [ "$boundary" = open ]; then
      sed -i '/^repeat = /a pbc = [false, false, false]' "$dir/$n/system.toml"
    fi
  done
}

# run DIR ...: every set-up run in the DIRs, REPEATS times taking turns (DIR/n/summary-k.json).
run() {
  for k in $(seq "$repeats"); do
    for dir in "$@"; do
      for n in 1 2; do
        "$bin" "$dir/$n/system.toml" --threads "$threads" --quiet --summary "$dir/$n/summary-$k.json" "${profile[@]}" > /dev/null 2> "$dir/$n/stderr.log"
      done
    done
  done
}

# The steady cost in ms per step (and of the long-range stage) from a run()'s two summaries.
cat > "$work/steady.py" <<'PY'
import glob, json
# CPU: the force stage; GPU: the profiler's kernels of the "ml: long range" stage.
def stage(s):
    t = dict(s.get("force_stages_s", [])).get("long range", 0.0)
    return t + sum(v for k, v in s.get("gpu_kernel_s", {}).items() if k.startswith("ml: long range"))
def steady(d):
    """Atoms, steady ms per step and of the long-range stage: the fastest of the repeats."""
    runs = [[json.load(open(f)) for f in glob.glob(f"{d}/{n}/summary-*.json")] for n in (1, 2)]
    steps = runs[1][0]["steps"] - runs[0][0]["steps"]
    wall = [min(s["wall_s"] for s in r) for r in runs]
    long_range = [min(stage(s) for s in r) for r in runs]
    return runs[0][0]["n_atoms"], 1e3 * (wall[1] - wall[0]) / steps, 1e3 * (long_range[1] - long_range[0]) / steps
PY

if [ "${OPEN_ONLY:-0}" != 1 ]; then
echo "Platform: $platform; steady ms per step (runs of $steps and $((2 * steps)) steps of $timestep, the difference)"
# In-run ratio: the charges run's step over the same step without its long-range stage, both
# from one run (free of the spread between runs).
profile=()
# Both profiled alike (the profiler's timestamps cost a little on every kernel).
[ "$platform" = gpu ] && profile=(--gpu-profile)
# The charges' reciprocal part as the run picks it (auto); on the GPU both of its methods,
# the sum over k-vectors and particle-mesh Ewald, side by side.
# METHODS="mesh" (say) times only those.
methods=(auto)
[ "$platform" = gpu ] && methods=(sum mesh)
[ -n "${METHODS:-}" ] && read -r -a methods <<< "$METHODS"
header="| atoms | local ms/step |"
for m in "${methods[@]}"; do
  header="$header charges ($m) ms/step | ratio | long-range stage ms/step | in-run ratio |"
done
case "${CHARGES_MODEL:-}" in *qeq*) header="$header CG iterations per evaluation |" ;; esac
echo "$header"
echo "$header" | sed 's/[^|]//g; s/|/|---/g; s/---$//'
for repeat in $lattices; do
  tag=${repeat//[, ]/}
  # The lattice's ions come closer than the model's training data: the run's failure checks
  # are off (this measures cost).
  checks=("platform = \"$platform\"" 'max_temperature = "off"' 'max_outside_rows = "off"' 'max_energy_drift = "off"')
  setup "$work/local-$tag" ionpair-schnet "$repeat" periodic "${checks[@]}"
  dirs=("$work/local-$tag")
  for m in "${methods[@]}"; do
    setup "$work/$m-$tag" "${CHARGES_MODEL:-ionpair-schnet-charges}" "$repeat" periodic "${checks[@]}"
    sed -i "/^model = /a ewald = \"$m\"" "$work/$m-$tag"/*/system.toml
    dirs+=("$work/$m-$tag")
  done
  run "${dirs[@]}"
  python3 - "$work" "$tag" "${methods[@]}" <<'EOF2'
import sys
sys.path.insert(0, sys.argv[1])
from steady import steady
work, tag, methods = sys.argv[1], sys.argv[2], sys.argv[3:]
n, local, _ = steady(f"{work}/local-{tag}")
row = f"| {n} | {local:.1f} |"
for m in methods:
    _, charges, stage = steady(f"{work}/{m}-{tag}")
    row += f" {charges:.1f} | {charges / local:.2f} | {stage:.1f} | {charges / (charges - stage):.2f} |"
    # Charge equilibration: its conjugate-gradient iterations per evaluation (the longer run's note).
    import glob, json
    notes = json.load(open(sorted(glob.glob(f"{work}/{m}-{tag}/2/summary-*.json"))[0])).get("potential_notes", [])
    row += "".join(f" {n.split()[2]} |" for n in notes if n.startswith("charge equilibration:"))
print(row)
EOF2
done
fi
[ "$platform" = cpu ] && [ "${OPEN:-1}" = 1 ] || exit 0
echo
echo "Open clusters (no periodic images), steady ms per step:"
echo "| atoms | local ms/step | charges ms/step | ratio | distance-aware MCGM ms/step | ratio |"
echo "|---|---|---|---|---|---|"
profile=()
for repeat in $lattices; do
  tag=${repeat//[, ]/}
  for model in ionpair-schnet ionpair-schnet-charges ionpair-schnet-distance; do
    setup "$work/open-$model-$tag" "$model" "$repeat" open 'platform = "cpu"' 'max_temperature = "off"' 'max_outside_rows = "off"' 'max_energy_drift = "off"'
  done
  run "$work/open-ionpair-schnet-$tag" "$work/open-ionpair-schnet-charges-$tag" "$work/open-ionpair-schnet-distance-$tag"
  python3 - "$work" "$tag" <<'EOF2'
import sys
sys.path.insert(0, sys.argv[1])
from steady import steady
work, tag = sys.argv[1], sys.argv[2]
runs = [steady(f"{work}/open-{m}-{tag}") for m in ("ionpair-schnet", "ionpair-schnet-charges", "ionpair-schnet-distance")]
ms = [r[1] for r in runs]
print(f"| {runs[0][0]} | {ms[0]:.1f} | {ms[1]:.1f} | {ms[1] / ms[0]:.2f} | {ms[2]:.1f} | {ms[2] / ms[0]:.2f} |")
EOF2
done
