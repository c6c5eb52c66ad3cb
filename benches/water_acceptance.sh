#!/usr/bin/env bash
# The liquid-water potential's acceptance figures (issue 24 item 4): 64 and 216 waters at 300 K
# (Langevin NVT, 0.5 fs, from SPC/Fw-equilibrated boxes at 1 g/cm³) for PS and PS216 picoseconds, then
#   - whether each run held: no stop by the failure checks, rows outside the training data, the
#     committee's largest force deviation;
#   - the O-O g(r)'s first peak (the goal: 2.7-2.95 Å) and the mean temperature;
#   - the force and energy error against GFN2-xTB on FRAMES frames drawn evenly from the 64-water
#     run's second half (labelled by tools/xtb_label.py; the goal: force MAE below 60 meV/Å),
#     and the stress error: how far the model's pressure is from GFN2-xTB's on the same frames;
#   - the density at 1 bar: 64 waters in NPT (Nosé-Hoover chains and the MTK barostat, 300 K,
#     1 bar, NPT_PS picoseconds, default 20, after the NVT run), its mean over the second half.
# Prints a Markdown table; everything stays in OUT (default: a fresh temporary folder).
#
#   benches/water_acceptance.sh [MODEL] [PS] [PS216] [FRAMES] [OUT]
#   (defaults: potentials/water-liquid, 100 ps, PS216 = PS, 20 frames; side by side on one core
#   each of a 2-core machine a step of 64 waters took 7 ms, of 216 waters 25 ms: 100 ps of 216
#   waters is about 85 minutes)
# MDRUN_PYTHON: a Python with tblite and ase for the labels (default: python3); FRAMES=0 skips them.
# NPT_PS: picoseconds of the NPT run (0: none). SIDE_BY_SIDE=0: the runs one after the other.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
model=$(realpath "${1:-$root/potentials/water-liquid}")
ps=${2:-100}
ps216=${3:-$ps}
frames=${4:-20}
out=${5:-$(mktemp -d)}
python=${MDRUN_PYTHON:-python3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
bin=$CARGO_TARGET_DIR/release/mdrun
mkdir -p "$out"
out=$(realpath "$out")
npt_ps=${NPT_PS:-20}
run() { # name structure rmax picoseconds [npt]
  local dir=$out/$1
  local integrator='type = "langevin"
timestep = "0.5 fs"
temperature = "300 K"
damping = "0.1 ps"
seed = 4'
  if [ "${5:-}" = npt ]; then
    integrator='type = "nose-hoover"
timestep = "0.5 fs"
temperature = "300 K"
damping = "0.05 ps"
[barostat]
type = "mtk"
pressure = "1 bar"
damping = "1 ps"'
  fi
  mkdir -p "$dir"
  cat > "$dir/system.toml" <<EOF
[structure]
file = "$root/systems/water/$2"
[velocities]
source = "maxwell-boltzmann"
temperature = "300 K"
seed = 3
[potential]
type = "ml"
model = "$model"
[integrator]
$integrator
[run]
steps = $(python3 -c "print(round($4 * 2000))")
[neighbor]
skin = "1.0 A"
[output]
thermo = 200
log = "thermo.log"
checkpoint = "final.chk"
[[output.trajectory]]
path = "trajectory.xyz"
interval = 2000
[analysis]
interval = 100
rdf = true
pairs = ["O-O", "O-H"]
rmax = "$3 A"
bins = $(python3 -c "print(round($3 / 0.05))")
out = "analysis"
EOF
  local status=0
  (cd "$dir" && "$bin" system.toml --threads "$threads" --quiet --summary summary.json > stdout.log 2> stderr.log) || status=$?
  echo "$status" > "$dir/status"
}

label64() { # frames of the 64-water run against GFN2-xTB
  [ "$frames" -gt 0 ] && [ -s "$out/water64/trajectory.xyz" ] || return 0
  # Frames from the second half of the 64-water run (of what it ran, if it stopped), evenly spaced.
  python3 - "$out/water64/trajectory.xyz" "$out/drawn.extxyz" "$frames" <<'EOF'
import sys
path, dest, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(path).read().splitlines()
blocks, k = [], 0
while k < len(lines):
    n = int(lines[k])
    blocks.append(lines[k:k + 2 + n])
    k += 2 + n
second = blocks[len(blocks) // 2:]
step = max(1, len(second) // want)
picked = second[::step][:want]
with open(dest, "w") as f:
    for b in picked:
        f.write("\n".join(b) + "\n")
print(f"{len(picked)} of {len(blocks)} frames drawn", file=sys.stderr)
EOF
  "$python" "$root/tools/xtb_label.py" "$out/drawn.extxyz" "$out/drawn-xtb.extxyz" --config-type md64 > "$out/label.log" 2>&1
  "$bin" eval "$model" "$out/drawn-xtb.extxyz" --json --predictions "$out/predicted.extxyz" > "$out/eval.json"
}

# The two runs side by side, half the cores each (the 64-water frames are labelled as soon as
# their run ends), or with SIDE_BY_SIDE=0 one after the other on all the cores (sooner where the
# 216-water run alone would finish long after the rest: its step scales with threads).
if [ "${SIDE_BY_SIDE:-1}" = 0 ]; then
  threads=$(nproc)
  run water64 water64.extxyz 6.2 "$ps"
  label64
  [ "$npt_ps" = 0 ] || run npt64 water64.extxyz 6.2 "$npt_ps" npt
  run water216 water216.extxyz 9.3 "$ps216"
else
  threads=$(( $(nproc) / 2 > 0 ? $(nproc) / 2 : 1 ))
  { run water64 water64.extxyz 6.2 "$ps"; label64; [ "$npt_ps" = 0 ] || run npt64 water64.extxyz 6.2 "$npt_ps" npt; } &
  run water216 water216.extxyz 9.3 "$ps216" &
  wait
fi

python3 - "$out" "$ps" "$ps216" <<'EOF'
import csv, json, os, re, sys
out = sys.argv[1]
asked = {"water64": sys.argv[2], "water216": sys.argv[3]}
print(f"| waters | ps asked | ran | stopped | outside-data rows | max force deviation eV/Å | mean T K | O-O first peak Å | g at peak | ms/step |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, waters in (("water64", 64), ("water216", 216)):
    d = os.path.join(out, name)
    status = open(os.path.join(d, "status")).read().strip()
    # The thermo log's rows (a stopped run writes no summary): time, T, the committee's max.
    header, rows = None, []
    for line in open(os.path.join(d, "thermo.log")):
        words = line.split()
        if words and words[0] == "Step":
            header = words
        elif header and words and not line.startswith("#"):
            rows.append(dict(zip(header, map(float, words))))
    ran = rows[-1]["Time(ps)"] if rows else 0.0
    mean_t = sum(r["Temp(K)"] for r in rows[1:]) / max(len(rows) - 1, 1)
    max_dev = max((r.get("FDevMax(eV/A)", float("nan")) for r in rows), default=float("nan"))
    # The thermo intervals with pairs closer than the training data: one warning line each.
    outside = sum("closer than" in line for line in open(os.path.join(d, "stderr.log")))
    peak, gpeak = "n/a", "n/a"
    try:
        a = json.load(open(os.path.join(d, "analysis", "summary.json")))
        oo = a["rdf"]["O-O"]
        peak = f"{oo['first_peak_a']:.3f}"
        rdf = list(csv.reader(open(os.path.join(d, "analysis", "rdf.csv"))))
        col = rdf[0].index("g_O-O")
        best = min(rdf[1:], key=lambda r: abs(float(r[0]) - oo["first_peak_a"]))
        gpeak = f"{float(best[col]):.2f}"
    except (OSError, ValueError, KeyError):
        pass
    stopped = "no" if status == "0" else f"yes (exit {status}): " + next((l for l in open(os.path.join(d, "stderr.log")) if l.startswith("error:")), "?").strip()[7:120]
    try:
        s = json.load(open(os.path.join(d, "summary.json")))
        ms = f"{1e3 * s['wall_s'] / max(s['steps'], 1):.2f}"
    except (OSError, ValueError, KeyError):
        ms = "n/a"
    print(f"| {waters} | {asked[name]} | {ran:.2f} | {stopped} | {outside} | {max_dev:.3f} | {mean_t:.1f} | {peak} | {gpeak} | {ms} |")
p = os.path.join(out, "eval.json")
if os.path.exists(p):
    e = json.load(open(p))
    print(f"\nAgainst GFN2-xTB on {e['n_structures']} frames of the 64-water run's second half (goal: force MAE < 60 meV/Å):")
    print(f"force MAE {1e3 * e['force_mae_ev_per_a']:.1f} meV/Å (RMSE {1e3 * e['force_rmse_ev_per_a']:.1f}), energy MAE {1e3 * e['energy_mae_ev_per_atom']:.2f} meV/atom (the first member's; eval.json)")
    # The pressure the model gives these frames against GFN2-xTB's: the virial part, in bar
    # (the kinetic part is the same for both), from mdrun eval --predictions.
    diffs = []
    for line in open(os.path.join(out, "predicted.extxyz")):
        if "mdrun_virial=" in line:
            lattice = [float(x) for x in re.search(r'Lattice="([^"]*)"', line).group(1).split()]
            a, b, c = lattice[0:3], lattice[3:6], lattice[6:9]
            volume = abs(a[0] * (b[1] * c[2] - b[2] * c[1]) - a[1] * (b[0] * c[2] - b[2] * c[0]) + a[2] * (b[0] * c[1] - b[1] * c[0]))
            trace = lambda key: sum(float(x) for x in re.search(key + r'="([^"]*)"', line).group(1).split()[0::4])
            diffs.append((trace("mdrun_virial") - trace(" virial")) / (3 * volume) * 1.602176634e6)
    if diffs:
        mean = sum(diffs) / len(diffs)
        print(f"pressure: the model's minus GFN2-xTB's on the same frames {mean:+.0f} bar on average (frames from {min(diffs):+.0f} to {max(diffs):+.0f}); stress MAE {e.get('stress_mae_gpa', float('nan')):.3f} GPa")
npt = os.path.join(out, "npt64", "thermo.log")
if os.path.exists(npt):
    header, rows = None, []
    for line in open(npt):
        words = line.split()
        if words and words[0] == "Step":
            header = words
        elif header and words and not line.startswith("#"):
            rows.append(dict(zip(header, map(float, words))))
    second = rows[len(rows) // 2:]
    # 64 molecules of 18.015 g/mol: density in g/cm³ from the volume in Å³.
    dens = [64 * 18.01528 / 6.02214076e23 / (r["Volume(A3)"] * 1e-24) for r in second]
    if dens:
        m = sum(dens) / len(dens)
        sd = (sum((d - m) ** 2 for d in dens) / len(dens)) ** 0.5
        status = open(os.path.join(out, "npt64", "status")).read().strip()
        ran = rows[-1]["Time(ps)"]
        print(f"\nNPT, 64 waters, 300 K, 1 bar: {ran:.1f} ps{'' if status == '0' else ' (stopped: exit ' + status + ')'}; density over the second half {m:.3f} ± {sd:.3f} g/cm³ (mean T {sum(r['Temp(K)'] for r in second) / len(second):.1f} K)")
print(f"\n(files in {out})")
EOF
