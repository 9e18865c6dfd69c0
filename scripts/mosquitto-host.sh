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
#   ingestors:  MQTT_URL=mqtt://ingestor:$MQTT_INGESTOR_PASSWORD@127.0.0.1:PORT
#   generators: MQTT_URL=mqtt://generator:$MQTT_GENERATOR_PASSWORD@127.0.0.1:PORT
#   the API and mosquitto_sub: anonymous, read-only (MQTT_URL=mqtt://127.0.0.1:PORT)
# MOSQUITTO_DRY_RUN=1 writes everything and prints the command instead of
# starting the broker.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(realpath -m "${1:-mosquitto-host}")
port=${2:-1883}
: "${MQTT_INGESTOR_PASSWORD:?set MQTT_INGESTOR_PASSWORD (the ingestors' MQTT password)}"
: "${MQTT_GENERATOR_PASSWORD:?set MQTT_GENERATOR_PASSWORD (the generators' MQTT password)}"
command -v mosquitto_passwd >/dev/null || { echo "mosquitto_passwd not found (Debian: apt-get install mosquitto)" >&2; exit 1; }

mkdir -p "$dir/data"
umask 077
rm -f "$dir/passwd"
mosquitto_passwd -c -b "$dir/passwd" ingestor "$MQTT_INGESTOR_PASSWORD"
mosquitto_passwd -b "$dir/passwd" generator "$MQTT_GENERATOR_PASSWORD"
cp deploy/mosquitto/acl "$dir/acl"
# The project's settings, with this host's paths and port.
sed -e "s|^listener 1883|listener $port|" \
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
if [ -n "${MOSQUITTO_DRY_RUN:-}" ]; then
  echo "mosquitto -c $dir/mosquitto.conf"
  exit 0
fi
exec mosquitto -c "$dir/mosquitto.conf"
