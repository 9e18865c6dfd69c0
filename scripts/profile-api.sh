#!/usr/bin/env bash
# Counts the instructions the API spends per request, with callgrind.
#
# Wall-clock benchmarks on a shared 2-core machine drift by more than a small
# change to the read path is worth; an instruction count does not (the same
# binary and requests give the same count whatever else the machine does).
# Run it on the build before and after a change to compare them exactly.
#
#   DATABASE_URL=mysql://root@127.0.0.1:3306/dsquery \
#     scripts/profile-api.sh target/release/datastream [REQUESTS]
#
# The database must hold `datastream bench query`'s readings and its
# `query-bench` user (run the benchmark once first). Sends REQUESTS (default
# 1000) sequential "latest 100 of one device" requests after 50 untimed ones,
# prints instructions per request and leaves the callgrind profile for
# `callgrind_annotate` in the directory it names. Needs valgrind and python3.
set -euo pipefail

bin=${1:?usage: profile-api.sh BINARY [REQUESTS]}
requests=${2:-1000}
: "${DATABASE_URL:?set DATABASE_URL to the database bench query loaded}"
out=$(mktemp -d)
port=${PROFILE_API_PORT:-18091}

export JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
export API_LISTEN=127.0.0.1:$port API_WORKERS=1 RUST_LOG=warn

valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.out.%p" "$bin" api 2>"$out/valgrind.log" &
api=$!
trap 'kill $api 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 1
done

# Sequential keep-alive requests with a token minted for `query-bench`, so
# that no login (argon2) lands in the profile.
drive() {
  python3 - "$port" "$1" <<'EOF'
import base64, hashlib, hmac, http.client, json, os, random, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "query-bench", "role": "admin", "iat": now, "exp": now + 3600}).encode())
sig = b64(hmac.new(os.environ["JWT_SECRET"].encode(), head + b"." + body, hashlib.sha256).digest())
auth = {"Authorization": "Bearer " + (head + b"." + body + b"." + sig).decode()}
conn = http.client.HTTPConnection("127.0.0.1", port)
rng = random.Random(1)
for _ in range(n):
    conn.request("GET", f"/api/v1/readings?id1=QUERYBENCH&id2={rng.randrange(1000)}&limit=100", headers=auth)
    response = conn.getresponse()
    text = response.read()
    if response.status != 200:
        sys.exit(f"HTTP {response.status}: {text[:200]!r}")
EOF
}

drive 50
callgrind_control --zero "$api" >/dev/null 2>&1
drive "$requests"
callgrind_control --dump "$api" >/dev/null 2>&1
sleep 1
total=$(grep -h '^totals:' "$out"/callgrind.out.*.1 | awk '{print $2}')
echo "instructions per request: $((total / requests)) ($total over $requests requests)"
echo "profile: $(ls "$out"/callgrind.out.*.1)"
