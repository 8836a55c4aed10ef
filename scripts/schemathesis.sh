#!/usr/bin/env bash
# Property-based API tests with schemathesis against a live origin and tower: each
# server's own /openapi.json is the contract. Starts a real origin and a real tower (the
# release binary) on free loopback ports with temporary data directories, publishes one
# item so that reads reach real content, runs schemathesis on the four listeners (origin
# tower-facing API, origin admin, tower device API, tower admin), then stops both.
#
#   scripts/schemathesis.sh            # needs target/release/sovereign and schemathesis
#
# Checks: not_a_server_error (no 5xx but 503: scripts/schemathesis.toml),
# status_code_conformance, content_type_conformance, response_schema_conformance.
# Exit status: 0 when every run passed, 1 otherwise (reports in $SCHEMATHESIS_REPORTS).
#
# Environment (all optional):
#   SOVEREIGN_BIN               the binary (default target/release/sovereign)
#   SCHEMATHESIS_MAX_EXAMPLES   test cases per operation and phase (default 25)
#   SCHEMATHESIS_SEED           the generator's seed (default 1: the same cases each run)
#   SCHEMATHESIS_CHECKS         the checks (default: the four above; `all` for every one
#                               schemathesis has, e.g. to explore)
#   SCHEMATHESIS_REPORTS        where the JUnit reports and server logs go
#                               (default reports/ci/schemathesis)
#   SCHEMATHESIS_ADMIN_TOKEN    which role's token the admin runs use: viewer, operator
#                               (default) or chaos. Not chaos by default: fault injection
#                               (slow-disk up to 60 s per storage call) would only stall the
#                               run; as operator, the fault endpoints answer a documented 403.
#   SCHEMATHESIS_ORIGIN_HEADERS extra headers for every request to the origin's tower API,
#   SCHEMATHESIS_TOWER_HEADERS  and to the tower's device API: lines of `Name: value`
#                               (e.g. a tower credential or a device identity)
#   SOVEREIGN_ORIGIN_ARGS       extra flags for `sovereign origin serve`,
#   SOVEREIGN_TOWER_ARGS        and for `sovereign tower serve` (word-split)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SOVEREIGN_BIN:-target/release/sovereign}
examples=${SCHEMATHESIS_MAX_EXAMPLES:-25}
seed=${SCHEMATHESIS_SEED:-1}
reports=${SCHEMATHESIS_REPORTS:-reports/ci/schemathesis}
role=${SCHEMATHESIS_ADMIN_TOKEN:-operator}
checks=${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}
command -v schemathesis >/dev/null || { echo "schemathesis missing: pip install schemathesis" >&2; exit 2; }
[ -x "$bin" ] || { echo "$bin missing: cargo build --release" >&2; exit 2; }

data=$(mktemp -d)
mkdir -p "$reports"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$data"
}
trap stop EXIT
# Ctrl-C and kill end the script through its EXIT trap, so the servers it started stop too.
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
token() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export SOVEREIGN_ADMIN_TOKEN_VIEWER="viewer-$(token)"
export SOVEREIGN_ADMIN_TOKEN_OPERATOR="operator-$(token)"
export SOVEREIGN_ADMIN_TOKEN_CHAOS="chaos-$(token)"
case "$role" in
  viewer) admin_token=$SOVEREIGN_ADMIN_TOKEN_VIEWER ;;
  operator) admin_token=$SOVEREIGN_ADMIN_TOKEN_OPERATOR ;;
  chaos) admin_token=$SOVEREIGN_ADMIN_TOKEN_CHAOS ;;
  *) echo "SCHEMATHESIS_ADMIN_TOKEN: viewer, operator or chaos, not $role" >&2; exit 2 ;;
esac

wait_ok() { # URL: wait up to 60 s for a 200
  for _ in $(seq 600); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "no 200 from $1 within 60 s" >&2
  return 1
}

