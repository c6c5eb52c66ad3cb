#!/usr/bin/env bash
# MD with a SchNet potential: mdrun (the whole MD step: neighbour list, graph, model, integration)
# against the same model in plain PyTorch (benches/pytorch/schnet_md.py: energy + autograd forces
# only, neighbour list not timed), same weights, same structure, same machine and threads.
#   benches/ml_md_vs_pytorch.sh [MODEL_DIR] [repeats...]
# MODEL_DIR: a bare SchNet model written by `mdrun train` (default potentials/water-schnet).
# The structure is systems/quickstart/water8.extxyz (24 atoms) tiled repeat³ times.
# Needs a Python with torch and numpy: PYTHON=/path/to/python (default python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
model=$(cd "${1:-$root/potentials/water-schnet}" && pwd)
shift || true
repeats=${*:-2 4 7}
threads=${THREADS:-$(nproc)}
python=${PYTHON:-python3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun
structure=$root/systems/quickstart/water8.extxyz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "model: $model ($(python3 -c "import json; c = json.load(open('$model/model.json'))['config']; print(f\"{c['backbone']} F={c['features']} blocks={c['blocks']} rbf={c['n_rbf']} cutoff={c['cutoff']}\")")), $threads threads"
echo
echo "| atoms | mdrun s/step | PyTorch s/step | mdrun / PyTorch speed | E mdrun (eV) | E PyTorch (eV) |"
echo "|---|---|---|---|---|---|"
for r in $repeats; do
  atoms=$((24 * r * r * r))
  # Enough steps for ~10 s of mdrun at the expected speed, at least 10.
  steps=$(( 2000000 / atoms )); [ $steps -lt 10 ] && steps=10; [ $steps -gt 2000 ] && steps=2000
  cat > "$tmp/system.toml" <<TOML
[structure]
file = "$structure"
repeat = [$r, $r, $r]
[velocities]
source = "maxwell-boltzmann"
temperature = "300 K"
seed = 1
[potential]
type = "mcgm"
model = "$model"
[integrator]
type = "verlet"
timestep = "0.5 fs"
[run]
steps = $steps
[output]
thermo = $steps
log = "thermo.log"
checkpoint = "final.chk"
TOML
  "$mdrun" "$tmp/system.toml" --threads "$threads" --summary "$tmp/summary.json" --quiet
  m=$(python3 -c "import json; s = json.load(open('$tmp/summary.json')); print(f\"{s['wall_s'] / s['steps']:.6f}\")")
  e_m=$(awk '/^ *0 / { print $4; exit }' "$tmp/thermo.log")
  out=$("$python" "$here/pytorch/schnet_md.py" "$model" "$structure" --repeat "$r" --steps $(( steps < 20 ? steps : 20 )) --threads "$threads")
  p=$(echo "$out" | awk '/^seconds_per_step:/ { print $2 }')
  e_p=$(echo "$out" | awk '/^energy_ev:/ { print $2 }')
  echo "| $atoms | $m | $p | $(python3 -c "print(f'{$p / $m:.1f}x')") | $e_m | $e_p |"
done
