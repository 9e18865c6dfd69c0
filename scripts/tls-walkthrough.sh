#!/usr/bin/env bash
# TLS as an operator turns it on, checked with clients nobody here wrote
# (curl, mosquitto_pub): a development certificate from
# scripts/dev-certificate.sh, `datastream up` with TLS_CERT_FILE and
# TLS_KEY_FILE on free ports, then
#   - the API answers HTTPS with that certificate, and nothing in the clear;
#   - a reading published with mosquitto_pub over the embedded broker's TLS
#     listener is served back over HTTPS.
#
#   DATASTREAM_BIN=target/debug/datastream scripts/tls-walkthrough.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DATASTREAM_BIN:-target/debug/datastream}
work=$(mktemp -d)
up_pid=""
cleanup() {
  [ -n "$up_pid" ] && kill -TERM "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; tail -n 40 "$work/up.log" >&2 || true; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

scripts/dev-certificate.sh "$work/tls" localhost 127.0.0.1
ca="$work/tls/ca.pem"
api=$(free_port) mqtt_tls=$(free_port)
TLS_CERT_FILE="$work/tls/server.pem" TLS_KEY_FILE="$work/tls/server.key" \
  API_LISTEN="127.0.0.1:$api" MQTT_TLS_LISTEN="127.0.0.1:$mqtt_tls" \
  MQTT_LISTEN="127.0.0.1:$(free_port)" GENERATOR_LISTEN="127.0.0.1:$(free_port)" \
  GRPC_LISTEN="127.0.0.1:$(free_port)" DATABASE_URL="sqlite://$work/datastream.db" \
  ADMIN_PASSWORD=tls-walkthrough-password "$bin" up >"$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 1 60); do
  curl -fsS --cacert "$ca" "https://localhost:$api/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS --cacert "$ca" "https://localhost:$api/readyz" >/dev/null || fail "no HTTPS answer on $api"
for _ in $(seq 1 40); do
  grep -q 'Ctrl-C stops cleanly' "$work/up.log" && break
  sleep 0.5
done
grep -q "https://127.0.0.1:$api/api/v1" "$work/up.log" || fail "the banner does not say https"
if curl -fsS --max-time 5 "http://127.0.0.1:$api/readyz" >/dev/null 2>&1; then
  fail "the API answered plain HTTP"
fi
echo "API: HTTPS with the development certificate; plain HTTP refused"

token=$(curl -fsS --cacert "$ca" -X POST "https://localhost:$api/api/v1/auth/login" \
  -H 'content-type: application/json' -d '{"username":"admin","password":"tls-walkthrough-password"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
mosquitto_pub --cafile "$ca" -h localhost -p "$mqtt_tls" -q 1 -t sensors/temperature/TLSWALK/1 \
  -m "{\"sensor_value\": 21.5, \"sensor_type\": \"temperature\", \"id1\": \"TLSWALK\", \"id2\": 1, \"timestamp\": \"$now\"}" ||
  fail "mosquitto_pub over TLS"
for _ in $(seq 1 40); do
  if curl -fsS --cacert "$ca" "https://localhost:$api/api/v1/readings?id1=TLSWALK" -H "Authorization: Bearer $token" |
    python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["data"] else 1)' 2>/dev/null; then
    echo "MQTT over TLS: a reading published with mosquitto_pub --cafile was stored and served over HTTPS"
    exit 0
  fi
  sleep 0.5
done
fail "the reading published over TLS was not served"