origin=127.0.0.1:$(free_port); origin_admin=127.0.0.1:$(free_port)
# shellcheck disable=SC2086 # word-split on purpose
"$bin" origin serve --data "$data/origin" --listen "$origin" --admin-listen "$origin_admin" \
  ${SOVEREIGN_ORIGIN_ARGS:-} 2>"$reports/origin.log" &
pids+=($!)
wait_ok "http://$origin/healthz"

head -c 300000 /dev/urandom >"$data/content.bin"
"$bin" origin publish --origin "http://$origin_admin" --id schemathesis-item --priority P1 \
  --token "$SOVEREIGN_ADMIN_TOKEN_OPERATOR" "$data/content.bin" >/dev/null

# Tower 1's credential at the origin (the origin refuses towers without one).
"$bin" origin add-tower --origin "http://$origin_admin" --tower 1 \
  --token "$SOVEREIGN_ADMIN_TOKEN_OPERATOR" --out "$data/tower-1.credential" >/dev/null
tower=127.0.0.1:$(free_port); tower_admin=127.0.0.1:$(free_port)
# shellcheck disable=SC2086
"$bin" tower serve --id 1 --data "$data/tower" --listen "$tower" --admin-listen "$tower_admin" \
  --uplink "fibre=http://$origin" --credential "$data/tower-1.credential" \
  --catalog-interval-s 1 ${SOVEREIGN_TOWER_ARGS:-} 2>"$reports/tower.log" &
pids+=($!)
wait_ok "http://$tower/healthz"
wait_ok "http://$tower/v1/items/schemathesis-item"
chunk=$(curl -s "http://$tower/v1/items/schemathesis-item/manifest" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["chunks"][0]["sha256"])')
config=$data/schemathesis.toml
{ cat scripts/schemathesis.toml; printf '\n[dictionaries.chunks]\nvalues = ["%s"]\n' "$chunk"; } >"$config"

# run NAME DOC_URL BASE_URL HEADER_LINES FILTER…
failed=()
run() {
  local name=$1 doc=$2 base=$3 header_lines=$4
  shift 4
  local headers=()
  while IFS= read -r h; do [ -n "$h" ] && headers+=(-H "$h"); done <<<"$header_lines"
  echo "--- schemathesis: $name ($base)"
  if ! schemathesis --config-file "$config" run "$doc" --url "$base" \
    --checks "$checks" \
    --max-examples "$examples" --seed "$seed" --workers 1 --request-timeout 30 \
    --report junit --report-junit-path "$reports/$name.junit.xml" \
    "${headers[@]}" "$@"; then
    failed+=("$name")
  fi
}

# By default the tower API is called as tower 1 with its credential, and the device API as
# one device (its secret), so that the authenticated paths are exercised too; schemathesis
# still tries requests without them.
origin_headers=${SCHEMATHESIS_ORIGIN_HEADERS-"x-sovereign-tower: 1
Authorization: Bearer $(cat "$data/tower-1.credential")"}
device_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
tower_headers=${SCHEMATHESIS_TOWER_HEADERS-"Authorization: Device $device_secret"}
run origin "http://$origin/openapi.json" "http://$origin" "$origin_headers" \
  --exclude-tag admin
# GET /admin/events is an endless server-sent-event stream: every call would run into
# the request timeout (tests/events.rs in simulator/cli tests it instead).
run origin-admin "http://$origin/openapi.json" "http://$origin_admin" \
  "Authorization: Bearer $admin_token" --include-tag admin --exclude-path /admin/events
run tower "http://$tower/openapi.json" "http://$tower" "$tower_headers" \
  --exclude-tag admin
run tower-admin "http://$tower/openapi.json" "http://$tower_admin" \
  "Authorization: Bearer $admin_token" --include-tag admin --exclude-path /admin/events

if [ "${#failed[@]}" -gt 0 ]; then
  echo "schemathesis: failures in ${failed[*]} (reports and server logs in $reports)" >&2
  exit 1
fi
echo "schemathesis: origin, origin-admin, tower and tower-admin conform to their documents"
