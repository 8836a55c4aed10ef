#!/usr/bin/env bash
# Screenshots of what operators look at, kept as CI artefacts (issue 15): the storm
# report, a game day's report and the run index rendered by headless Chromium, and the
# console's end screen captured from a real terminal (tmux, with its colours), turned into
# HTML by `aha` (Debian's ANSI-to-HTML converter) and rendered by Chromium too.
#
#   scripts/screenshots.sh       # needs target/release/sovereign, chromium, tmux, aha
#
# Environment (all optional):
#   SOVEREIGN_BIN        the binary (default target/release/sovereign)
#   SCREENSHOTS_REPORTS  where the reports and PNGs go (default reports/ci/screenshots)
# Exit status: 0 when every screenshot was taken and is not blank, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SOVEREIGN_BIN:-target/release/sovereign}
out=${SCREENSHOTS_REPORTS:-reports/ci/screenshots}
[ -x "$bin" ] || { echo "$bin missing: cargo build --release" >&2; exit 2; }
for tool in chromium tmux aha; do
  command -v "$tool" >/dev/null || { echo "$tool missing (apt-get install $tool)" >&2; exit 2; }
done
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
# A reports folder of its own: with a history file, the reports below record themselves.
: >"$out/history.jsonl"

# Reports: a storm run, the quarterly drill, and the index `sovereign runs` writes.
"$bin" sim run scenarios/storm.toml --seed 1 --report "$out/storm-seed1" >/dev/null
"$bin" gameday gamedays/quarterly-drill.toml --headless --out "$out/quarterly-drill" >/dev/null
"$bin" runs "$out" >"$out/runs.txt"

shot() { # shot PAGE PNG WIDTH HEIGHT
  timeout 120 chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size="$3,$4" --screenshot="$2" "file://$1" >/dev/null 2>&1
}
shot "$out/storm-seed1/report.html" "$out/storm-report.png" 1100 2400
shot "$out/quarterly-drill/report.html" "$out/gameday-report.png" 1100 2400
shot "$out/index.html" "$out/runs-index.png" 1100 900

# The console: fibre-cut run unthrottled to its end in a 160×45 terminal; the screen
# with its colours (capture-pane -e) as HTML, then as a PNG.
sock="sovereign-shots-$$"
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; }
trap cleanup EXIT
TERM=xterm-256color tmux -L "$sock" new-session -d -s console -x 160 -y 45 \
  "$bin console scenarios/fibre-cut.toml --seed 1 --operator ci --out $out/console-journal"
for _ in 1 2 3 4 5 6; do tmux -L "$sock" send-keys -t console +; done
for _ in $(seq 1 600); do
  if tmux -L "$sock" capture-pane -p -t console | grep -q "Run over"; then break; fi
  sleep 0.2
done
tmux -L "$sock" capture-pane -p -t console | grep -q "Run over" ||
  { echo "the console did not reach the end of the run" >&2; exit 1; }
tmux -L "$sock" capture-pane -e -p -t console >"$out/console.ansi"
aha --black --title "sovereign console: fibre-cut seed 1, end of run" \
  <"$out/console.ansi" >"$out/console.html"
tmux -L "$sock" send-keys -t console q
shot "$out/console.html" "$out/console.png" 1450 720

# Not blank: each PNG exists and is larger than a one-colour page of its size compresses
# to (a few KB); the console capture holds the verdict box's KPI lines.
for png in storm-report gameday-report runs-index console; do
  size=$(stat -c %s "$out/$png.png" 2>/dev/null || echo 0)
  if [ "$size" -lt 20000 ]; then
    echo "$png.png: $size bytes, looks blank" >&2
    exit 1
  fi
  echo "$png.png: $size bytes"
done
grep -q "resilience score" "$out/console.html" ||
  { echo "console.html lacks the end screen's KPIs" >&2; exit 1; }
echo "screenshots in $out"
