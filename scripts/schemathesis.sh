#!/usr/bin/env bash
# Checks both OpenAPI documents against running servers with schemathesis,
# every check on (schemathesis.toml at the repository root says what no
# schema can state). Bounded: --max-examples per operation, a fixed seed.
#
#   scripts/schemathesis.sh API_URL GENERATORS_URL USERNAME PASSWORD [MAX_EXAMPLES]
#
# Run it against a `datastream up` of its own: it creates, edits and
# deletes users, readings and generators (never the account it logs in as:
# the API refuses that).
set -euo pipefail
cd "$(dirname "$0")/.."
api=$1 generators=$2 username=$3 password=$4 examples=${5:-25}

token=$(curl -fsS -X POST "$api/api/v1/auth/login" -H 'content-type: application/json' \
  -d "{\"username\":\"$username\",\"password\":\"$password\"}" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

status=0
# Runs schemathesis on one document with extra options, then checks that
# the admin token still works: a run whose token died tested only 401s.
check() {
  local target=$1
  shift
  echo "== schemathesis: $target/api-docs/openapi.json $*"
  st run "$target/api-docs/openapi.json" --url "$target" \
    -H "Authorization: Bearer $token" --checks all \
    --max-examples "$examples" --seed 20261202 "$@" || status=1
  code=$(curl -s -o /dev/null -w '%{http_code}' "$api/api/v1/users" -H "Authorization: Bearer $token")
  if [ "$code" != 200 ]; then
    echo "the admin token stopped working during the run (GET /api/v1/users: $code)"
    status=1
  fi
}

# The live stream is read for two seconds per request (schemathesis.toml),
# and every event checked against its schema.
check "$api"
check "$generators"
exit "$status"
