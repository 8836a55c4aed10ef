#!/usr/bin/env bash
# Bytes a tower moves to sync a changed file, against rsync and zsync on the same pair of
# files, side by side in one run, on loopback (issue 16: "fewer bytes over satellite").
#
#   scripts/bench-sync-bytes.sh
#
# What it does:
#   1. installs Debian's rsync, zsync, nginx, curl and jq if missing (needs root), and
#      builds `sovereign` in release (honours CARGO_TARGET_DIR; SOVEREIGN_BIN skips it);
#   2. writes a 32 MiB file from a fixed seed (first half pseudo-random bytes, second half
#      English-like text) and four changed copies of it:
#        edits      10 scattered in-place overwrites of 32 KiB each (1% of the file)
#        inserts    10 scattered insertions of 3 KiB each
#        append     320 KiB appended (1%)
#        small      one 100-byte overwrite in the middle
#      Scattered changes sit at 5%, 15%, … 95% of the file: half in the random half,
#      half in the text;
#   3. per change, for the tower: a fresh `sovereign origin serve`, a `sovereign proxy`
#      in front of it, and a fresh `sovereign tower serve` whose satellite uplink goes
#      through the proxy. The old file is published (P1) and the tower waits until it
#      serves it with the right SHA-256; then the new one is published and the bytes are
#      counted from just before that publish until the tower serves the new SHA-256:
#        chunk bytes   what the tower requested (sovereign_sync_requested_bytes_total)
#        received      bytes origin -> tower through the proxy (bodies and HTTP headers)
#        on the wire   both directions through the proxy
#        link metric   the tower's own sovereign_link_bytes_total over the same window
#      (the tower polls the catalog every BENCH_POLL_S seconds and probes its link: both
#      are counted, as they would be on the satellite);
#   4. per change, for rsync: an rsync daemon serving the new file, a client holding the
#      old one, `rsync --no-whole-file --ignore-times --stats`, once plain and once with
#      `-z` (rsync picks its best compressor): literal data and total bytes sent plus
#      received;
#   5. per change, for zsync: nginx serving the new file and its control file
#      (`zsyncmake`), `zsync -i old`; total = every byte nginx sent (control file and
#      ranges, headers included) plus what zsync sent;
#   6. checks every tool ended with the new file's SHA-256, and prints a Markdown table
#      with the ratio tower / rsync (on the wire) per change.
#   Every process it started is stopped on exit, and its temporary directory goes.
#
# Settings (environment): BENCH_SEED (default 16), BENCH_POLL_S (the tower's catalog
# interval, default 2), BENCH_CHANGES (default "edits inserts append small"),
# BENCH_KEEP=1 keeps the temporary directory, SOVEREIGN_LOG (default warn).
# Progress goes to stderr, the table to stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seed=${BENCH_SEED:-16}
poll_s=${BENCH_POLL_S:-2}
changes=${BENCH_CHANGES:-"edits inserts append small"}
export SOVEREIGN_LOG=${SOVEREIGN_LOG:-warn}

source "$root/scripts/bench-lib.sh"

# --- tools ---------------------------------------------------------------------------
need_tools rsync:rsync zsync:zsync zsyncmake:zsync nginx:nginx curl:curl jq:jq python3:python3
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $nginx_bin ]] || die "nginx is missing after the install"

bin=$(sovereign_bin "$root")

