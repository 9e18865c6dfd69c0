#!/usr/bin/env bash
# datastream on a three-node MariaDB Galera cluster, all on this machine.
#
# Starts three Galera nodes (own data directories, client, replication, IST
# and SST ports on loopback), runs `datastream migrate` against one, then
# three ingestors in one shared-subscription group, each writing to a
# different node, one more ingestor in a group of its own (it stores every
# reading a second time, so the same rows are inserted on two nodes at once
# and Galera's certification conflicts are certain), and two APIs reading
# from nodes 2 and 3. While generators publish, node 1 is killed with
# SIGKILL and brought back (by IST). Passes when every published reading is
# stored exactly once on every node, both APIs answered throughout, and the
# ingestor of node 1 recovered by itself (it holds its batch unacked and
# retries until its node is back).
#
# Then measures rows landed per second through the cluster against the
# machine's single MariaDB on 127.0.0.1:3306, same batches, same run.
#
#   scripts/galera-cluster.sh            # uses target/debug/datastream (builds it if missing)
#   DATASTREAM_BIN=path/to/datastream GALERA_SECONDS=20 scripts/galera-cluster.sh
#   DATASTREAM_BENCH_BIN=target/release/datastream scripts/galera-cluster.sh   # figures for docs/SCALING.md
#
# Needs Debian's galera-4, mariadb-server, rsync, socat and mosquitto; run as
# root (the nodes drop to the mysql user, as rsync SST requires).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${DATASTREAM_BIN:-${CARGO_TARGET_DIR:-target}/debug/datastream}
[ -x "$bin" ] || cargo build --bin datastream
seconds=${GALERA_SECONDS:-16}
provider=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}
[ -f "$provider" ] || { echo "galera-4 is not installed ($provider): apt-get install galera-4" >&2; exit 1; }
work=$(mktemp -d /tmp/datastream-galera.XXXXXX)
chmod 755 "$work"
db=datastream
pids=()
node_pids=(0 0 0 0)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_http() { # url
  for _ in $(seq 1 150); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "no answer from $1" >&2; return 1
}
stop_nodes() {
  for n in 1 2 3; do
    [ "${node_pids[$n]}" != 0 ] && kill -TERM "${node_pids[$n]}" 2>/dev/null || true
  done
  for n in 1 2 3; do
    [ "${node_pids[$n]}" != 0 ] && { wait "${node_pids[$n]}" 2>/dev/null || true; }
  done
}
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  stop_nodes
  mariadb -uroot -h127.0.0.1 -P3306 -e "DROP DATABASE IF EXISTS dsgalera_single_$$" 2>/dev/null || true
  [ -n "${GALERA_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for f in "$work"/*.log "$work"/node*/error.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
  done
  exit 1
}
sql() { # node, statement...
  local n=$1; shift
  mariadb -uroot -h127.0.0.1 -P"${client_port[$n]}" -N -e "$*"
}

# --- The cluster -----------------------------------------------------------
client_port=(0); gcomm_port=(0); ist_port=(0); sst_port=(0)
for n in 1 2 3; do
  client_port+=("$(free_port)"); gcomm_port+=("$(free_port)")
  ist_port+=("$(free_port)"); sst_port+=("$(free_port)")
done
cluster_address="gcomm://127.0.0.1:${gcomm_port[1]},127.0.0.1:${gcomm_port[2]},127.0.0.1:${gcomm_port[3]}"

