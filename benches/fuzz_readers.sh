#!/usr/bin/env bash
# Fuzzes every reader of user files with cargo-fuzz (libFuzzer), SECONDS_EACH seconds each
# (default 600): the system.toml plan, structure files through chemfiles, checkpoints, model
# cards and weights, extended XYZ datasets, thermo logs and trajectories for analysis, and the
# LAMMPS deck reader. Prints one table row per target: executions, executions per second,
# peak memory, the corpus it grew, and findings (inputs that crashed, hung or ran out of
# memory; libFuzzer stops a target at its first finding, so rerun it once that is fixed). A finding is
# kept in fuzz/artifacts/<target>/; copy it to fuzz/seeds/<target>/ and `cargo test --test
# fuzz_seeds` replays it from then on.
#   benches/fuzz_readers.sh [TARGET...]     (default: all eight)
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`); the first build
# takes 20 to 60 minutes on two cores. `-s none`: chemfiles' C++ would otherwise link gcc's
# ASan runtime beside rustc's, which fails at start; libFuzzer still catches every panic.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fuzz=$(cd "$here/../fuzz" && pwd)
seconds=${SECONDS_EACH:-600}
targets=${*:-plan structure checkpoint model dataset thermo_log trajectory deck}
cd "$fuzz"
cargo +nightly fuzz build -O -s none >&2
echo "$(nproc) cores, $seconds s per target, $(date -u +%Y-%m-%d)"
echo
echo "| target | executions | per second | peak RSS MB | corpus | findings |"
echo "|---|---|---|---|---|---|"
for t in $targets; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  # -rss_limit_mb: an input may not take more memory than this; -timeout: nor longer (a hang).
  cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -O -s none -- \
    -max_total_time="$seconds" -print_final_stats=1 -rss_limit_mb=2048 -timeout=20 \
    -artifact_prefix="artifacts/$t/" >"$log" 2>&1 || true
  runs=$(grep -ao 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
  rss=$(grep -ao 'stat::peak_rss_mb: [0-9]*' "$log" | awk '{print $2}' | tail -1 || true)
  # libFuzzer's "Done N runs in T second(s)" line gives the rate over the whole run.
  rate=$(grep -ao 'Done [0-9]* runs in [0-9]* second' "$log" | awk '{ if ($5 > 0) printf "%d", $2 / $5 }' | tail -1 || true)
  corpus=$(find "corpus/$t" -type f | wc -l)
  findings=$(find "artifacts/$t" -type f | wc -l)
  echo "| $t | ${runs:-?} | ${rate:-?} | ${rss:-?} | $corpus | $findings |"
  if [ "$findings" -gt 0 ]; then
    grep -aE 'panicked|ERROR|SUMMARY' "$log" | head -5 | sed 's/^/    /' >&2
  fi
  rm -f "$log"
done
