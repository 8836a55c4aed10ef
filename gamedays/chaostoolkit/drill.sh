#!/usr/bin/env bash
# The two process activities of uplink-latency.json (scripts/chaostoolkit.sh sets the
# environment):
#
#   drill.sh publish   publish a new version of the P0 notice `uplink-drill` at the origin
#                      (its bytes are kept in $DRILL_DIR/notice.txt)
#   drill.sh read      a device read: GET the notice from the tower's device API until the
#                      bytes are the newest published ones; exit 0 when they are, 1 when
#                      DRILL_READ_WAIT_S (default 60) passed without them
#
# Environment: SOVEREIGN_BIN (default target/release/sovereign), DRILL_DIR, TOWER_URL,
# ORIGIN_ADMIN_URL, SOVEREIGN_ADMIN_TOKEN_OPERATOR.
set -euo pipefail
bin=${SOVEREIGN_BIN:-target/release/sovereign}
: "${DRILL_DIR:?}" "${TOWER_URL:?}"
item=uplink-drill
notice=$DRILL_DIR/notice.txt
case "${1:-}" in
  publish)
    : "${ORIGIN_ADMIN_URL:?}" "${SOVEREIGN_ADMIN_TOKEN_OPERATOR:?}"
    n=$(( $(cat "$DRILL_DIR/version" 2>/dev/null || echo 0) + 1 ))
    printf 'Drill notice version %s: boil water before drinking.\n' "$n" >"$notice.new"
    "$bin" origin publish --origin "$ORIGIN_ADMIN_URL" --id "$item" --priority P0 \
      --token "$SOVEREIGN_ADMIN_TOKEN_OPERATOR" "$notice.new" >/dev/null
    mv "$notice.new" "$notice"
    echo "$n" >"$DRILL_DIR/version"
    echo "published $item version $n"
    ;;
  read)
    wait_s=${DRILL_READ_WAIT_S:-60}
    deadline=$(( $(date +%s) + wait_s ))
    got=$DRILL_DIR/read.$$
    trap 'rm -f "$got"' EXIT
    while :; do
      status=$(curl -s -o "$got" -w '%{http_code}' --max-time 10 "$TOWER_URL/v1/items/$item" || true)
      if [ "$status" = 200 ] && cmp -s "$got" "$notice"; then
        echo "read the newest $item: $(cat "$got")"
        exit 0
      fi
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "no fresh $item within ${wait_s} s (last answer $status: $(head -c 100 "$got" 2>/dev/null))" >&2
        exit 1
      fi
      sleep 1
    done
    ;;
  *)
    echo "usage: drill.sh publish|read" >&2
    exit 2
    ;;
esac