node_args() { # node
  local n=$1 dir="$work/node$1"
  # A dead node is evicted after ~3 s instead of the default ~6-15 s:
  # commits on the others wait for the eviction.
  local options="gmcast.listen_addr=tcp://127.0.0.1:${gcomm_port[$n]};ist.recv_addr=127.0.0.1:${ist_port[$n]}"
  options+=";gcache.size=128M;evs.keepalive_period=PT0.5S;evs.inactive_check_period=PT0.5S"
  options+=";evs.suspect_timeout=PT2S;evs.inactive_timeout=PT3S;evs.install_timeout=PT3S"
  printf '%s\n' --no-defaults --user=mysql --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" --port="${client_port[$n]}" \
    --bind-address=127.0.0.1 --skip-name-resolve=0 \
    --innodb-buffer-pool-size=256M --innodb-log-file-size=64M --innodb-flush-log-at-trx-commit=2 \
    --binlog-format=ROW --innodb-autoinc-lock-mode=2 --default-storage-engine=InnoDB \
    --wsrep-on=ON --wsrep-provider="$provider" --wsrep-cluster-name="datastream-$$" \
    --wsrep-cluster-address="$cluster_address" --wsrep-node-name="node$n" \
    --wsrep-node-address=127.0.0.1 --wsrep-node-incoming-address="127.0.0.1:${client_port[$n]}" \
    --wsrep-provider-options="$options" --wsrep-sst-method=rsync \
    --wsrep-sst-receive-address="127.0.0.1:${sst_port[$n]}"
}

start_node() { # node, extra mariadbd arguments...
  local n=$1; shift
  mapfile -t args < <(node_args "$n")
  /usr/sbin/mariadbd "${args[@]}" "$@" >>"$work/node$n/stdout.log" 2>&1 &
  node_pids[$n]=$!
}

wait_synced() { # node
  for _ in $(seq 1 300); do
    if [ "$(sql "$1" "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | cut -f2)" = Synced ]; then
      return 0
    fi
    kill -0 "${node_pids[$1]}" 2>/dev/null || fail "node $1 exited"
    sleep 0.2
  done
  fail "node $1 did not become Synced"
}

for n in 1 2 3; do
  mkdir -p "$work/node$n"
  mariadb-install-db --no-defaults --datadir="$work/node$n/data" --user=mysql \
    --auth-root-authentication-method=normal --skip-test-db >"$work/node$n/install.log" 2>&1 ||
    fail "mariadb-install-db for node $n"
done
chown -R mysql:mysql "$work"/node*
started=$(date +%s.%N)
start_node 1 --wsrep-new-cluster
wait_synced 1
start_node 2; start_node 3
wait_synced 2; wait_synced 3
size=$(sql 1 "SHOW STATUS LIKE 'wsrep_cluster_size'" | cut -f2)
[ "$size" = 3 ] || fail "cluster size $size, expected 3"
echo "Galera: 3 nodes Synced in $(python3 -c "import time; print(f'{time.time() - $started:.1f}')") s (client ports ${client_port[*]:1})"

# A user for the services on every node (DDL replicates).
sql 1 "CREATE DATABASE $db; CREATE USER 'datastream'@'127.0.0.1' IDENTIFIED BY 'galera-$$';
       GRANT ALL ON $db.* TO 'datastream'@'127.0.0.1'"
db_url() { echo "mysql://datastream:galera-$$@127.0.0.1:${client_port[$1]}/$db"; }
DATABASE_URL=$(db_url 1) "$bin" migrate >"$work/migrate.log" 2>&1 || fail "migrate"

# --- Broker and services ---------------------------------------------------
mqtt_port=$(free_port)
mkdir -p "$work/mosquitto"
sed -e "s|^listener .*|listener $mqtt_port 127.0.0.1|" \
    -e "s|^persistence_location .*|persistence_location $work/mosquitto/|" \
    -e '/^password_file /d' -e '/^acl_file /d' mosquitto.conf >"$work/mosquitto.conf"
echo "user root" >>"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 & pids+=($!)
for _ in $(seq 1 50); do port_open "$mqtt_port" && break; sleep 0.1; done
export MQTT_URL="mqtt://127.0.0.1:$mqtt_port"
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t 'sensors/#' >"$work/published.txt" 2>"$work/watch.log" & pids+=($!)

