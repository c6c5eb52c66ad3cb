#!/usr/bin/env bash
# The device check: everything worth knowing about mdrun on a GPU, in one short run.
#   benches/gpu_check.sh            full sizes, for a real GPU (about 5 minutes on an H100)
#   benches/gpu_check.sh --smoke    small sizes, for lavapipe (tests/gpu_check.rs runs this)
# Prints, and writes to $OUT (else ./gpu-check/): gpu_check.md (the tables) and
# kernels-*.txt (per-kernel times, --gpu-profile).
#   - LJ (the LAMMPS bench system, NVE): atom-steps/s at 32k, 256k, 1M and 4M atoms;
#   - the shipped water models, SchNet (bare, MCGM soft, MCGM hard) and PaiNN, at about 1k,
#     10k and 100k atoms: s/step and atom-steps/s;
#   - the same bare models in PyTorch on the same GPU where torch with CUDA imports;
#   - SchNet and PaiNN with their filter tables in f16 (`[potential] gpu_tables = "f16"`);
#   - SchNet and PaiNN with the dense layers in the other tiles than the adapter's (register
#     tiles on a GPU, workgroup-memory tiles on lavapipe: MDRUN_GPU_DENSE), here and in the
#     kernel profiles, to tell which a GPU should run;
#   - SchNet with learned charges (Ewald on the GPU: the sum over k-vectors and the mesh)
#     against the same SchNet without, on the ion-pair lattice at about 1k, 3k, 10k and 35k
#     atoms;
#   - per-kernel GPU times of LJ at 1M atoms and SchNet and PaiNN at 10k atoms.
# It installs nothing from the network. The binary: $MDRUN, else .gpu/mdrun (a stripped build
# carried to the device: `mkdir -p .gpu && strip -o .gpu/mdrun $CARGO_TARGET_DIR/release/mdrun`,
# about 50 MB, with `/.gpu/` in .git/info/exclude), else $CARGO_TARGET_DIR/release/mdrun. Where
# no Vulkan loader is installed, the .deb packages in .gl/ are unpacked first (see the device
# notes); where no adapter shows, NVIDIA's ICD is named.
# Every run has a time limit; a run that fails or times out prints "-" and the check goes on.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
out=${OUT:-$PWD/gpu-check}
mkdir -p "$out"
report=$out/gpu_check.md
: > "$report"
say() { echo "$*" | tee -a "$report"; }

# The Vulkan loader and driver.
if ! ldconfig -p 2>/dev/null | grep -q libvulkan && compgen -G "$root/.gl/*.deb" > /dev/null; then
  for f in "$root"/.gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
mdrun=${MDRUN:-}
[ -z "$mdrun" ] && [ -x "$root/.gpu/mdrun" ] && mdrun=$root/.gpu/mdrun
[ -z "$mdrun" ] && mdrun=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}/release/mdrun
if [ ! -x "$mdrun" ]; then
  echo "gpu_check: no mdrun binary (set MDRUN, or carry a stripped one as .gpu/mdrun)" >&2
  exit 2
