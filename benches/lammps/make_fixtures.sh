#!/usr/bin/env bash
# Runs the real LAMMPS (../shared/bench/lammps) on the reference decks and records its thermo
# output as test fixtures, so the tests compare with LAMMPS without needing it installed.
#   benches/lammps/make_fixtures.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lammps=${LAMMPS:-$root/../shared/bench/lammps}
out=$root/tests/fixtures
mkdir -p "$out"
cd "$here"
thermo_rows() { grep -E '^\s+[0-9]+\s+[-0-9.]' || true; }

{
  echo "# LAMMPS 22 Jul 2025 update 4: benches/lammps/in.nve-drift, columns: step temp pe ke etotal press (lj units, per atom)"
  "$lammps" run in.nve-drift | thermo_rows
} > "$out/lammps_nve_drift.txt"

{
  echo "# LAMMPS 22 Jul 2025 update 4: benches/lammps/in.lj (step 0 and 100 steps), columns: step temp epair emol etotal press (lj units, per atom)"
  "$lammps" run in.lj | thermo_rows
} > "$out/lammps_in_lj.txt"
echo "wrote $out/lammps_nve_drift.txt and $out/lammps_in_lj.txt"

# The deck tests (tests/lammps_decks.rs): each deck's thermo tables (header and rows), as LAMMPS
# prints them, with 15 significant digits (the decks set thermo_modify format float %20.15g).
decks=$root/tests/decks
scratch=$(mktemp -d)
for deck in units-lj units-metal units-real setup morse displace nvt npt npt-metal minimize berendsen; do
  {
    echo "# LAMMPS 22 Jul 2025 update 4: tests/decks/in.$deck, thermo tables (header + rows)"
    (cd "$scratch" && "$lammps" run "$decks/in.$deck" -var data "$scratch/units.data") \
      | awk '/^ +Step /{on=1} /^Loop time/{on=0} on' | grep -v '^\s*$'
  } > "$out/lammps_${deck//-/_}.txt"
done
(cd "$scratch" && "$lammps" run "$decks/in.dump" -var out "$scratch/lammps" >/dev/null)
cp "$scratch/lammps.custom" "$out/lammps_dump.custom"
cp "$scratch/lammps.atom" "$out/lammps_dump.atom"
rm -rf "$scratch"
echo "wrote $out/lammps_units_{lj,metal,real}.txt, lammps_setup.txt, lammps_morse.txt, lammps_displace.txt, lammps_{nvt,npt,npt_metal,minimize,berendsen}.txt and $out/lammps_dump.{custom,atom}"