# Contention retries are logged at debug by the store: count them.
export RUST_LOG="info,rumqttd=off,rumqttc=warn,datastream_store::transaction=debug"
ingest_ports=()
start_ingestor() { # name, node, group
  local port; port=$(free_port); ingest_ports+=("$port")
  DATABASE_URL=$(db_url "$2") INGEST_GROUP="$3" INGEST_CLIENT_ID="galera-$$-$1" INGEST_LISTEN="127.0.0.1:$port" \
    "$bin" ingestor >"$work/ingestor-$1.log" 2>&1 & pids+=($!)
}
for n in 1 2 3; do start_ingestor "$n" "$n" "galera-$$"; done
start_ingestor mirror 3 "galera-mirror-$$"
for port in "${ingest_ports[@]}"; do wait_http "http://127.0.0.1:$port/readyz" || fail "ingestor on $port not ready"; done

export JWT_SECRET="galera-cluster-secret-$(date +%s%N)-0123456789abcdef"
export ADMIN_PASSWORD="galera-cluster-admin"
api_ports=()
for n in 2 3; do
  port=$(free_port); api_ports+=("$port")
  DATABASE_URL=$(db_url "$n") API_LISTEN="127.0.0.1:$port" "$bin" api >"$work/api-$n.log" 2>&1 & pids+=($!)
done
tokens=()
for port in "${api_ports[@]}"; do
  wait_http "http://127.0.0.1:$port/readyz" || fail "api on $port not ready"
  tokens+=("$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')") || fail "login on api $port"
done

# --- The stream, with node 1 killed and brought back -----------------------
gen_pids=()
for i in 1 2 3 4; do
  "$bin" generator --sensor-type temperature --frequency-hz 150 --id1 GALERA --id2 "$i" \
    >"$work/gen-$i.log" 2>&1 & gen_pids+=($!)
done
# Both APIs are asked every 0.2 s while it runs; every answer must be 200.
(
  while :; do
    for i in 0 1; do
      code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' \
        "http://127.0.0.1:${api_ports[$i]}/api/v1/readings?id1=GALERA&limit=1" -H "Authorization: Bearer ${tokens[$i]}")
      echo "$(date +%s.%N) api$((i + 2)) $code"
    done
    sleep 0.2
  done
) >"$work/api-probe.txt" & probe_pid=$!; pids+=($probe_pid)

sleep $(( seconds / 4 ))
kill -KILL "${node_pids[1]}"; wait "${node_pids[1]}" 2>/dev/null || true
node_pids[1]=0
echo "node 1 killed (SIGKILL) $(( seconds / 4 )) s into the stream"
sleep $(( seconds / 4 ))
# Recover node 1's position so that it rejoins by IST instead of a full copy.
mapfile -t args < <(node_args 1)
/usr/sbin/mariadbd "${args[@]}" --wsrep-recover --log-error="$work/node1/recover.log" >/dev/null 2>&1 || true
position=$(sed -n 's/.*WSREP: Recovered position: \(.*\)$/\1/p' "$work/node1/recover.log" | tail -n 1)
rejoin_started=$(date +%s.%N)
if [ -n "$position" ]; then start_node 1 --wsrep-start-position="$position"; else start_node 1; fi
wait_synced 1
echo "node 1 back and Synced in $(python3 -c "import time; print(f'{time.time() - $rejoin_started:.1f}')") s ($(grep -c 'IST received' "$work/node1/error.log" || true) IST)"
sleep $(( seconds / 2 ))
for pid in "${gen_pids[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
sleep 1
kill "$probe_pid" 2>/dev/null || true

