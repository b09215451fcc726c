#!/usr/bin/env bash
# A/B of Tresor builds, interleaved per run: ab_loop.sh "<bin> <bin> ..." "<workload flags>;<workload flags>;..." <rounds>
# e.g. bench/ab_loop.sh "/tmp/tresor-old target/release/tresor" "-workload=token-create -cleanup=false" 8
# Each run is bench/ab.sh on a fresh durable store, 5 s after a 1 s warm-up.
set -euo pipefail
here=$(dirname "$0")
IFS=';' read -ra WL <<< "$2"
for w in "${WL[@]}"; do
  for r in $(seq "$3"); do
    for b in $1; do
      # shellcheck disable=SC2086
      out=$("$here/ab.sh" "$b" $w -duration=5s -warmup=1s 2>&1 | tail -1)
      echo "$(date +%H:%M:%S) $b r$r $w :: $out"
    done
  done
done
