#!/usr/bin/env bash
# Tresor at scale, written to docs/bench/SCALE.md: memory, latency and disk after a million KV
# entries and after 100,000 stored certificates, and the CRL rebuild after 10,000 revocations.
#
#   bench/scale.sh
#   KV_COUNT=200000 CERT_COUNT=20000 REVOKE_COUNT=2000 OUT=/tmp/s.md bench/scale.sh   # smaller
#   TRESOR_BIN=target/debug/tresor ...                                             # try it
#
# It builds Tresor in release mode, starts it on durable embedded storage (free 127.0.0.1 port,
# no TLS, no audit device, one unseal key), and with `tresor bench` and bench/scale.py:
#  1. reads a fresh 1,000-key KV v2 mount (the baseline);
#  2. writes KV_COUNT distinct KV v2 entries (kv-write distinct = true into one mount) in chunks
#     of KV_CHUNK, stopping early if KV_BUDGET seconds are spent (the count reached is what the
#     report states), then records RSS, on-disk size and kv-read latency over those keys;
#  3. issues CERT_COUNT stored EC P-256 certificates (pki-issue), records RSS and the latency of
#     LIST certs pages (after/limit), revokes REVOKE_COUNT of them (the first REVOKE_DEFAULT with
#     the mount's default CRL settings, the rest with auto_rebuild=true) and times crl/rotate.
# Every figure in SCALE.md comes from this run; the server is stopped by PID on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
KV_COUNT=${KV_COUNT:-1000000}
KV_CHUNK=${KV_CHUNK:-100000}
KV_SIZE=${KV_SIZE:-64}
KV_BUDGET=${KV_BUDGET:-420}
CERT_COUNT=${CERT_COUNT:-100000}
REVOKE_COUNT=${REVOKE_COUNT:-10000}
# Revocations made with the CRL configuration a new mount has (each one rebuilds the CRL)
# before auto_rebuild is switched on for the rest.
REVOKE_DEFAULT=${REVOKE_DEFAULT:-1000}
CONCURRENCY=${CONCURRENCY:-32}
READ_DURATION=${READ_DURATION:-10s}
THREADS=${THREADS:-1}
OUT=${OUT:-docs/bench/SCALE.md}
COMPARE="python3 $ROOT/bench/compare.py"
SCALE="python3 $ROOT/bench/scale.py"

PIDS=()
WORK=$(mktemp -d /tmp/tresor-scale.XXXXXX)
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '==> %s\n' "$*" >&2; }
note() { printf '%s\n' "$*" >>"$WORK/commands.txt"; }
if [ -n "${TRESOR_BIN:-}" ]; then
  TRESOR=$TRESOR_BIN
else
  log "building tresor (cargo build --release -p tresor)"
  note "cargo build --release -p tresor"
  cargo build --release -p tresor
  TRESOR=target/release/tresor
fi
"$TRESOR" bench -help 2>/dev/null | grep -q 'pki-issue' || { echo "error: $TRESOR bench has no pki-issue workload" >&2; exit 1; }
STARTED=$(date +%s)

