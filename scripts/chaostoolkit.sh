#!/usr/bin/env bash
# Chaos Toolkit against the real servers through `sovereign proxy` (issue 13): the shipped
# experiment gamedays/chaostoolkit/uplink-latency.json, run twice.
#
#   1. a correct tower: the run must complete with the steady-state hypothesis met after
#      the method (fibre slowed, then down) and the rollback (reset) applied;
#   2. the same experiment against a tower started with the planted bug
#      `--plant no-failover` (it stays on its dead fibre link): the run must end deviated.
#      This is what shows the experiment can fail.
#
# Each run starts its own processes on free loopback ports with fresh data directories:
# an origin, the fault proxy (its Toxiproxy API; proxies `fibre` and `lte`, each in front
# of the origin's tower API), and a tower whose fibre and LTE uplinks go through them.
# Chaos Toolkit and its Toxiproxy extension (chaostoxi) come from PyPI, pinned in
# gamedays/chaostoolkit/requirements.txt, into a venv.
#
#   scripts/chaostoolkit.sh      # needs target/release/sovereign (cargo build --release)
#
# Environment (all optional):
#   SOVEREIGN_BIN         the binary (default target/release/sovereign)
#   CHAOSTOOLKIT_VENV     the venv (default target/chaostoolkit-venv; created if missing)
#   CHAOSTOOLKIT_REPORTS  journals, chaos logs and server logs (default reports/ci/chaostoolkit)
#   DRILL_READ_WAIT_S     the freshness bound of the device-read probe (default 60)
# Exit status: 0 when both runs ended as they must, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SOVEREIGN_BIN:-target/release/sovereign}
venv=${CHAOSTOOLKIT_VENV:-target/chaostoolkit-venv}
reports=${CHAOSTOOLKIT_REPORTS:-reports/ci/chaostoolkit}
experiment=gamedays/chaostoolkit/uplink-latency.json
requirements=gamedays/chaostoolkit/requirements.txt
[ -x "$bin" ] || { echo "$bin missing: cargo build --release" >&2; exit 2; }
export SOVEREIGN_BIN=$bin

# The venv, reinstalled only when the pinned requirements changed.
if ! cmp -s "$requirements" "$venv/requirements.txt" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/requirements.txt"
fi
"$venv/bin/chaos" --version

mkdir -p "$reports"
data=$(mktemp -d)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$data"' EXIT
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
wait_ok() { # URL [SECONDS]: wait for a 200
  for _ in $(seq $(( ${2:-60} * 10 ))); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; then return 0; fi
    sleep 0.1
  done
  echo "no 200 from $1 within ${2:-60} s" >&2
  return 1
}
json() { python3 -c "import json, sys; v = json.load(sys.stdin); print($1)"; }

