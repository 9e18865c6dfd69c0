#!/usr/bin/env bash
# A second datastream deployment on the same MariaDB server, kept busy:
# `datastream up` on a database of its own (embedded broker, free ports)
# with back-dated readings published into 72 past hours every 0.2 s, so its
# rollup refresher and retention sweeper take their named locks all the
# time. CI runs the test suite beside it: every test must pass while another
# deployment works on the same server (DESIGN.md, "Shared servers").
#
#   scripts/busy-neighbour.sh start DIR   # starts it; DIR keeps its state
#   scripts/busy-neighbour.sh stop DIR    # stops it, checks it refreshed, drops its database
#
# Needs DATASTREAM_BIN (the binary) and DATASTREAM_TEST_MYSQL (the server).
set -euo pipefail
action=${1:?start or stop}
dir=${2:?a directory for the state of the neighbour}
bin=${DATASTREAM_BIN:?set DATASTREAM_BIN}
server=${DATASTREAM_TEST_MYSQL:-mysql://root@127.0.0.1:3306/test}
# 72 readings, one in each of the 72 hours before this one, at an instant
# that differs every round.
backdated_readings() {
  python3 - "$1" <<'PY'
import datetime, json, sys
hour = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
r = int(sys.argv[1])
print(json.dumps([
    {"sensor_value": r % 100, "sensor_type": "neighbour", "id1": "NEIGHBOUR", "id2": 1,
     "timestamp": (hour - datetime.timedelta(hours=h + 1) + datetime.timedelta(microseconds=r % 3_600_000_000))
         .isoformat().replace("+00:00", "Z")}
    for h in range(72)
]))
PY
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

case "$action" in
start)
  mkdir -p "$dir"
  db="ci_neighbour_$$"
  mariadb -uroot -h127.0.0.1 -e "CREATE DATABASE \`$db\`"
  echo "$db" >"$dir/database"
  api=$(free_port)
  mqtt=$(free_port)
  echo "$api" >"$dir/api_port"
  env -u MQTT_URL DATABASE_URL="${server%/*}/$db" API_LISTEN="127.0.0.1:$api" \
    MQTT_LISTEN="127.0.0.1:$mqtt" GENERATOR_LISTEN="127.0.0.1:$(free_port)" \
    ADMIN_PASSWORD=neighbour-password RETENTION=30d GENERATORS_FILE="$dir/generators.json" \
    "$bin" up >"$dir/up.log" 2>&1 &
  echo $! >"$dir/up.pid"
  for _ in $(seq 1 120); do
    curl -fsS "http://127.0.0.1:$api/readyz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  curl -fsS "http://127.0.0.1:$api/readyz" >/dev/null || { cat "$dir/up.log"; exit 1; }
  # Back-dated readings: one per past hour, a new instant each round, so
  # every round marks 72 ended hours dirty again.
  (
    round=0
    while kill -0 "$(cat "$dir/up.pid")" 2>/dev/null; do
      round=$((round + 1))
      payload=$(backdated_readings "$round")
      mosquitto_pub -h 127.0.0.1 -p "$mqtt" -q 1 -t sensors/neighbour/NEIGHBOUR/1 -m "$payload" || true
      sleep 0.2
    done
  ) >/dev/null 2>&1 &
  echo $! >"$dir/publisher.pid"
  echo "busy neighbour: datastream up on database $db (API 127.0.0.1:$api), publishing into 72 past hours"
  ;;
stop)
  api=$(cat "$dir/api_port")
  refreshed=$(curl -fsS "http://127.0.0.1:$api/metrics" | awk '/^datastream_rollup_hours_refreshed_total/ {print $2}')
  kill "$(cat "$dir/publisher.pid")" 2>/dev/null || true
  kill -TERM "$(cat "$dir/up.pid")" 2>/dev/null || true
  for _ in $(seq 1 40); do
    kill -0 "$(cat "$dir/up.pid")" 2>/dev/null || break
    sleep 0.5
  done
  mariadb -uroot -h127.0.0.1 -e "DROP DATABASE IF EXISTS \`$(cat "$dir/database")\`"
  echo "busy neighbour stopped: its refresher rebuilt ${refreshed:-0} hours meanwhile"
  if [ "${refreshed:-0}" = 0 ]; then
    echo "the neighbour never refreshed: it was not busy; its log:" >&2
    tail -n 50 "$dir/up.log" >&2
    exit 1
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR" >&2
  exit 2
  ;;
esac