# --- processes and cleanup -------------------------------------------------------------
tmp=$(mktemp -d /tmp/bench-sync-bytes.XXXXXX)
pids=()
stop_all() {
    stop_pids "${pids[@]}"
    pids=()
}
cleanup() {
    stop_all
    [[ -f $tmp/nginx/nginx.pid ]] && kill "$(cat "$tmp/nginx/nginx.pid")" 2>/dev/null
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR


# --- the files ---------------------------------------------------------------------------
say "writing the 32 MiB file and its four changed copies (seed $seed, in $tmp)"
mkdir -p "$tmp/files"
python3 - "$tmp/files" "$seed" <<'EOF'
import random, sys
out, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
size, half = 32 << 20, 16 << 20
syll = ["ka", "lo", "mi", "ne", "ra", "to", "shi", "ba", "du", "we", "ya", "go",
        "pe", "zu", "ni", "ko", "ma", "ti", "sa", "ho"]
words = sorted({"".join(rng.choice(syll) for _ in range(rng.randint(1, 4)))
                for _ in range(3000)})
weights = [1.0 / (i + 1) for i in range(len(words))]   # Zipf-like, as words are
def text(n):
    buf, length = [], 0
    while length < n:
        line = " ".join(rng.choices(words, weights, k=rng.randint(6, 14))) + ".\n"
        buf.append(line); length += len(line)
    return "".join(buf).encode()[:n]
def noise(n):
    return rng.randbytes(n)
old = noise(half) + text(size - half)
def fresh(at, n):           # new bytes of the same kind as the file at `at`
    return noise(n) if at < half else text(n)
spots = [size * (2 * i + 1) // 20 for i in range(10)]
def edits():
    b = bytearray(old)
    for at in spots:
        b[at:at + (32 << 10)] = fresh(at, 32 << 10)
    return bytes(b)
def inserts():
    b = old
    for at in reversed(spots):
        b = b[:at] + fresh(at, 3 << 10) + b[at:]
    return b
def append():
    return old + text(320 << 10)
def small():
    b = bytearray(old); at = size // 2 + 4321
    b[at:at + 100] = fresh(at, 100)
    return bytes(b)
open(f"{out}/old", "wb").write(old)
for name, make in [("edits", edits), ("inserts", inserts), ("append", append), ("small", small)]:
    open(f"{out}/{name}", "wb").write(make())
EOF
old_sha=$(sha "$tmp/files/old")

export SOVEREIGN_ADMIN_TOKEN_VIEWER=bench-viewer-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_OPERATOR=bench-operator-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_CHAOS=bench-chaos-token-0123456789

# metric NAME URL: the sum of a family's samples on a /metrics page.
metric() {
    curl -fsS -H "Authorization: Bearer $SOVEREIGN_ADMIN_TOKEN_VIEWER" "$2" |
        awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }'
}

# wait_serves TOWER SHA LOG: until the tower serves item `big` with that SHA-256.
wait_serves() {
    local i
    for ((i = 0; i < 1200; i++)); do
        if curl -fsS -o "$tmp/got" "http://$1/v1/items/big" 2>/dev/null &&
            [[ $(sha "$tmp/got") == "$2" ]]; then
            return 0
        fi
        sleep 0.1
    done
    die "the tower never served sha256 $2: $(tail -5 "$3")"
}

# tower CHANGE: prints "chunk received wire link seconds".
tower() {
    local c=$1 d=$tmp/tower-$1
    mkdir -p "$d"
    local o_port o_admin p_api p_port t_port t_admin
    o_port=$(free_port) o_admin=$(free_port) p_api=$(free_port) p_port=$(free_port)
    t_port=$(free_port) t_admin=$(free_port)
    "$bin" origin serve --data "$d/origin" --listen "127.0.0.1:$o_port" \
        --admin-listen "127.0.0.1:$o_admin" 2>"$d/origin.log" &
    pids+=($!)
    printf '[{"name":"uplink","listen":"127.0.0.1:%s","upstream":"127.0.0.1:%s"}]' \
        "$p_port" "$o_port" >"$d/proxy.json"
    "$bin" proxy serve --listen "127.0.0.1:$p_api" --config "$d/proxy.json" 2>"$d/proxy.log" &
    pids+=($!)
    wait_http "http://127.0.0.1:$o_port/healthz" 30 || die "origin did not start: $(tail -5 "$d/origin.log")"
    wait_http "http://127.0.0.1:$p_api/version" 30 || die "proxy did not start: $(tail -5 "$d/proxy.log")"
    local admin=http://127.0.0.1:$o_admin tok=$SOVEREIGN_ADMIN_TOKEN_OPERATOR
    "$bin" origin publish --origin "$admin" --id big --priority P1 --token "$tok" \
        "$tmp/files/old" >>"$d/publish.log" || die "publishing the old file failed"
    "$bin" origin add-tower --origin "$admin" --tower 1 --token "$tok" \
        --out "$d/tower.credential" 2>>"$d/publish.log" || die "issuing the credential failed"
    "$bin" tower serve --id 1 --data "$d/tower" --listen "127.0.0.1:$t_port" \
        --admin-listen "127.0.0.1:$t_admin" --uplink "satellite=http://127.0.0.1:$p_port" \
        --credential "$d/tower.credential" --catalog-interval-s "$poll_s" \
        --read-rate-per-s 0 2>"$d/tower.log" &
    pids+=($!)
    wait_http "http://127.0.0.1:$t_port/healthz" 30 || die "tower did not start: $(tail -5 "$d/tower.log")"
    wait_serves "127.0.0.1:$t_port" "$old_sha" "$d/tower.log"
    local pm=http://127.0.0.1:$p_api/metrics tm=http://127.0.0.1:$t_port/metrics
    local new_sha c0 d0 u0 l0 t0 c1 d1 u1 l1 t1
    new_sha=$(sha "$tmp/files/$c")
    c0=$(metric sovereign_sync_requested_bytes_total "$tm")
    l0=$(metric sovereign_link_bytes_total "$tm")
    d0=$(curl -fsS "$pm" | awk '/^sovereign_proxy_bytes_total.*downstream/ { print $NF }')
    u0=$(curl -fsS "$pm" | awk '/^sovereign_proxy_bytes_total.*upstream/ { print $NF }')
    t0=$(date +%s.%N)
    "$bin" origin publish --origin "$admin" --id big --priority P1 --token "$tok" \
        "$tmp/files/$c" >>"$d/publish.log" || die "publishing the $c file failed"
    wait_serves "127.0.0.1:$t_port" "$new_sha" "$d/tower.log"
    t1=$(date +%s.%N)
    c1=$(metric sovereign_sync_requested_bytes_total "$tm")
    l1=$(metric sovereign_link_bytes_total "$tm")
    d1=$(curl -fsS "$pm" | awk '/^sovereign_proxy_bytes_total.*downstream/ { print $NF }')
    u1=$(curl -fsS "$pm" | awk '/^sovereign_proxy_bytes_total.*upstream/ { print $NF }')
    stop_all
    echo "$((c1 - c0)) $((d1 - d0)) $((d1 - d0 + u1 - u0)) $((l1 - l0)) $(echo "$t1 - $t0" | bc -l 2>/dev/null || python3 -c "print($t1 - $t0)")"
}

# rsync CHANGE FLAGS...: prints "literal wire".
rsync_run() {
    local c=$1 d=$tmp/rsync-$1
    shift
    mkdir -p "$d/src" "$d/dst"
    cp "$tmp/files/$c" "$d/src/file"
    cp "$tmp/files/old" "$d/dst/file"
    start_rsyncd "$d" 127.0.0.1
    local port=$rsyncd_port
    rsync --no-whole-file --ignore-times --stats "$@" "rsync://127.0.0.1:$port/m/file" \
        "$d/dst/file" >"$d/stats"
    stop_all
    [[ $(sha "$d/dst/file") == "$(sha "$tmp/files/$c")" ]] || die "rsync did not rebuild $c"
    local lit sent recv
    lit=$(awk -F': ' '/^Literal data/ { gsub(/[^0-9]/, "", $2); print $2 }' "$d/stats")
    sent=$(awk -F': ' '/^Total bytes sent/ { gsub(/[^0-9]/, "", $2); print $2 }' "$d/stats")
    recv=$(awk -F': ' '/^Total bytes received/ { gsub(/[^0-9]/, "", $2); print $2 }' "$d/stats")
    echo "$lit $((sent + recv))"
}

# zsync CHANGE: prints "wire".
zsync_run() {
    local c=$1 d=$tmp/zsync-$1
    mkdir -p "$d/www" "$d/nginx" "$d/out"
    cp "$tmp/files/$c" "$d/www/file"
    local port
    port=$(free_port)
    (cd "$d/www" && zsyncmake -u "http://127.0.0.1:$port/file" -o file.zsync file >/dev/null)
    chmod 755 "$tmp" "$d" "$d/www"
    chmod 644 "$d/www"/*
    cat >"$d/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $d/nginx/nginx.pid;
error_log $d/nginx/error.log warn;
events { worker_connections 64; }
http {
    log_format bytes '\$bytes_sent \$request_length';
    access_log $d/nginx/access.log bytes;
    default_type application/octet-stream;
    client_body_temp_path $d/nginx/client_body;
    proxy_temp_path $d/nginx/proxy;
    fastcgi_temp_path $d/nginx/fastcgi;
    uwsgi_temp_path $d/nginx/uwsgi;
    scgi_temp_path $d/nginx/scgi;
    server { listen 127.0.0.1:$port; root $d/www; }
}
EOF
    "$nginx_bin" -c "$d/nginx/nginx.conf" -e "$d/nginx/error.log" 2>>"$d/nginx/error.log" ||
        die "nginx did not start: $(tail -3 "$d/nginx/error.log")"
    wait_http "http://127.0.0.1:$port/file.zsync" 30 || die "nginx does not serve the control file"
    : >"$d/nginx/access.log"
    (cd "$d/out" && zsync -q -i "$tmp/files/old" -o file "http://127.0.0.1:$port/file.zsync" \
        >"$d/zsync.log" 2>&1) || die "zsync failed: $(tail -3 "$d/zsync.log")"
    kill "$(cat "$d/nginx/nginx.pid")" 2>/dev/null || true
    sleep 0.2
    [[ $(sha "$d/out/file") == "$(sha "$tmp/files/$c")" ]] || die "zsync did not rebuild $c"
    awk '{ s += $1 + $2 } END { printf "%d\n", s }' "$d/nginx/access.log"
}

kb() { awk -v b="$1" 'BEGIN { printf "%.0f KB", b / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sovereign: $("$bin" --version 2>/dev/null | head -1); $(rsync --version | head -1); $(zsync -V 2>&1 | head -1)"
echo "file: 32 MiB (16 MiB pseudo-random, 16 MiB text), seed $seed; tower catalog poll every $poll_s s"
echo
echo "| change | tower: chunk bytes | tower: received | tower: on the wire | tower's link metric | sync time | rsync: literal | rsync: on the wire | rsync -z: on the wire | zsync: on the wire | tower / rsync | tower / rsync -z |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
for c in $changes; do
    [[ -f $tmp/files/$c ]] || die "unknown change $c (edits, inserts, append, small)"
    say "$c: tower"
    read -r t_chunk t_recv t_wire t_link t_secs < <(tower "$c")
    say "$c: rsync"
    read -r r_lit r_wire < <(rsync_run "$c")
    read -r _ rz_wire < <(rsync_run "$c" -z)
    say "$c: zsync"
    z_wire=$(zsync_run "$c")
    printf '| %s | %s | %s | %s | %s | %.1f s | %s | %s | %s | %s | %s | %s |\n' "$c" \
        "$(kb "$t_chunk")" "$(kb "$t_recv")" "$(kb "$t_wire")" "$(kb "$t_link")" "$t_secs" \
        "$(kb "$r_lit")" "$(kb "$r_wire")" "$(kb "$rz_wire")" "$(kb "$z_wire")" \
        "$(ratio "$t_wire" "$r_wire")" "$(ratio "$t_wire" "$rz_wire")"
done