# --- Checks ----------------------------------------------------------------
# Distinct readings: a QoS 1 message may reach the watcher twice.
published=$(sort -u "$work/published.txt" | grep -c . || true)
[ "$published" -gt 0 ] || fail "nothing was published"
declare -A stored
for n in 1 2 3; do
  for _ in $(seq 1 150); do
    stored[$n]=$(sql "$n" "SELECT COUNT(*) FROM $db.sensor_data WHERE id1 = 'GALERA'")
    distinct=$(sql "$n" "SELECT COUNT(DISTINCT id1, id2, sensor_type, timestamp) FROM $db.sensor_data WHERE id1 = 'GALERA'")
    [ "${stored[$n]}" -ge "$published" ] && break
    sleep 0.2
  done
  if [ "${stored[$n]}" -ne "$published" ]; then
    for m in 1 2 3; do
      echo "node $m: $(sql "$m" "SELECT COUNT(*) FROM $db.sensor_data WHERE id1 = 'GALERA'") readings" >&2
    done
    # Which published readings node n lacks (device and time).
    sort -u "$work/published.txt" | python3 -c '
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(r["id2"], r["timestamp"].replace("T", " ").rstrip("Z"))' | sort >"$work/published.keys"
    sql "$n" "SELECT id2, DATE_FORMAT(timestamp, '%Y-%m-%d %H:%i:%s.%f') FROM $db.sensor_data WHERE id1 = 'GALERA'" |
      tr '\t' ' ' | sort >"$work/stored.keys"
    echo "missing on node $n (first 20):" >&2
    comm -23 "$work/published.keys" "$work/stored.keys" | head -n 20 >&2
    fail "node $n holds ${stored[$n]} readings, $published were published"
  fi
  [ "$distinct" -eq "${stored[$n]}" ] || fail "node $n holds duplicates"
done
probes=$(grep -c . "$work/api-probe.txt" || true)
bad=$(grep -vc ' 200$' "$work/api-probe.txt" || true)
[ "$probes" -gt 10 ] || fail "the APIs were asked only $probes times"
[ "$bad" -eq 0 ] || { grep -v ' 200$' "$work/api-probe.txt" | head >&2; fail "$bad of $probes API answers were not 200"; }
retried=$(cat "$work"/ingestor-*.log | grep -c 'lost a deadlock' || true)
failed_commits=$(curl -fsS "http://127.0.0.1:${ingest_ports[0]}/metrics" |
  awk '/^datastream_ingest_commit_failures_total/ {print int($2)}')
shares=()
for port in "${ingest_ports[@]:0:3}"; do
  shares+=("$(curl -fsS "http://127.0.0.1:$port/metrics" |
    awk '/^datastream_ingest_readings_total\{outcome="inserted"\}/ {print int($2)}')")
done
echo "galera cluster ok: $published readings published, stored once on each node (${stored[1]}/${stored[2]}/${stored[3]});" \
  "ingestor shares ${shares[*]}; $retried certification conflicts (deadlock) retried;" \
  "node 1's ingestor held ${failed_commits:-0} failed commits unacked and recovered; $probes API answers, all 200"

# --- Rows landed per second: cluster against the single server -------------
# `datastream bench ingest` against each, same broker, same run: the storage
# limit (batches of 1,000 INSERT IGNOREs over one connection) and the whole
# pipeline at full speed. The services above are stopped first.
for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 & pids+=($!)
for _ in $(seq 1 50); do port_open "$mqtt_port" && break; sleep 0.1; done
measure_count=${GALERA_MEASURE_COUNT:-50000}
# A debug build measures itself more than the database: pass a release one.
bench_bin=${DATASTREAM_BENCH_BIN:-$bin}
measure() { # label, database url
  DATABASE_URL="$2" "$bench_bin" bench ingest --count "$measure_count" --rate 1000000000 \
    --naive-count 500 --drain-count 0 >"$work/bench-$1.txt" 2>>"$work/bench.log" || fail "bench ingest on $1"
  local storage landed
  storage=$(awk '/storage limit \(INSERT/ {print $(NF-1)}' "$work/bench-$1.txt")
  landed=$(awk '/pipeline, full speed/ {for (i = 1; i <= NF; i++) if ($i == "landed") print $(i-1)}' "$work/bench-$1.txt")
  echo "$1: storage limit ${storage%/s} rows/s, pipeline ${landed%/s} readings/s landed"
}
mariadb -uroot -h127.0.0.1 -P3306 -e "CREATE DATABASE dsgalera_single_$$"
single=$(measure single "mysql://root@127.0.0.1:3306/dsgalera_single_$$")
cluster=$(measure galera "$(db_url 2)")
echo "rows landed per second (datastream bench ingest --count $measure_count): $single; $cluster"
