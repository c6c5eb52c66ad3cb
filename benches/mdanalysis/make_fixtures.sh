#!/usr/bin/env bash
# Records the MDAnalysis fixtures of tests/analysis.rs: runs mdrun on argon_256.toml to make a
# small unwrapped trajectory (tests/data/analysis/argon_256.xyz), then MDAnalysis (PyPI) computes
# g(r) (InterRDF) and the MSD (EinsteinMSD, FFT) of it into tests/fixtures/mdanalysis_*.csv.
#   benches/mdanalysis/make_fixtures.sh        (MDANALYSIS_PYTHON: a python with MDAnalysis and tidynamics)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
python=${MDANALYSIS_PYTHON:-$HOME/.cache/mdrun-mda/bin/python}
if ! "$python" -c "import MDAnalysis, tidynamics" 2>/dev/null; then
  python3 -m venv "$HOME/.cache/mdrun-mda" && "$HOME/.cache/mdrun-mda/bin/pip" install -q MDAnalysis tidynamics
  python=$HOME/.cache/mdrun-mda/bin/python
fi
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mdrun-target}
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CARGO_TARGET_DIR/release/mdrun" "$here/argon_256.toml" --output-dir "$tmp" --quiet
mkdir -p "$root/tests/data/analysis"
cp "$tmp/argon_256.xyz" "$root/tests/data/analysis/argon_256.xyz"
"$python" "$here/fixtures.py" "$root/tests/data/analysis/argon_256.xyz" "$root/tests/fixtures"
