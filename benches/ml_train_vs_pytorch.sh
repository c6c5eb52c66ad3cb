#!/usr/bin/env bash
# Training throughput: `mdrun train` against the same SchNet in PyTorch
# (benches/pytorch/schnet_train.py), same data, hyperparameters, loss and machine, CPU.
#   benches/ml_train_vs_pytorch.sh [DATA.extxyz] [epochs]
# Needs a Python with torch and numpy: PYTHON=/path/to/python (default python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
data=${1:-$root/potentials/data/chain.extxyz}
epochs=${2:-5}
python=${PYTHON:-python3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
m=$("$CARGO_TARGET_DIR/release/mdrun" train --train "$data" --epochs "$epochs" --patience 1000 --out "$tmp/m" |
  awk '/structures\/s/ { for (i = 1; i <= NF; i++) if ($i == "structures/s;") print $(i-1) }')
p=$("$python" "$here/pytorch/schnet_train.py" "$data" --epochs "$epochs" --threads 2 | awk '/^structures\/s:/ { print $2 }')
echo "| trainer | structures/s | mdrun / PyTorch |"
echo "|---|---|---|"
echo "| mdrun train (burn flex, f32) | $m | $(python3 -c "print(f'{$m / $p:.2f}')") |"
echo "| PyTorch $("$python" -c 'import torch; print(torch.__version__)') (2 threads, f32) | $p | |"
