#!/usr/bin/env bash
# MACE (mace-torch from PyPI) on the long-range sets of benches/long_range_accuracy.sh, same
# training and held-out files, same machine: a small MACE (64x0e+64x1o, 2 interactions, 5 Å,
# E0s averaged), float32, CPU, trained by mdrun's own loss (100 x the per-atom energy's squared
# error + the forces'; MACE's default, 1 : 100 the other way, leaves the energies off by eV
# after 30 epochs). Prints the Markdown rows that go beside mdrun's.
#   [SETS="ionpair chain40"] [THREADS=n] benches/mace_long_range.sh OUT [epochs] [python]
# (SETS runs one after the other; two sets at once: two calls with THREADS=1 and one set each.)
# OUT: the folder benches/long_range_accuracy.sh wrote (its *-train/*-test.extxyz files); the
# splits are made here, as that script makes them, where they are missing.
set -euo pipefail
out=$1
epochs=${2:-100}
python=${3:-${MDRUN_PYTHON:-$HOME/.cache/mdrun-anchors/venv/bin/python}}
"$python" -c "import mace" 2>/dev/null || { echo "mace-torch is not installed for $python (pip install mace-torch)"; exit 1; }
bin=$(dirname "$python")
data=$(cd "$(dirname "$0")/.." && pwd)/potentials/data
mkdir -p "$out"
[ -f "$out/ionpair-train.extxyz" ] || cp "$data/ionpair.extxyz" "$out/ionpair-train.extxyz"
[ -f "$out/ionpair-test.extxyz" ] || cp "$data/ionpair-test.extxyz" "$out/ionpair-test.extxyz"
for set in chain chain40; do
  [ -f "$out/$set-train.extxyz" ] || awk -v train="$out/$set-train.extxyz" -v test="$out/$set-test.extxyz" '
    left == 0 { n = $1; left = n + 2; frame++ }
    { print > ((frame % 5 == 0) ? test : train); left-- }' "$data/$set.extxyz"
done
export OMP_NUM_THREADS=${THREADS:-${OMP_NUM_THREADS:-2}}
for set in ${SETS:-ionpair chain40}; do
  dir=$out/mace-$set
  mkdir -p "$dir"
  start=$(date +%s.%N)
  (cd "$dir" && "$bin/mace_run_train" --name mace --train_file "$out/$set-train.extxyz" --valid_fraction 0.1 \
    --energy_key energy --forces_key forces --model MACE --hidden_irreps '64x0e + 64x1o' \
    --num_interactions 2 --r_max 5.0 --batch_size 8 --max_num_epochs "$epochs" --E0s average \
    --default_dtype float32 --device cpu --seed 1 --energy_weight 100 --forces_weight 1 > train.log 2>&1)
  seconds=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { print a - b }')
  "$bin/mace_eval_configs" --configs "$out/$set-test.extxyz" --model "$dir/mace.model" --output "$dir/predicted.extxyz" --device cpu --default_dtype float32 > "$dir/eval.log" 2>&1
  "$python" - "$out/$set-test.extxyz" "$dir/predicted.extxyz" "$set" "$seconds" "$epochs" <<'EOF'
import sys
import numpy as np
from ase.io import read
reference = read(sys.argv[1], ":")
predicted = read(sys.argv[2], ":")
de = [abs(p.info["MACE_energy"] - r.get_potential_energy()) for r, p in zip(reference, predicted)]
dea = [d / len(r) for d, r in zip(de, reference)]
df = np.concatenate([np.abs(p.arrays["MACE_forces"] - r.get_forces()).ravel() for r, p in zip(reference, predicted)])
print(f"| {sys.argv[3]} | MACE 64x0e+64x1o, 2 layers, {sys.argv[5]} epochs | - | - | {1e3 * np.mean(de):.1f} | {1e3 * np.mean(dea):.2f} | {1e3 * df.mean():.1f} | {float(sys.argv[4]):.0f} |")
EOF
done
