#!/usr/bin/env bash
# Makes a development CA and a server certificate it signed, for TLS in
# development and in docker compose (nginx, Mosquitto, datastream's own
# TLS_CERT_FILE / TLS_KEY_FILE):
#
#   scripts/dev-certificate.sh DIR [NAME...]
#
# DIR receives ca.pem (give it to clients: curl --cacert, MQTT_CA_FILE),
# ca.key (keep it private; it signs more certificates), server.pem and
# server.key (the server presents them). NAMEs are the DNS names and IP
# addresses the certificate is valid for (default: localhost 127.0.0.1).
# An existing CA in DIR is reused, so clients keep trusting it; the server
# certificate is made anew (valid 825 days). Needs openssl.
set -euo pipefail
dir=${1:?usage: scripts/dev-certificate.sh DIR [NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
mkdir -p "$dir"
cd "$dir"
if [ ! -f ca.pem ] || [ ! -f ca.key ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=datastream development CA" -keyout ca.key -out ca.pem 2>/dev/null
  echo "made a development CA: $dir/ca.pem" >&2
fi
san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then entry="IP:$name"; else entry="DNS:$name"; fi
  san="${san:+$san,}$entry"
done
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=${names[0]}" \
  -keyout server.key -out server.csr 2>/dev/null
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 \
  -extfile <(printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$san") \
  -out server.pem 2>/dev/null
rm -f server.csr ca.srl
chmod 600 ca.key server.key
# nginx and Mosquitto in their containers run as other users.
chmod 644 server.pem ca.pem
echo "made $dir/server.pem for: ${names[*]}" >&2
