#!/usr/bin/env bash
# Does a change show? Runs two mdrun binaries on every example and every deck and compares what
# a user sees (screen output less timings, every file written), then times the LJ benchmark
# alternately with each.
#   benches/compare_binaries.sh OLD_BINARY NEW_BINARY [alternations (default 6)]
# Build the old one from a worktree, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release --bin mdrun)
# Examples run 100 steps on 2 threads (argon and quickstart also with --platform gpu); decks
# run with and without -sf gpu. Checkpoints are left out (their header names the binary's
# format version).
set -uo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); alternations=${3:-6}
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT; [ -n "${KEEP:-}" ] && trap - EXIT && echo "keeping $tmp"
# Lines that carry timings (and the platform line, which names the thread count's timing).
filter() { grep -vE "Loop time|Total wall time|Performance|ns/day|atom-steps/s|time split|force split|progress:|Platform|platform:|^ *[0-9.]+ *$" "$1"; }
for b in old new; do mkdir -p $tmp/$b; cp -r "$root/systems" $tmp/$b/; ln -s "$root/potentials" $tmp/$b/potentials; done
binary() { if [ "$1" = old ]; then echo "$old"; else echo "$new"; fi; }
compare() { # $1, $2: the old and new run folders; $3: the screen output file name
  local s="screen $(diff <(filter "$1/$3") <(filter "$2/$3") > /dev/null && echo same || echo DIFFERENT)"
  for f in $(cd "$2" && find . -type f ! -name "*.chk" ! -name "$3" ! -name err.txt ! -name "in.*" ! -name "*.data" ! -name system.toml ! -name "*.xyz" -newer "$2/.start" | sort); do
    case "$f" in
      *.log|*.lammps) diff <(filter "$1/$f") <(filter "$2/$f") > /dev/null && s="$s, $f same" || s="$s, $f DIFFERENT" ;;
      *) cmp -s "$1/$f" "$2/$f" && s="$s, $f same" || s="$s, $f DIFFERENT" ;;
    esac
  done
  echo "$s"
}
for ex in argon acetamide chain quickstart lj-bench; do
  for platform in cpu gpu; do
    [ $platform = gpu ] && [ $ex != argon ] && [ $ex != quickstart ] && continue
    for b in old new; do
      d=$tmp/$b/systems/$ex; touch $d/.start; sleep 1
      (cd $d && timeout 600 "$(binary $b)" system.toml --threads 2 --steps 100 --platform $platform --output-dir out-$platform > screen-$platform.txt 2> err.txt)
    done
    echo "$ex ($platform): $(compare $tmp/old/systems/$ex $tmp/new/systems/$ex screen-$platform.txt)"
  done
done
for deck in "$root"/systems/argon-deck/in.argon "$root"/tests/decks/in.*; do
  name=$(basename "$deck")
  for platform in cpu gpu; do
    for b in old new; do
      d=$tmp/$b/deck-$name-$platform; mkdir -p $d; cp -r "$(dirname "$deck")"/* $d/; touch $d/.start; sleep 1
      sf=(); [ $platform = gpu ] && sf=(-sf gpu)
      (cd $d && timeout 300 "$(binary $b)" -in "$name" -log log.lammps "${sf[@]}" > screen.txt 2> err.txt)
    done
    echo "$name ($platform): $(compare $tmp/old/deck-$name-$platform $tmp/new/deck-$name-$platform screen.txt)$(head -c 90 $tmp/new/deck-$name-$platform/err.txt | sed 's/^/; refused: /')"
  done
done
# The LJ benchmark, alternately: median M atom-steps/s and force time per binary and thread count.
cp "$root/systems/lj-bench/system.toml" $tmp/
for threads in 1 2; do
  for k in $(seq "$alternations"); do
    for b in old new; do
      (cd $tmp && "$(binary $b)" system.toml --threads $threads -q --summary s.json > /dev/null 2>&1)
      echo "$threads $b $(python3 -c "import json; s=json.load(open('$tmp/s.json')); print(s['atom_steps_per_s'] / 1e6, s['time_force_s'])")"
    done
  done
done | python3 -c "
import sys, statistics, collections
runs = collections.defaultdict(list)
for line in sys.stdin:
    t, b, rate, force = line.split()
    runs[(t, b)].append((float(rate), float(force)))
for (t, b), v in sorted(runs.items()):
    rates = [r for r, _ in v]
    print(f'LJ benchmark, {t} thread(s), {b}: median {statistics.median(rates):.3f} M atom-steps/s (range {min(rates):.2f}-{max(rates):.2f}), force {statistics.median(f for _, f in v):.3f} s')
"