fi
devices=$("$mdrun" --list-devices 2>/dev/null)
if [ -z "$devices" ] && [ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  devices=$("$mdrun" --list-devices 2>/dev/null)
fi
if [ -z "$devices" ]; then
  echo "gpu_check: wgpu finds no adapter" >&2
  exit 3
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say "# mdrun device check ($(date -u +%Y-%m-%dT%H:%MZ)$([ $smoke = 1 ] && echo ', smoke sizes'))"
say ""
say "adapter: $(echo "$devices" | head -1)"
# The dense layers' tiles the adapter does not get by default (src/gpu/context.rs, DenseTiles).
other_tiles=$(echo "$devices" | head -1 | grep -q ', Cpu' && echo workgroup || echo registers)
command -v nvidia-smi > /dev/null && say "nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
say "binary: $mdrun ($(du -h "$mdrun" | cut -f1)); $(nproc) CPU cores"
say ""

# One GPU run of $1 (system.toml) in folder $2 with extra flags; prints s/step (or "-").
# The summary (JSON) stays in $2/summary.json.
gpu_run() {
  local toml=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  cp "$toml" "$dir/system.toml"
  if timeout "${RUN_LIMIT:-150}" "$mdrun" "$dir/system.toml" --platform gpu --quiet --summary "$dir/summary.json" "$@" > "$dir/stdout.txt" 2> "$dir/stderr.txt"; then
    python3 -c "import json; s = json.load(open('$dir/summary.json')); print(f\"{s['wall_s'] / max(s['steps'], 1):.6g}\")"
  else
    echo "-"
    echo "  (run in $dir failed: $(tail -c 300 "$dir/stderr.txt" | tr '\n' ' '))" >&2
  fi
}

# Per-kernel times of a profiled run, largest first, into $out/kernels-$2.txt.
kernels() {
  local dir=$1 name=$2
  [ -f "$dir/summary.json" ] || return 0
  python3 - "$dir/summary.json" > "$out/kernels-$name.txt" << 'PY'
import json, sys
s = json.load(open(sys.argv[1]))
times = s.get("gpu_kernel_s", {})
calls = s.get("gpu_kernel_calls", {})
total = sum(times.values()) or 1.0
steps = max(s["steps"], 1)
print(f"{s['n_atoms']} atoms, {steps} steps; GPU time per step by kernel; {sum(calls.values()) / steps:.1f} dispatches a step")
for name, t in sorted(times.items(), key=lambda kv: -kv[1]):
    n = calls.get(name, 0)
    print(f"{1e6 * t / steps:12.1f} us  {100 * t / total:5.1f} %  {n / steps:7.2f} /step  {1e6 * t / max(n, 1):10.2f} us/call  {name}")
# The model's kernels are "stage / kernel": the stages' totals too.
stages = {}
for name, t in times.items():
    stages[name.split(" / ")[0]] = stages.get(name.split(" / ")[0], 0.0) + t
print("by stage:")
for name, t in sorted(stages.items(), key=lambda kv: -kv[1]):
    print(f"{1e6 * t / steps:12.1f} us  {100 * t / total:5.1f} %  {name}")
PY
  say "kernels ($name, $(head -1 "$out/kernels-$name.txt" | grep -o '[0-9.]* dispatches a step')): $(sed -n 2,4p "$out/kernels-$name.txt" | awk '{ name = $9; for (i = 10; i <= NF; i++) name = name " " $i; printf "%s %s us; ", name, $1 }')(all in kernels-$name.txt)"
}

# Lennard-Jones: the LJ benchmark system (systems/lj-bench: fcc at reduced density 0.8442, 4
# atoms per cell) at another size and length.
lj_toml() { # $1 cells per side, $2 steps
  sed -e "s/^repeat = .*/repeat = [$1, $1, $1]/" -e "s/^steps = .*/steps = $2/" -e "s/^thermo = .*/thermo = $2/" "$root/systems/lj-bench/system.toml"
}

if [ $smoke = 1 ]; then
  lj_sizes="10:20"
  ml_sizes="1:3"
  profile_cells=10
  profile_repeat=1
else
  lj_sizes="20:1000 40:500 63:200 100:100"
  ml_sizes="4:100 8:40 16:20"
  profile_cells=63
  profile_repeat=8
fi

say "## Lennard-Jones (NVE, cutoff 2.5 sigma, skin 0.3 sigma)"
say ""
say "| atoms | steps | s/step | atom-steps/s |"
say "|---|---|---|---|"
for size in $lj_sizes; do
  cells=${size%%:*}; steps=${size##*:}
  atoms=$((4 * cells * cells * cells))
  lj_toml "$cells" "$steps" > "$tmp/lj.toml"
  t=$(gpu_run "$tmp/lj.toml" "$tmp/lj-$cells")
  rate=$([ "$t" = "-" ] && echo "-" || python3 -c "print(f'{$atoms / $t:.3e}')")
  say "| $atoms | $steps | $t | $rate |"
done
say ""
lj_toml "$profile_cells" 50 > "$tmp/lj.toml"
gpu_run "$tmp/lj.toml" "$tmp/lj-profile" --gpu-profile > /dev/null
kernels "$tmp/lj-profile" lj
say ""

# The shipped water models on water8 (24 atoms) tiled repeat³ times.
water=$root/systems/quickstart/water8.extxyz
source "$root/benches/ml_system.sh"
ml_toml() { # $1 model folder, $2 repeat, $3 steps
  ml_system_toml "$water" "$1" "$3" "$2, $2, $2"
  printf '[output]\nthermo = %s\n' "$3"
}
torch_ok=0
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2> /dev/null; then
  torch_ok=1
fi
say "## Learned potentials (water; F = 64, 3 blocks, cutoff 5 Å)"
say ""
say "| atoms | steps | SchNet s/step | atom-steps/s | + MCGM soft | + MCGM hard | PaiNN s/step | atom-steps/s | PyTorch SchNet (CUDA) | mdrun / PyTorch | PyTorch PaiNN (CUDA) | SchNet f16 tables | PaiNN f16 tables | SchNet, $other_tiles dense tiles | PaiNN, $other_tiles dense tiles |"
say "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
rate() { [ "$1" = "-" ] && echo "-" || python3 -c "print(f'{$2 / $1:.3e}')"; }
torch_time() { # $1 model, $2 repeat: PyTorch's s/step on CUDA, or "-"
  [ $torch_ok = 1 ] || { echo "-"; return; }
  timeout "${RUN_LIMIT:-150}" python3 "$root/benches/pytorch/model_md.py" "$1" "$water" --repeat "$2" --steps 10 --device cuda 2> /dev/null | awk '/^seconds_per_step:/ { print $2 }' | grep . || echo "-"
}
for size in $ml_sizes; do
  r=${size%%:*}; steps=${size##*:}
  atoms=$((24 * r * r * r))
  row=()
  # :f16, `[potential] gpu_tables = "f16"`; :dense, the other dense tiles.
  for variant in water-schnet water-schnet-mcgm-soft water-schnet-mcgm-hard water-painn water-schnet:f16 water-painn:f16 water-schnet:dense water-painn:dense; do
    model=${variant%%:*}
    ml_toml "$root/potentials/$model" "$r" "$steps" > "$tmp/ml.toml"
    [ "$variant" = "$model:f16" ] && sed -i '/^model = /a gpu_tables = "f16"' "$tmp/ml.toml"
    if [ "$variant" = "$model:dense" ]; then
      row+=("$(MDRUN_GPU_DENSE=$other_tiles gpu_run "$tmp/ml.toml" "$tmp/${variant/:/-}-$r")")
    else
      row+=("$(gpu_run "$tmp/ml.toml" "$tmp/${variant/:/-}-$r")")
    fi
  done
  ts=$(torch_time "$root/potentials/water-schnet" "$r")
  tp=$(torch_time "$root/potentials/water-painn" "$r")
  ratio=$({ [ "$ts" = "-" ] || [ "${row[0]}" = "-" ]; } && echo "-" || python3 -c "print(f'{$ts / ${row[0]}:.1f}x')")
  say "| $atoms | $steps | ${row[0]} | $(rate "${row[0]}" $atoms) | ${row[1]} | ${row[2]} | ${row[3]} | $(rate "${row[3]}" $atoms) | $ts | $ratio | $tp | ${row[4]} | ${row[5]} | ${row[6]} | ${row[7]} |"
done
say ""
[ $torch_ok = 1 ] || say "(PyTorch with CUDA does not import here: no PyTorch columns.)"
# Learned charges (Ewald in reciprocal space on the GPU) against the same SchNet without them,
# on the periodic ion-pair lattice (systems/ionpair/ion-lattice.extxyz, 9 atoms a cell), by
# both methods (`[potential] ewald`): the sum over k-vectors (N²) and particle-mesh Ewald;
# where they cross decides the GPU's automatic choice (MESH_ABOVE_TERMS in
# src/gpu/ml/charges.rs, measured on lavapipe so far).
if [ $smoke = 1 ]; then
  lr_sizes=("2, 2, 2:3")
else
  # 34,560 atoms: past the sum's 2e10 terms (refused: "-"), the mesh alone.
  lr_sizes=("5, 5, 4:50" "8, 8, 5:20" "11, 11, 9:10" "16, 16, 15:10")
fi
lattice=$root/systems/ionpair/ion-lattice.extxyz
say "## Learned charges (ion-pair lattice; SchNet F = 64, 3 blocks, 5 Å; charges σ = 1 Å)"
say ""
say "| atoms | steps | local s/step | charges (sum) s/step | ratio | charges (mesh) s/step | ratio |"
say "|---|---|---|---|---|---|---|"
for one in "${lr_sizes[@]}"; do
  repeat=${one%%:*}; steps=${one##*:}
  tag=${repeat//[, ]/}
  row=()
  for variant in ionpair-schnet:auto ionpair-schnet-charges:sum ionpair-schnet-charges:mesh; do
    model=${variant%%:*}; method=${variant##*:}
    { ml_system_toml "$lattice" "$root/potentials/$model" "$steps" "$repeat" 'max_temperature = "off"' 'max_outside_rows = "off"' 'max_energy_drift = "off"'; printf '[output]\nthermo = %s\n' "$steps"; } > "$tmp/lr.toml"
    [ "$method" = auto ] || sed -i "/^model = /a ewald = \"$method\"" "$tmp/lr.toml"
    row+=("$(gpu_run "$tmp/lr.toml" "$tmp/$model-$method-$tag")")
  done
  IFS=, read -r a b c <<< "$repeat"
  atoms=$((9 * a * b * c))
  ratio() { { [ "${row[0]}" = "-" ] || [ "$1" = "-" ]; } && echo "-" || python3 -c "print(f'{$1 / ${row[0]}:.2f}')"; }
  say "| $atoms | $steps | ${row[0]} | ${row[1]} | $(ratio "${row[1]}") | ${row[2]} | $(ratio "${row[2]}") |"
done
say ""
for model in water-schnet water-painn; do
  ml_toml "$root/potentials/$model" "$profile_repeat" 20 > "$tmp/ml.toml"
  gpu_run "$tmp/ml.toml" "$tmp/$model-profile" --gpu-profile > /dev/null
  kernels "$tmp/$model-profile" "$model"
  MDRUN_GPU_DENSE=$other_tiles gpu_run "$tmp/ml.toml" "$tmp/$model-$other_tiles-profile" --gpu-profile > /dev/null
  kernels "$tmp/$model-$other_tiles-profile" "$model-$other_tiles-dense"
done
say ""
say "Written: $report"
