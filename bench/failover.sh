#!/usr/bin/env bash
# Failover on etcd (issue 17): three etcd members and three `tresor server`s with HA on
# 127.0.0.1. Under a steady KV write load (each acknowledged write recorded), the active server
# is killed with SIGKILL; the time until one of the others answers `sys/leader` with
# `is_self: true` is the failover time, and every acknowledged write must then be readable.
# The killed server is restarted and unsealed (it comes back as a standby) before the next
# round.
#   usage: bench/failover.sh [ROUNDS]       (default 10)
#   env:   TRESOR_BIN (default target/release/tresor), KEEP=1 keeps the work directory
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
bin=${TRESOR_BIN:-target/release/tresor}
for c in etcd curl jq "$bin"; do
  command -v "$c" >/dev/null || { echo "failover.sh: $c not found" >&2; exit 2; }
done
bin=$(realpath "$bin")
work=$(mktemp -d)
pids=()
cleanup() {
  exec 2>/dev/null # no "Killed" job notices
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now_ms() { date +%s%3N; }

# --- etcd: three members ---
cluster=""; clients=()
declare -a peer_ports client_ports
for i in 1 2 3; do peer_ports[$i]=$(free_port); client_ports[$i]=$(free_port); done
for i in 1 2 3; do cluster+="${cluster:+,}n$i=http://127.0.0.1:${peer_ports[$i]}"; done
for i in 1 2 3; do
  etcd --name "n$i" --data-dir "$work/etcd$i" \
    --listen-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${client_ports[$i]}" \
    --listen-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer_ports[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state new \
    >"$work/etcd$i.log" 2>&1 &
  pids+=($!)
  disown "$!"
  clients+=("127.0.0.1:${client_ports[$i]}")
done
etcd_addr=$(IFS=,; echo "${clients[*]/#/http://}")

# --- three servers ---
declare -a port spid
start_server() { # $1: index
  local i=$1 d="$work/s$1"
  mkdir -p "$d"
  cat >"$d/config.hcl" <<EOF
storage "etcd" {
  address    = "$etcd_addr"
  path       = "/failover/"
  ha_enabled = "true"
}
listener "tcp" {
  address     = "127.0.0.1:${port[$i]}"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:${port[$i]}"
cluster_addr  = "https://127.0.0.1:${port[$i]}"
disable_mlock = true
log_level     = "warn"
EOF
  (cd "$d" && exec "$bin" server -config=config.hcl >>"$d/server.log" 2>&1) &
  spid[$i]=$!
  pids+=($!)
  disown "$!" # no "Killed" job notice when a round kills it
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:${port[$i]}/v1/sys/seal-status" && return 0
    sleep 0.1
  done
  echo "server $i did not start" >&2; cat "$d/server.log" >&2; exit 1
}
addr() { echo "http://127.0.0.1:${port[$1]}"; }
unseal() { curl -fs -X PUT -d "{\"key\":\"$key\"}" "$(addr "$1")/v1/sys/unseal" >/dev/null; }
is_active() { curl -fs -m 1 "$(addr "$1")/v1/sys/leader" 2>/dev/null | jq -e '.is_self == true' >/dev/null 2>&1; }

for i in 1 2 3; do port[$i]=$(free_port); done
for _ in $(seq 50); do etcdctl --endpoints="${clients[0]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
start_server 1
init=$(curl -fs -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "$(addr 1)/v1/sys/init")
key=$(jq -r '.keys_base64[0]' <<<"$init")
root=$(jq -r '.root_token' <<<"$init")
unseal 1
start_server 2; unseal 2
start_server 3; unseal 3
active=""
for _ in $(seq 100); do
  for i in 1 2 3; do is_active "$i" && active=$i; done
  [ -n "$active" ] && break; sleep 0.1
done
[ -n "$active" ] || { echo "no active server" >&2; exit 1; }
curl -fs -X POST -H "X-Vault-Token: $root" -d '{"type":"kv","options":{"version":"2"}}' \
  "$(addr "$active")/v1/sys/mounts/secret" >/dev/null

echo "round,killed,new_active,failover_ms,acknowledged,readable"
times=()
for r in $(seq "$rounds"); do
  acked="$work/acked.$r"; : >"$acked"; stop="$work/stop.$r"; rm -f "$stop"
  # The writer: one write at a time through whichever server answers, round robin.
  (
    n=0
    while [ ! -e "$stop" ]; do
      n=$((n + 1))
      for i in 1 2 3; do
        j=$(( (n + i) % 3 + 1 ))
        code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' -X POST -H "X-Vault-Token: $root" \
          -d "{\"data\":{\"n\":$n}}" "$(addr "$j")/v1/secret/data/r$r/k$n" || true)
        if [ "$code" = 200 ]; then echo "$n" >>"$acked"; break; fi
      done
    done
  ) &
  writer=$!
  sleep 1
  killed=$active
  kill -9 "${spid[$killed]}"
  t0=$(now_ms)
  new=""
  while [ -z "$new" ]; do
    for i in 1 2 3; do
      [ "$i" = "$killed" ] && continue
      is_active "$i" && new=$i && break
    done
    [ $(( $(now_ms) - t0 )) -gt 60000 ] && { echo "no failover within 60 s" >&2; exit 1; }
    [ -z "$new" ] && sleep 0.05
  done
  t1=$(now_ms)
  sleep 1
  touch "$stop"; wait "$writer" || true
  total=$(wc -l <"$acked"); ok=0
  while read -r n; do
    v=$(curl -fs -H "X-Vault-Token: $root" "$(addr "$new")/v1/secret/data/r$r/k$n" | jq -r '.data.data.n' || true)
    [ "$v" = "$n" ] && ok=$((ok + 1))
  done <"$acked"
  echo "$r,$killed,$new,$((t1 - t0)),$total,$ok"
  [ "$ok" = "$total" ] || { echo "acknowledged writes lost in round $r" >&2; exit 1; }
  times+=($((t1 - t0)))
  active=$new
  start_server "$killed"; unseal "$killed"
  sleep 0.5
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}' <<<"$sorted")
max=$(tail -n1 <<<"$sorted")
echo "failover over $rounds kills: median ${median} ms, max ${max} ms"
