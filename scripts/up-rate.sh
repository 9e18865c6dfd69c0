#!/usr/bin/env bash
# What `datastream up` on its embedded defaults (embedded broker, SQLite)
# sustains: one generator at RATE readings/s over 100 devices, the default
# generators removed; every 10 s for SECONDS, the readings stored per
# second (against RATE, the offered load), the process's resident memory,
# and the load average.
#
#   scripts/up-rate.sh [RATE] [SECONDS]        # defaults 2000 180; B=binary
set -euo pipefail
B=${B:-$HOME/.cache/datastream-target/release/datastream}
RATE=${1:-2000}; SECONDS_TOTAL=${2:-180}
fp() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
d=$(mktemp -d); api=$(fp); mqtt=$(fp); gen=$(fp)
ADMIN_PASSWORD=rate-password API_LISTEN=127.0.0.1:$api MQTT_LISTEN=127.0.0.1:$mqtt GENERATOR_LISTEN=127.0.0.1:$gen \
  DATABASE_URL=sqlite://$d/datastream.db $B up > $d/up.log 2>&1 &
pid=$!
for _ in $(seq 1 60); do curl -fsS http://127.0.0.1:$api/readyz >/dev/null 2>&1 && break; sleep 0.5; done
# Only the fast generator: the defaults paused.
for g in temperature-abc-1 humidity-abc-1 pressure-def-2; do
  mosquitto_pub -p $mqtt -q 1 -r -t datastream/generators/$g/config -n; done
mosquitto_pub -p $mqtt -q 1 -r -t datastream/generators/fast/config -m "{\"sensor_type\":\"temperature\",\"id1\":\"FAST\",\"id2\":1,\"id2_end\":100,\"frequency_hz\":$(python3 -c "print($RATE/100)")}"
stored() { curl -fsS http://127.0.0.1:$api/metrics | awk '/^datastream_ingest_readings_total\{outcome="inserted"\}/ {print $2}'; }
backlog() { curl -fsS http://127.0.0.1:$api/metrics | awk '/^datastream_ingest_unacked_messages/ {print $2}'; }
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status; }
sleep 3; s0=$(stored); t0=$(date +%s.%N)
echo "t(s) stored/s rss(MiB) unacked load"
for i in $(seq 10 10 $SECONDS_TOTAL); do
  sleep 10
  s=$(stored); t=$(date +%s.%N)
  echo "$i $(python3 -c "print(round(($s-$s0)/($t-$t0)))") $(rss) $(backlog) $(cut -d' ' -f1 /proc/loadavg)"
  s0=$s; t0=$t
done
kill -TERM $pid; wait $pid || true
rm -rf $d
