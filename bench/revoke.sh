#!/usr/bin/env bash
# revoke.sh <tresor binary>: a token-create run of 3 s (every token a child of one parent),
# then the bench's cleanup, which revokes the parent and so every child; prints the time.
set -euo pipefail
BIN=$1
W=$(mktemp -d /tmp/rv.XXXXXX)
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat >"$W/t.hcl" <<HCL
storage "embedded" {
  path = "$W/data"
}
listener "tcp" {
  address     = "127.0.0.1:$PORT"
  tls_disable = true
}
disable_mlock = true
HCL
"$BIN" server -config="$W/t.hcl" >"$W/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; for i in $(seq 50); do kill -0 $PID 2>/dev/null || break; sleep 0.1; done; kill -9 $PID 2>/dev/null; rm -rf "$W"' EXIT
python3 "$(dirname "$0")/compare.py" init "http://127.0.0.1:$PORT" "$W/token" >/dev/null
S=$(date +%s.%N)
VAULT_TOKEN=$(cat "$W/token") "$BIN" bench -address="http://127.0.0.1:$PORT" -workload=token-create -duration=3s -warmup=0s -concurrency=32 -threads=1 -format=json > "$W/out.json"
E=$(date +%s.%N)
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); w=d['workloads'][0]; n=w.get('ok', w.get('requests', 0)); print('created/s', round(w['ok_per_second']), 'total s', round(float(sys.argv[2])-float(sys.argv[3]),1), 'cleanup s', round(float(sys.argv[2])-float(sys.argv[3])-3,1), 'tokens', round(w['ok_per_second']*3))" "$W/out.json" $E $S
