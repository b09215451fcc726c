#!/usr/bin/env bash
# Storage and standby figures for issue 17, all on 127.0.0.1 in one run:
#   1. KV writes and reads per second on one server with the embedded store, and on one
#      server with `storage "etcd"` (three etcd members);
#   2. three HA servers on etcd: KV reads per second on the active and on one standby
#      (standbys serve KV reads themselves), and how many requests the active handled while
#      the load went only to the standby (its `vault.core.handle_request` count, from
#      `sys/metrics`, before and after).
#   usage: bench/etcd.sh [DURATION]     (default 8s per measurement)
#   env:   TRESOR_BIN (default target/release/tresor)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-8s}
bin=$(realpath "${TRESOR_BIN:-target/release/tresor}")
for c in etcd curl jq; do command -v "$c" >/dev/null || { echo "etcd.sh: $c not found" >&2; exit 2; }; done
work=$(mktemp -d)
pids=()
cleanup() { exec 2>/dev/null; for p in "${pids[@]}"; do kill -9 "$p"; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cluster=""; clients=(); declare -a pp cp
for i in 1 2 3; do pp[$i]=$(free_port); cp[$i]=$(free_port); cluster+="${cluster:+,}n$i=http://127.0.0.1:${pp[$i]}"; done
for i in 1 2 3; do
  etcd --name "n$i" --data-dir "$work/etcd$i" --listen-client-urls "http://127.0.0.1:${cp[$i]}" \
    --advertise-client-urls "http://127.0.0.1:${cp[$i]}" --listen-peer-urls "http://127.0.0.1:${pp[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${pp[$i]}" --initial-cluster "$cluster" \
    --initial-cluster-state new --max-txn-ops 4096 >"$work/etcd$i.log" 2>&1 &
  pids+=($!); disown "$!"
  clients+=("http://127.0.0.1:${cp[$i]}")
done
etcd_addr=$(IFS=,; echo "${clients[*]}")

# start NAME PORT STORAGE_STANZA EXTRA: a server in $work/NAME, waits until it answers.
start() {
  local d="$work/$1" port=$2
  mkdir -p "$d"
  cat >"$d/config.hcl" <<EOF
$3
listener "tcp" {
  address     = "127.0.0.1:$port"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:$port"
cluster_addr  = "https://127.0.0.1:$port"
disable_mlock = true
log_level     = "warn"
EOF
  (cd "$d" && exec "$bin" server -config=config.hcl >"$d/server.log" 2>&1) &
  pids+=($!); disown "$!"
  for _ in $(seq 150); do curl -fs -o /dev/null "http://127.0.0.1:$port/v1/sys/seal-status" && return 0; sleep 0.1; done
  echo "server $1 did not start" >&2; cat "$d/server.log" >&2; exit 1
}
init_unseal() { # PORT -> prints "KEY ROOT"
  local r; r=$(curl -fs -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "http://127.0.0.1:$1/v1/sys/init")
  echo "$(jq -r '.keys_base64[0]' <<<"$r") $(jq -r .root_token <<<"$r")"
}
unseal() { curl -fs -X PUT -d "{\"key\":\"$2\"}" "http://127.0.0.1:$1/v1/sys/unseal" >/dev/null; }
bench() { # PORT WORKLOAD -> ok/s
  VAULT_TOKEN=$root "$bin" bench -address="http://127.0.0.1:$1" -workload="$2" -concurrency=32 \
    -duration="$dur" -warmup=1s -format=json | jq -r '.workloads[0].ok_per_second' | xargs printf '%.0f'
}
handled() { # PORT -> the active's vault.core.handle_request count (empty without metrics)
  curl -fs -H "X-Vault-Token: $root" "http://127.0.0.1:$1/v1/sys/metrics?format=prometheus" 2>/dev/null |
    awk '/^vault_core_handle_request_count/ {print $2; exit}' || true
}

for _ in $(seq 50); do etcdctl --endpoints="${clients[0]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

echo "store,server,workload,ok_per_sec"
pe=$(free_port)
start embedded "$pe" 'storage "file" { path = "data" }'
read -r key root < <(init_unseal "$pe"); unseal "$pe" "$key"
echo "embedded,single,kv-write,$(bench "$pe" kv-write)"
echo "embedded,single,kv-read,$(bench "$pe" kv-read)"

po=$(free_port)
start etcd-single "$po" "storage \"etcd\" {
  address = \"$etcd_addr\"
  path    = \"/single/\"
}"
read -r key root < <(init_unseal "$po"); unseal "$po" "$key"
echo "etcd,single,kv-write,$(bench "$po" kv-write)"
echo "etcd,single,kv-read,$(bench "$po" kv-read)"

declare -a hp
for i in 1 2 3; do hp[$i]=$(free_port); done
ha_stanza="storage \"etcd\" {
  address    = \"$etcd_addr\"
  path       = \"/ha/\"
  ha_enabled = \"true\"
}"
start ha1 "${hp[1]}" "$ha_stanza"
read -r key root < <(init_unseal "${hp[1]}"); unseal "${hp[1]}" "$key"
start ha2 "${hp[2]}" "$ha_stanza"; unseal "${hp[2]}" "$key"
start ha3 "${hp[3]}" "$ha_stanza"; unseal "${hp[3]}" "$key"
active=""; standby=""
for _ in $(seq 100); do
  for i in 1 2 3; do
    if curl -fs "http://127.0.0.1:${hp[$i]}/v1/sys/leader" | jq -e '.is_self == true' >/dev/null 2>&1; then active=$i; fi
  done
  [ -n "$active" ] && break; sleep 0.1
done
for i in 1 2 3; do [ "$i" != "$active" ] && standby=$i && break; done
sleep 2 # standbys catch up with the feed
echo "etcd,ha-active,kv-read,$(bench "${hp[$active]}" kv-read)"
before=$(handled "${hp[$active]}")
sb_before=$(handled "${hp[$standby]}")
echo "etcd,ha-standby,kv-read,$(bench "${hp[$standby]}" kv-read)"
after=$(handled "${hp[$active]}")
sb_after=$(handled "${hp[$standby]}")
if [ -n "$before" ] && [ -n "$after" ]; then
  echo "# during the standby run the active handled $((after - before)) requests (the bench's setup and cleanup writes, forwarded: a mount, 1,000 seeded secrets, the unmount) and the standby $((sb_after - sb_before))"
fi
