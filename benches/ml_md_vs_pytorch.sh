#!/usr/bin/env bash
# MD with a SchNet or PaiNN potential, against system size: mdrun (the whole MD step: neighbour
# list, graph, model, integration) with the bare model and with MCGM (soft, hard), against the
# same bare model in plain PyTorch (benches/pytorch/model_md.py: energy + autograd forces only,
# neighbour list not timed), same weights, same structure, same machine, same threads.
#   benches/ml_md_vs_pytorch.sh [repeats...]          (default: 2 4 7 11 16)
# STEP_BUDGET (default 300000) / atoms is the number of steps per run (5 to 500).
# Models: potentials/water-schnet and its MCGM variants (MODEL=DIR overrides the bare one;
# SOFT=DIR and HARD=DIR the variants, "-" to skip them). The structure is
# systems/quickstart/water8.extxyz (24 atoms) tiled repeat³ times. PyTorch runs up to
# TORCH_MAX_ATOMS (default 10000: beyond that its per-edge filter tensors outgrow the memory).
# Needs a Python with torch and numpy: PYTHON=/path/to/python (default python3).
# PLATFORM=gpu runs mdrun on the GPU (the WGSL kernels; lavapipe where there is no GPU) and
# TORCH_DEVICE=cuda runs PyTorch on the GPU (defaults: cpu, cpu).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
model=$(cd "${MODEL:-$root/potentials/water-schnet}" && pwd)
soft=${SOFT:-$root/potentials/water-schnet-mcgm-soft}
hard=${HARD:-$root/potentials/water-schnet-mcgm-hard}
repeats=${*:-2 4 7 11 16}
threads=${THREADS:-$(nproc)}
torch_max=${TORCH_MAX_ATOMS:-10000}
python=${PYTHON:-python3}
platform=${PLATFORM:-cpu}
torch_device=${TORCH_DEVICE:-cpu}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun
source "$here/ml_system.sh"
structure=$root/systems/quickstart/water8.extxyz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Seconds per MD step of mdrun with model $1 on repeat $2, over $3 steps (the step-0 potential
# energy goes to $tmp/e0).
run_mdrun() {
  {
    ml_system_toml "$structure" "$1" "$3" "$2, $2, $2" "platform = \"$platform\""
    printf '[output]\nthermo = %s\nlog = "thermo.log"\ncheckpoint = "final.chk"\n' "$3"
  } > "$tmp/system.toml"
  "$mdrun" "$tmp/system.toml" --threads "$threads" --summary "$tmp/summary.json" --quiet 2>/dev/null
  awk '/^ *0 / { print $4; exit }' "$tmp/thermo.log" > "$tmp/e0"
  python3 -c "import json; s = json.load(open('$tmp/summary.json')); print(f\"{s['wall_s'] / s['steps']:.6f}\")"
}

echo "mdrun on $platform ($("$mdrun" --list-devices 2>/dev/null | head -1)), PyTorch on $torch_device"
echo "model: $model ($(python3 -c "import json; c = json.load(open('$model/model.json'))['config']; print(f\"{c['backbone']} F={c['features']} blocks={c['blocks']} rbf={c['n_rbf']} cutoff={c['cutoff']}\")")), $threads threads, $(nproc) cores"
echo
name=$(python3 -c "import json; print({'schnet': 'SchNet', 'painn': 'PaiNN'}[json.load(open('$model/model.json'))['config']['backbone']])")
echo "| atoms | mdrun $name s/step | atom-steps/s | + MCGM soft s/step | + MCGM hard s/step | PyTorch $name s/step | mdrun / PyTorch | E mdrun (eV) | E PyTorch (eV) |"
echo "|---|---|---|---|---|---|---|---|---|"
for r in $repeats; do
  atoms=$((24 * r * r * r))
  # Enough steps for a few seconds of mdrun, at least 5.
  steps=$(( ${STEP_BUDGET:-300000} / atoms )); [ $steps -lt 5 ] && steps=5; [ $steps -gt 500 ] && steps=500
  m=$(run_mdrun "$model" "$r" "$steps"); e_m=$(cat "$tmp/e0")
  s="-"; h="-"
  [ "$soft" != "-" ] && [ -d "$soft" ] && s=$(run_mdrun "$soft" "$r" "$steps")
  [ "$hard" != "-" ] && [ -d "$hard" ] && h=$(run_mdrun "$hard" "$r" "$steps")
  p="-"; e_p="-"; ratio="-"
  if [ "$atoms" -le "$torch_max" ]; then
    out=$("$python" "$here/pytorch/model_md.py" "$model" "$structure" --repeat "$r" --steps $(( steps < 10 ? steps : 10 )) --threads "$threads" --device "$torch_device")
    p=$(echo "$out" | awk '/^seconds_per_step:/ { print $2 }')
    e_p=$(echo "$out" | awk '/^energy_ev:/ { print $2 }')
    ratio=$(python3 -c "print(f'{$p / $m:.1f}x')")
  fi
  aps=$(python3 -c "print(f'{$atoms / $m:.3g}')")
  echo "| $atoms | $m | $aps | $s | $h | $p | $ratio | $e_m | $e_p |"
done
