#!/usr/bin/env bash
# g(r) and MSD of a 10,000-frame, 4,000-atom trajectory (DCD, made by mdrun from
# benches/mdanalysis/lj4000.toml and kept in ~/.cache/mdrun-bench): `mdrun analyze` against
# MDAnalysis (PyPI, with tidynamics for its FFT MSD) on the same file, same machine, same run.
#   benches/analysis_vs_mdanalysis.sh [msd]   (MDANALYSIS_PYTHON: a python with MDAnalysis)
# With "msd", only the MSD is timed (MDAnalysis's g(r) of this file takes most of an hour).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
python=${MDANALYSIS_PYTHON:-$HOME/.cache/mdrun-mda/bin/python}
"$python" -c "import MDAnalysis, tidynamics" 2>/dev/null || {
  python3 -m venv "$HOME/.cache/mdrun-mda" && "$HOME/.cache/mdrun-mda/bin/pip" install -q MDAnalysis tidynamics
  python=$HOME/.cache/mdrun-mda/bin/python
}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mdrun=$CARGO_TARGET_DIR/release/mdrun
cache=$HOME/.cache/mdrun-bench
traj=$cache/lj4000.dcd
if [ ! -s "$traj" ]; then
  mkdir -p "$cache"
  echo "making the trajectory (50,000 steps of 4,000 atoms)..."
  "$mdrun" "$here/mdanalysis/lj4000.toml" --output-dir "$cache" --quiet
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
only=${1:-all}
start=$(date +%s.%N)
[ "$only" != msd ] && "$mdrun" analyze "$traj" --rdf --rmax 10 --bins 200 --no-plots --quiet --out "$tmp/rdf" --dt 0.025
mid=$(date +%s.%N)
"$mdrun" analyze "$traj" --msd --no-plots --quiet --out "$tmp/msd" --dt 0.025
end=$(date +%s.%N)
read -r m_rdf m_msd < <(python3 -c "print(f'{$mid - $start:.3f} {$end - $mid:.3f}')")
read -r p_rdf p_msd < <("$python" "$here/mdanalysis/bench.py" "$traj" 4000 "$only")
echo "| analysis | mdrun analyze (s) | MDAnalysis (s) | speed-up |"
echo "|---|---|---|---|"
[ "$only" != msd ] && python3 -c "print(f'| g(r), 200 bins to 10 Å | {$m_rdf:.2f} | {$p_rdf:.2f} | {$p_rdf / $m_rdf:.1f}x |')"
python3 -c "print(f'| MSD (FFT, all origins) | {$m_msd:.2f} | {$p_msd:.2f} | {$p_msd / $m_msd:.1f}x |')"
