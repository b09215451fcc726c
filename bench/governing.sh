#!/usr/bin/env bash
# Governing policies (issue 18): kv-read with a non-root token, without governing policies and
# with three EGPs on the mount and one RGP on the token, all matching and passing
# (bench/kv-read-governed.hcl), in alternating pairs against one `tresor server -dev`; then the
# per-evaluation costs from crates/tresor-govern/examples/eval_cost.rs. Writes the report.
#   usage: bench/governing.sh            (Tresor only: OpenBao has no governing policies)
#   env:   PAIRS (6), DURATION (10s), WARMUP (1s), CONCURRENCY (32),
#          OUT (docs/bench/ISSUE_18_governing.md), TRESOR_BIN (default: cargo build --release)
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${PAIRS:-6}
duration=${DURATION:-10s}
warmup=${WARMUP:-1s}
conc=${CONCURRENCY:-32}
out=${OUT:-docs/bench/ISSUE_18_governing.md}
# What the binaries are built from (before any build starts).
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- crates Cargo.toml Cargo.lock || commit+=" (with uncommitted changes)"
if [ -z "${TRESOR_BIN:-}" ]; then
  cargo build --release --locked -p tresor -p tresor-bench >&2
  cargo build --release --locked -p tresor-govern --example eval_cost >&2
  TRESOR_BIN=target/release/tresor
fi
bin=$(realpath "$TRESOR_BIN")
eval_cost=target/release/examples/eval_cost
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOME=$work "$bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$port" >"$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/v1/sys/health" >/dev/null && break
  sleep 0.1
done
export VAULT_TOKEN=root
run() { # $@: workload flags; prints ok/s
  "$bin" bench -address="http://127.0.0.1:$port" -duration="$duration" -warmup="$warmup" \
    -concurrency="$conc" -format=json "$@" | python3 -c 'import json,sys; w=json.load(sys.stdin)["workloads"][0]; assert w["errors"] == 0, w; print(w["ok_per_second"])'
}
rows=""
plain_sum=0
gov_sum=0
for i in $(seq "$pairs"); do
  p=$(run -workload=kv-read -non-root)
  g=$(run -config=bench/kv-read-governed.hcl)
  rows+=$(python3 -c "print(f'| $i | {float($p):,.0f} | {float($g):,.0f} | {100*float($g)/float($p):.1f}% |')")$'\n'
  plain_sum=$(python3 -c "print($plain_sum + $p)")
  gov_sum=$(python3 -c "print($gov_sum + $g)")
done
share=$(python3 -c "print(f'{100*$gov_sum/$plain_sum:.1f}')")
costs=$("$eval_cost" 50000)
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "# Governing policies (issue 18)"
  echo
  echo "Written by \`bench/governing.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit \`$commit\`."
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr); load average at the end: $load."
  echo
  echo "\`tresor server -dev\` (in-memory storage, release build), $conc connections, $duration after a $warmup warm-up,"
  echo "alternating: \`tresor bench -workload=kv-read -non-root\` and \`tresor bench -config=bench/kv-read-governed.hcl\`"
  echo "(the same reader token also holding one RGP, and three EGPs on the mount; all four match and pass)."
  echo
  echo "| pair | kv-read non-root ok/s | governed ok/s | share |"
  echo "|---:|---:|---:|---:|"
  printf '%s' "$rows"
  echo
  echo "Over the $pairs pairs: **$share%** of the throughput without governing policies (target: at least 85%)."
  echo
  echo "Per-evaluation costs, one core (\`cargo run --release -p tresor-govern --example eval_cost 50000\`):"
  echo
  echo '```'
  echo "$costs"
  echo '```'
} >"$out"
echo "wrote $out: $share%" >&2
