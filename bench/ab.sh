#!/usr/bin/env bash
# A/B of Tresor builds on durable embedded storage: ab.sh <bin> <workload-flags...>
# Starts <bin> server on a fresh store, inits/unseals, runs one bench, prints ok/s, stops it.
set -euo pipefail
BIN=$1; shift
W=$(mktemp -d /tmp/ab.XXXXXX)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat >"$W/t.hcl" <<HCL
storage "embedded" {
  path = "$W/data"
}
listener "tcp" {
  address     = "127.0.0.1:$PORT"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:$PORT"
disable_mlock = true
HCL
"$BIN" server -config="$W/t.hcl" >"$W/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; for i in $(seq 50); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done; kill -9 $PID 2>/dev/null; rm -rf "$W"' EXIT
python3 "$(dirname "$0")/compare.py" init "http://127.0.0.1:$PORT" "$W/token" >/dev/null
VAULT_TOKEN=$(cat "$W/token") "$BIN" bench -address="http://127.0.0.1:$PORT" "$@" -concurrency=32 -threads=1 -format=json > "$W/out.json"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); w=d[\"workloads\"][0]; print(w[\"workload\"], round(w[\"ok_per_second\"]), w[\"errors\"], w[\"latency_ms\"][\"p50\"])" "$W/out.json"