DIRTY=no
[ -z "$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] || DIRTY=yes
cat >"$WORK/settings.txt" <<EOF
date=$(date -u +"%Y-%m-%d %H:%M:%S UTC")
commit=$(git -C "$ROOT" rev-parse --short HEAD)
dirty=$DIRTY
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
kv_target=$KV_COUNT
kv_chunk=$KV_CHUNK
kv_size=$KV_SIZE
kv_budget=$KV_BUDGET
cert_target=$CERT_COUNT
revoke_target=$REVOKE_COUNT
concurrency=$CONCURRENCY
read_duration=$READ_DURATION
threads=$THREADS
tresor_bin=${TRESOR#"$ROOT"/}
EOF

# --- Tresor on durable embedded storage -------------------------------------------------------
PORT=$($COMPARE free-port)
ADDR=http://127.0.0.1:$PORT
mkdir -p "$WORK/data"
cat >"$WORK/tresor.hcl" <<EOF
storage "embedded" {
  path = "$WORK/data"
}
listener "tcp" {
  address     = "127.0.0.1:$PORT"
  tls_disable = true
}
api_addr      = "$ADDR"
disable_mlock = true
EOF
log "starting Tresor on 127.0.0.1:$PORT"
note "$TRESOR server -config=$WORK/tresor.hcl"
"$TRESOR" server -config="$WORK/tresor.hcl" >"$WORK/tresor.log" 2>&1 &
PID=$!
PIDS+=("$PID")
$COMPARE init "$ADDR" "$WORK/token" || { tail -20 "$WORK/tresor.log" >&2; exit 1; }
note "# PUT /v1/sys/init {\"secret_shares\":1,\"secret_threshold\":1}, PUT /v1/sys/unseal, wait for sys/health 200"
export VAULT_TOKEN
VAULT_TOKEN=$(cat "$WORK/token")
echo "tresor_label=Tresor $($COMPARE version "$ADDR")" >>"$WORK/settings.txt"
sleep 1
$SCALE snapshot "$PID" "$WORK/data" idle >>"$WORK/facts.txt"

bench() {
  # bench <output.json> <tresor bench flags...>
  local out=$1
  shift
  note "$TRESOR bench -address=$ADDR $* -concurrency=$CONCURRENCY -threads=$THREADS -format=json"
  "$TRESOR" bench -address="$ADDR" "$@" -concurrency="$CONCURRENCY" -threads="$THREADS" \
    -format=json >"$out"
}

# --- 1. Baseline: kv-read on a fresh 1,000-key mount ------------------------------------------
log "baseline: kv-read on a fresh 1,000-key mount ($READ_DURATION)"
bench "$WORK/kv-read-baseline.json" -workload=kv-read -duration="$READ_DURATION" -warmup=1s

# --- 2. KV_COUNT distinct KV v2 entries -------------------------------------------------------
note "# POST /v1/sys/mounts/scale-kv {\"type\":\"kv\",\"options\":{\"version\":\"2\"}}"
$SCALE enable-kv "$ADDR" scale-kv
written=0
chunk_no=0
kv_started=$(date +%s)
while [ "$written" -lt "$KV_COUNT" ]; do
  spent=$(( $(date +%s) - kv_started ))
  if [ "$spent" -ge "$KV_BUDGET" ]; then
    log "KV write budget of ${KV_BUDGET}s spent after $written entries: stopping there"
    echo "kv.stopped_early=1" >>"$WORK/facts.txt"
    break
  fi
  n=$(( KV_COUNT - written < KV_CHUNK ? KV_COUNT - written : KV_CHUNK ))
  cat >"$WORK/fill-$chunk_no.hcl" <<EOF
test "kv-write" "fill" {
  config {
    mount     = "scale-kv"
    distinct  = true
    first_key = $written
    kvsize    = $KV_SIZE
  }
}
EOF
  log "writing keys $written..$(( written + n - 1 ))"
  note "# $WORK/fill-$chunk_no.hcl: test \"kv-write\" \"fill\" { config { mount = \"scale-kv\", distinct = true, first_key = $written, kvsize = $KV_SIZE } }"
  bench "$WORK/fill-$chunk_no.json" -config="$WORK/fill-$chunk_no.hcl" -requests="$n"
  written=$(( written + n ))
  chunk_no=$(( chunk_no + 1 ))
done
echo "kv.chunks=$chunk_no" >>"$WORK/facts.txt"
echo "kv.fill_seconds=$(( $(date +%s) - kv_started ))" >>"$WORK/facts.txt"
$SCALE snapshot "$PID" "$WORK/data" after_kv >>"$WORK/facts.txt"

log "kv-read over the $written keys ($READ_DURATION)"
cat >"$WORK/read.hcl" <<EOF
test "kv-read" "read-scale" {
  config {
    mount  = "scale-kv"
    numkvs = $written
  }
}
EOF
note "# $WORK/read.hcl: test \"kv-read\" \"read-scale\" { config { mount = \"scale-kv\", numkvs = $written } }"
bench "$WORK/kv-read-scale.json" -config="$WORK/read.hcl" -duration="$READ_DURATION" -warmup=1s
$SCALE snapshot "$PID" "$WORK/data" after_kv_read >>"$WORK/facts.txt"

# --- 3. CERT_COUNT stored certificates ---------------------------------------------------------
log "issuing $CERT_COUNT stored EC P-256 certificates"
bench "$WORK/issue.json" -workload=pki-issue -key-type=ec -key-bits=256 -requests="$CERT_COUNT" -cleanup=false
PKI_MOUNT=$($SCALE find-pki-mount "$ADDR")
echo "pki.mount=$PKI_MOUNT" >>"$WORK/facts.txt"
$SCALE snapshot "$PID" "$WORK/data" after_certs >>"$WORK/facts.txt"

log "LIST certs with after/limit on $PKI_MOUNT"
note "# LIST /v1/$PKI_MOUNT/certs?limit=1000 (first page, a page deep in the list with after=, and a walk over every page)"
$SCALE list-certs "$ADDR" "$PKI_MOUNT" >"$WORK/list.json"

log "revoking $REVOKE_COUNT certificates, then timing crl/rotate"
note "# POST /v1/$PKI_MOUNT/revoke {\"serial_number\": ...} x $REVOKE_DEFAULT (16 parallel clients); POST /v1/$PKI_MOUNT/config/crl {\"auto_rebuild\": true}; POST /v1/$PKI_MOUNT/revoke x the rest of $REVOKE_COUNT; then POST /v1/$PKI_MOUNT/crl/rotate x 5 and GET /v1/$PKI_MOUNT/crl checked with openssl crl"
$SCALE revoke-and-rotate "$ADDR" "$PKI_MOUNT" "$REVOKE_COUNT" "$REVOKE_DEFAULT" "$WORK/list.json" >"$WORK/crl.json"
$SCALE snapshot "$PID" "$WORK/data" after_crl >>"$WORK/facts.txt"

echo "total_seconds=$(( $(date +%s) - STARTED ))" >>"$WORK/facts.txt"
echo "kv_written=$written" >>"$WORK/facts.txt"

case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
$SCALE report "$WORK" "$OUT"
