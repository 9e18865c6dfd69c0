#!/usr/bin/env bash
# The docker-compose topology as local processes, for machines without a
# Docker engine: a Mosquitto of its own (the project's mosquitto.conf and
# ACL on a free port, with generated passwords), MariaDB, two generators, three ingestors in one group, two API
# replicas. Checks that every published reading lands exactly once, that all
# three ingestors took a share, and that both APIs answer.
#
#   scripts/local-cluster.sh            # uses target/debug/datastream (builds it if missing)
#   DATASTREAM_BIN=path/to/datastream scripts/local-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${DATASTREAM_BIN:-${CARGO_TARGET_DIR:-target}/debug/datastream}
[ -x "$bin" ] || cargo build --bin datastream
seconds=${CLUSTER_SECONDS:-8}
work=$(mktemp -d)
db="dscluster_$$"
pids=()

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # url
  for _ in $(seq 1 100); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "no answer from $1" >&2; return 1
}
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  mariadb -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS $db" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -n 20 "$work"/*.log >&2 || true; exit 1; }

# Broker: the project's mosquitto.conf on a free port with private storage.
mqtt_port=$(free_port)
mkdir -p "$work/mosquitto"
sed -e "s|^listener .*|listener $mqtt_port 127.0.0.1|" \
    -e "s|^persistence_location .*|persistence_location $work/mosquitto/|" \
    -e "s|^password_file .*|password_file $work/passwd|" \
    -e "s|^acl_file .*|acl_file $PWD/deploy/mosquitto/acl|" \
    mosquitto.conf > "$work/mosquitto.conf"
echo "user root" >> "$work/mosquitto.conf" # started as root it would switch to `mosquitto`
ingestor_pw="ingestor-$$-$RANDOM"; generator_pw="generator-$$-$RANDOM"
mosquitto_passwd -c -b "$work/passwd" ingestor "$ingestor_pw"
mosquitto_passwd -b "$work/passwd" generator "$generator_pw"
mosquitto -c "$work/mosquitto.conf" > "$work/mosquitto.log" 2>&1 & pids+=($!)
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && break; sleep 0.1; done
# Each role logs in as the ACL's user for it; watchers stay anonymous.
ingestor_url="mqtt://ingestor:$ingestor_pw@127.0.0.1:$mqtt_port"
generator_url="mqtt://generator:$generator_pw@127.0.0.1:$mqtt_port"

# Database.
mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE $db"
export DATABASE_URL="mysql://root@127.0.0.1:3306/$db"
"$bin" migrate > "$work/migrate.log" 2>&1 || fail "migrate"

# Everyone who watches the stream sees every reading: count them.
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -q 1 -t 'sensors/#' > "$work/published.txt" 2> "$work/watch.log" & pids+=($!)

# Three ingestors in one shared-subscription group.
ingest_ports=()
for i in 1 2 3; do
  port=$(free_port); ingest_ports+=("$port")
  MQTT_URL="$ingestor_url" INGEST_GROUP="cluster-$$" INGEST_CLIENT_ID="cluster-$$-ingestor-$i" INGEST_LISTEN="127.0.0.1:$port" \
    "$bin" ingestor > "$work/ingestor-$i.log" 2>&1 & pids+=($!)
done
for port in "${ingest_ports[@]}"; do wait_http "http://127.0.0.1:$port/readyz" || fail "ingestor on $port not ready"; done

# Two API replicas.
export JWT_SECRET="local-cluster-secret-$(date +%s%N)-0123456789abcdef"
export ADMIN_PASSWORD="local-cluster-admin"
api_ports=()
for i in 1 2; do
  port=$(free_port); api_ports+=("$port")
  API_LISTEN="127.0.0.1:$port" "$bin" api > "$work/api-$i.log" 2>&1 & pids+=($!)
done
for port in "${api_ports[@]}"; do wait_http "http://127.0.0.1:$port/readyz" || fail "api on $port not ready"; done

# Two generators of different sensor types, for a while.
gen_pids=()
MQTT_URL="$generator_url" "$bin" generator --sensor-type temperature --frequency-hz 100 --id1 CLUSTER --id2 1 > "$work/gen-1.log" 2>&1 & gen_pids+=($!)
MQTT_URL="$generator_url" "$bin" generator --sensor-type humidity --frequency-hz 100 --id1 CLUSTER --id2 2 > "$work/gen-2.log" 2>&1 & gen_pids+=($!)
sleep "$seconds"
for pid in "${gen_pids[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
sleep 1 # the watcher receives the last readings

published=$(grep -c . "$work/published.txt" || true)
[ "$published" -gt 0 ] || fail "nothing was published"
stored=0
for _ in $(seq 1 100); do
  stored=$(mariadb -uroot -h127.0.0.1 -N -e "SELECT COUNT(*) FROM $db.sensor_data WHERE id1 = 'CLUSTER'")
  [ "$stored" -ge "$published" ] && break
  sleep 0.2
done
[ "$stored" -eq "$published" ] || fail "published $published readings, stored $stored"

shares=()
for port in "${ingest_ports[@]}"; do
  n=$(curl -fsS "http://127.0.0.1:$port/metrics" | awk -F' ' '/^datastream_ingest_readings_total\{outcome="inserted"\}/ {print int($2)}')
  [ "${n:-0}" -gt 0 ] || fail "ingestor on $port took no share"
  shares+=("$n")
done
total=$(( shares[0] + shares[1] + shares[2] ))
[ "$total" -eq "$published" ] || fail "ingestors inserted $total, published $published"

for port in "${api_ports[@]}"; do
  token=$(curl -fsS -X POST "http://127.0.0.1:$port/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$ADMIN_PASSWORD\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') \
    || fail "login on api $port"
  n=$(curl -fsS "http://127.0.0.1:$port/api/v1/readings?id1=CLUSTER&limit=5" -H "Authorization: Bearer $token" \
    | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["data"]))') || fail "query on api $port"
  [ "$n" -eq 5 ] || fail "api $port returned $n readings"
done

echo "local cluster ok: $published readings published, $stored stored once each; ingestor shares ${shares[*]}; both APIs answer"