# run NAME [PLANT]: start everything, run the experiment, keep the journal; prints nothing
# but the chaos output; the caller checks the journal.
run() {
  local name=$1 plant=${2:-} dir=$data/$1
  mkdir -p "$dir"
  local origin=127.0.0.1:$(free_port) origin_admin=127.0.0.1:$(free_port)
  "$bin" origin serve --data "$dir/origin" --listen "$origin" --admin-listen "$origin_admin" \
    2>"$reports/$name.origin.log" &
  pids+=($!)
  wait_ok "http://$origin/healthz"
  "$bin" origin add-tower --origin "http://$origin_admin" --tower 1 \
    --token "$SOVEREIGN_ADMIN_TOKEN_OPERATOR" --out "$dir/tower-1.credential" >/dev/null

  # The fault proxy: one proxy per uplink, both in front of the origin's tower API.
  local api=127.0.0.1:$(free_port)
  printf '[{"name":"fibre","listen":"127.0.0.1:%s","upstream":"%s"},{"name":"lte","listen":"127.0.0.1:%s","upstream":"%s"}]\n' \
    "$(free_port)" "$origin" "$(free_port)" "$origin" >"$dir/proxies.json"
  "$bin" proxy serve --listen "$api" --config "$dir/proxies.json" --seed 13 \
    2>"$reports/$name.proxy.log" &
  pids+=($!)
  wait_ok "http://$api/version"
  local fibre lte
  fibre=$(curl -s "http://$api/proxies/fibre" | json 'v["listen"]')
  lte=$(curl -s "http://$api/proxies/lte" | json 'v["listen"]')

  local tower=127.0.0.1:$(free_port) tower_admin=127.0.0.1:$(free_port)
  local plant_args=()
  [ -n "$plant" ] && plant_args=(--plant "$plant")
  "$bin" tower serve --id 1 --data "$dir/tower" --listen "$tower" --admin-listen "$tower_admin" \
    --uplink "fibre=http://$fibre" --uplink "lte=http://$lte" \
    --credential "$dir/tower-1.credential" --catalog-interval-s 1 --request-timeout-s 5 \
    "${plant_args[@]}" 2>"$reports/$name.tower.log" &
  pids+=($!)
  wait_ok "http://$tower/readyz"

  export TOXIPROXY_URL=http://$api TOWER_URL=http://$tower ORIGIN_ADMIN_URL=http://$origin_admin
  export DRILL_DIR=$dir
  # The notice's first version, read once through the fibre proxy before the experiment.
  gamedays/chaostoolkit/drill.sh publish
  gamedays/chaostoolkit/drill.sh read

  echo "--- chaos run ($name${plant:+, planted $plant})"
  rm -f "$reports/$name.journal.json"
  "$venv/bin/chaos" --no-version-check --log-file "$reports/$name.chaos.log" run \
    --rollback-strategy always --journal-path "$reports/$name.journal.json" "$experiment" ||
    true
  # The hypothesis once more after the rollback (the tower ready, a device reading the
  # newest notice), and what the proxy holds then, for the checks below.
  if gamedays/chaostoolkit/drill.sh read >/dev/null &&
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$tower/readyz")" = 200 ]; then
    echo met >"$reports/$name.after-rollback.txt"
  else
    echo "not met" >"$reports/$name.after-rollback.txt"
  fi
  curl -s "http://$api/proxies" >"$reports/$name.proxies-after.json"
  curl -s -H "Authorization: Bearer $SOVEREIGN_ADMIN_TOKEN_VIEWER" \
    "http://$tower_admin/admin/links" >"$reports/$name.links-after.json" || true
  stop_all
}

failed=()

run failover
# The hypothesis held before and after the method and after the rollback, the run
# completed, and the rollback (reset) ran and left the proxies as they were: enabled, no
# toxics.
if ! python3 - "$reports/failover.journal.json" "$reports/failover.proxies-after.json" \
  "$reports/failover.after-rollback.txt" <<'EOF'; then failed+=(failover); fi
import json, sys
j = json.load(open(sys.argv[1]))
p = json.load(open(sys.argv[2]))
problems = []
if j["status"] != "completed" or j["deviated"]:
    problems.append(f"status {j['status']}, deviated {j['deviated']}")
for phase in ("before", "after"):
    ss = (j.get("steady_states") or {}).get(phase) or {}
    if not ss.get("steady_state_met"):
        problems.append(f"hypothesis not met {phase} the method")
if not j.get("rollbacks") or any(r["status"] != "succeeded" for r in j["rollbacks"]):
    problems.append("the rollback did not run or failed")
for name, proxy in p.items():
    if not proxy["enabled"] or proxy["toxics"]:
        problems.append(f"proxy {name} not restored by the rollback: {proxy}")
if open(sys.argv[3]).read().strip() != "met":
    problems.append("the hypothesis is not met after the rollback")
if problems:
    print("chaostoolkit (failover): " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print("chaostoolkit (failover): completed; hypothesis met before and after the method and after the rollback, which restored the proxies")
EOF

run no-failover no-failover
# The same experiment against the planted bug must deviate: the after-method device read
# finds no fresh notice because the tower stayed on its dead fibre link.
if ! python3 - "$reports/no-failover.journal.json" <<'EOF'; then failed+=(no-failover); fi
import json, sys
j = json.load(open(sys.argv[1]))
before = ((j.get("steady_states") or {}).get("before") or {}).get("steady_state_met")
after = ((j.get("steady_states") or {}).get("after") or {}).get("steady_state_met")
if not (j["deviated"] and before and after is False):
    print(f"chaostoolkit (no-failover): expected a deviated run (hypothesis met before, "
          f"not after); got status {j['status']}, deviated {j['deviated']}, before {before}, "
          f"after {after}", file=sys.stderr)
    sys.exit(1)
print(f"chaostoolkit (no-failover): deviated as it must (status {j['status']}): the planted bug is caught")
EOF

if [ ${#failed[@]} -gt 0 ]; then
  echo "chaostoolkit: failed: ${failed[*]} (journals and logs in $reports)" >&2
  exit 1
fi
echo "chaostoolkit: both runs as expected (journals in $reports)"
