#!/usr/bin/env bash
# Runs Mosquitto on a plain host (no Docker) with the project's settings:
# mosquitto.conf and deploy/mosquitto/acl, a password file written from the
# environment, and a persistence directory the broker can write.
#
#   MQTT_INGESTOR_PASSWORD=… MQTT_GENERATOR_PASSWORD=… scripts/mosquitto-host.sh [DIR] [PORT]
#
# DIR (default ./mosquitto-host) receives the generated config, the
# password file (mode 0600) and the broker's data; PORT defaults to 1883.
# Then point the services at it:
#   ingestors, and the API's live stream:
#               MQTT_URL=mqtt://ingestor:$MQTT_INGESTOR_PASSWORD@127.0.0.1:PORT
#   generators: MQTT_URL=mqtt://generator:$MQTT_GENERATOR_PASSWORD@127.0.0.1:PORT
#   datastream up: MQTT_URL=mqtt://127.0.0.1:PORT plus
#               MQTT_INGESTOR_URL=mqtt://ingestor:…@127.0.0.1:PORT and
#               MQTT_GENERATOR_URL=mqtt://generator:…@127.0.0.1:PORT
#
# Safe by default on a shared host:
#   MOSQUITTO_BIND     the address it listens on (default 127.0.0.1;
#                      0.0.0.0 to accept other hosts).
#   MOSQUITTO_ANONYMOUS_READ=1  lets clients without a login watch sensors/#
#                      and the dead letters (mosquitto_sub with no -u);
#                      without it, anonymous clients are refused.
# MOSQUITTO_DRY_RUN=1 writes everything and prints the command instead of
# starting the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath -m "${1:-mosquitto-host}")
port=${2:-1883}
bind=${MOSQUITTO_BIND:-127.0.0.1}
: "${MQTT_INGESTOR_PASSWORD:?set MQTT_INGESTOR_PASSWORD (the ingestors' MQTT password)}"
: "${MQTT_GENERATOR_PASSWORD:?set MQTT_GENERATOR_PASSWORD (the generators' MQTT password)}"
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd not found (Debian: apt-get install mosquitto)" >&2; exit 1; }
if [ "${MOSQUITTO_ANONYMOUS_READ:-0}" = 1 ]; then
  anonymous=true
else
  anonymous=false
fi

mkdir -p "$dir/data"
umask 077
rm -f "$dir/passwd"
mosquitto_passwd -c -b "$dir/passwd" ingestor "$MQTT_INGESTOR_PASSWORD"
mosquitto_passwd -b "$dir/passwd" generator "$MQTT_GENERATOR_PASSWORD"
cp deploy/mosquitto/acl "$dir/acl"
# The project's settings, with this host's paths, address and port.
sed -e "s|^listener 1883|listener $port $bind|" \
  -e "s|^allow_anonymous .*|allow_anonymous $anonymous|" \
  -e "s|^password_file .*|password_file $dir/passwd|" \
  -e "s|^acl_file .*|acl_file $dir/acl|" \
  -e "s|^persistence_location .*|persistence_location $dir/data/|" \
  mosquitto.conf >"$dir/mosquitto.conf"
# Run as root, Mosquitto drops to the `mosquitto` user: it must own what it
# reads and writes.
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
  chown -R mosquitto: "$dir"
  if command -v runuser >/dev/null && ! runuser -u mosquitto -- test -r "$dir/passwd"; then
    echo "the mosquitto user cannot reach $dir (a parent directory is closed to it); choose a DIR under a world-readable path" >&2
    exit 1
  fi
fi
echo "mosquitto: listening on $bind:$port; anonymous clients $( [ "$anonymous" = true ] && echo 'may watch sensors/#' || echo 'are refused (MOSQUITTO_ANONYMOUS_READ=1 lets them watch)')" >&2
if [ -n "${MOSQUITTO_DRY_RUN:-}" ]; then
  echo "mosquitto -c $dir/mosquitto.conf"
  exit 0
fi
exec mosquitto -c "$dir/mosquitto.conf"
