#!/usr/bin/env bash
# What the project leaves on a shared Mosquitto: its retained messages under
# datastream/ and sensors/, and the number of persistent sessions with no
# client connected. CI records it before and after the test suite; any
# difference is something a test left behind.
#
#   scripts/shared-broker-state.sh [PORT] > state.txt
set -euo pipefail
port=${1:-1883}
timeout 5 mosquitto_sub -h 127.0.0.1 -p "$port" -t 'datastream/#' -t 'sensors/#' \
  --retained-only -W 2 -F 'retained %t' 2>/dev/null | sort || true
# $SYS figures are published every sys_interval (10 s by default): read the
# latest after the broker has had time to publish it.
total=$(timeout 15 mosquitto_sub -h 127.0.0.1 -p "$port" -t '$SYS/broker/clients/total' -C 1 -W 12 2>/dev/null || echo '?')
connected=$(timeout 15 mosquitto_sub -h 127.0.0.1 -p "$port" -t '$SYS/broker/clients/connected' -C 1 -W 12 2>/dev/null || echo '?')
if [ "$total" != '?' ] && [ "$connected" != '?' ]; then
  echo "disconnected sessions $((total - connected))"
else
  echo "disconnected sessions unknown"
fi
