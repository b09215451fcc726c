#!/usr/bin/env bash
# Runs every fuzz target (or those named) one after another for SECONDS each (default 600) on
# its corpus in fuzz/corpus/<target>, which grows with what the run finds; logs go to
# fuzz/target/logs/<target>.log. Minimise the corpora afterwards with
# `cargo fuzz cmin <target>` (docs/fuzzing.md).
#   usage: fuzz/run-all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
export RUSTC_BOOTSTRAP=1
# Build once, then run the binaries themselves: a crate edited meanwhile is not rebuilt between
# two targets.
[ -n "${NO_BUILD:-}" ] || nice -n 19 cargo fuzz build -O -a || exit 1
export ASAN_OPTIONS=detect_odr_violation=0
mkdir -p target/logs
for t in "${targets[@]}"; do
  start=$(date +%s)
  mkdir -p "corpus/$t" "artifacts/$t"
  nice -n 19 "target/x86_64-unknown-linux-gnu/release/$t" -artifact_prefix="artifacts/$t/" \
    -max_total_time="$secs" -timeout="${TIMEOUT:-1200}" -rss_limit_mb=2048 -print_final_stats=1 "corpus/$t" \
    >"target/logs/$t.log" 2>&1
  rc=$?
  end=$(date +%s)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "target/logs/$t.log" | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "target/logs/$t.log" | tail -n 1)
  done_line=$(grep -o 'Done [0-9]* runs in [0-9]* second' "target/logs/$t.log" | tail -n 1)
  echo "$t rc=$rc wall=$((end - start))s executions=${runs:-?} ${cov:-} (${done_line:-no final line})" | tee -a target/logs/summary
done
