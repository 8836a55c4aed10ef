#!/usr/bin/env bash
# Tower GET throughput and p99 latency against nginx, same bytes, same load generator,
# side by side in one run, on loopback.
#
#   scripts/bench-tower-vs-nginx.sh
#
# What it does:
#   1. installs Debian's nginx and wrk (and curl, jq, openssl) if missing (needs root);
#   2. builds `sovereign` in release (`cargo build --release -p sovereign-cli`, honours
#      CARGO_TARGET_DIR);
#   3. starts `sovereign origin serve`, publishes three items of pseudo-random bytes from a
#      fixed seed (1 KiB P0, 64 KiB P1, 1 MiB P3), issues tower 1's credential
#      (`sovereign origin add-tower`), starts `sovereign tower serve --credential` synced
#      from it, and waits until the tower serves each item with the right SHA-256 (a
#      baseline binary that predates tower credentials gets none: the origin then runs
#      with --allow-unauthenticated-towers);
#   4. writes the same bytes under a directory served by an nginx with a private config
#      (worker_processes auto, access_log off, sendfile on, keepalive_requests raised so
#      neither server closes wrk's connections);
#   5. per size, runs wrk with identical settings against the tower's /v1/items/ID and
#      nginx's /ID, alternating tower/nginx for ROUNDS rounds (and the tower's
#      /v1/chunks/SHA for the first chunk of the 64 KiB item); wrk and the servers share
#      the machine's cores;
#      Also measured the same way: `http_floor` (sovereign-server's example: the same
#      axum/hyper/tokio stack serving the files from memory with no tower work), so a gap
#      splits into "the stack" and "the tower's own work"; and, with BENCH_BASELINE_BIN, a
#      second tower run from that binary (e.g. a build of an older commit) for before/after
#      numbers in the same run;
#   6. prints a Markdown table: size, server, req/s (mean of rounds, each round), p99,
#      server CPU per request, ratio to nginx of the mean req/s.
#   Every process it started is stopped on exit (trap), and its temporary directory goes.
#
# Settings (environment): BENCH_DURATION (wrk -d, default 15s), BENCH_THREADS (wrk -t,
# default 2), BENCH_CONNS (wrk -c, default 64), BENCH_ROUNDS (default 2), BENCH_SIZES
# (default "1024 65536 1048576"), BENCH_BASELINE_BIN (a `sovereign` binary to measure as a
# second tower), BENCH_FLOOR=0 skips the stack floor, BENCH_KEEP=1 keeps the temporary
# directory (logs, wrk outputs), SOVEREIGN_LOG (the servers' log filter, default warn).
# Progress goes to stderr, the table to stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=${BENCH_DURATION:-15s}
threads=${BENCH_THREADS:-2}
conns=${BENCH_CONNS:-64}
rounds=${BENCH_ROUNDS:-2}
sizes=${BENCH_SIZES:-"1024 65536 1048576"}
export SOVEREIGN_LOG=${SOVEREIGN_LOG:-warn}

source "$root/scripts/bench-lib.sh"

# --- tools ---------------------------------------------------------------------------
need_tools nginx:nginx wrk:wrk curl:curl jq:jq openssl:openssl
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

floor_on=${BENCH_FLOOR:-1}
baseline_bin=${BENCH_BASELINE_BIN:-}
[[ -z $baseline_bin || -x $baseline_bin ]] || die "BENCH_BASELINE_BIN=$baseline_bin is not executable"

say "building sovereign (release)"
(cd "$root" && cargo build --release -p sovereign-cli >&2)
if [[ $floor_on == 1 ]]; then
    (cd "$root" && cargo build --release -p sovereign-server --example http_floor >&2)
fi
target=${CARGO_TARGET_DIR:-$root/target}
[[ $target == /* ]] || target=$root/$target
bin=$target/release/sovereign
floor_bin=$target/release/examples/http_floor
[[ -x $bin ]] || die "no binary at $bin after the build"
[[ $floor_on != 1 || -x $floor_bin ]] || die "no binary at $floor_bin after the build"

# --- processes and cleanup -------------------------------------------------------------
tmp=$(mktemp -d /tmp/bench-tower-nginx.XXXXXX)
pids=()
cleanup() {
    stop_pids "${pids[@]}"
    if [[ ${BENCH_KEEP:-0} == 1 ]]; then
        say "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR

# A loopback port nothing listens on (checked against `ss`; good enough here).
used_ports=" "
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 40000))
        [[ $used_ports == *" $p "* ]] && continue
        ss -Htln "sport = :$p" | grep -q . && continue
        used_ports+="$p "
        echo "$p"
        return
    done
}


export SOVEREIGN_ADMIN_TOKEN_VIEWER=bench-viewer-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_OPERATOR=bench-operator-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_CHAOS=bench-chaos-token-0123456789

origin_port=$(free_port) origin_admin=$(free_port)
tower_port=$(free_port) tower_admin=$(free_port)
base_port=$(free_port) base_admin=$(free_port)
nginx_port=$(free_port) floor_port=$(free_port)
origin=127.0.0.1:$origin_port
tower=127.0.0.1:$tower_port
nginx=127.0.0.1:$nginx_port
floor=127.0.0.1:$floor_port
base=127.0.0.1:$base_port

say "origin on $origin, tower on $tower, nginx on $nginx (scratch: $tmp)"
# A baseline binary from before tower credentials cannot present one.
origin_extra=()
baseline_credential=0
if [[ -n $baseline_bin ]]; then
    if "$baseline_bin" tower serve --help 2>/dev/null | grep -q -- '--credential'; then
        baseline_credential=1
    else
        say "the baseline binary has no --credential: the origin allows unauthenticated towers"
        origin_extra+=(--allow-unauthenticated-towers)
    fi
fi
"$bin" origin serve --data "$tmp/origin" --listen "$origin" \
    --admin-listen "127.0.0.1:$origin_admin" "${origin_extra[@]}" 2>"$tmp/origin.log" &
pids+=($!)
wait_http "http://$origin/healthz" 30 || die "origin did not start: $(tail -5 "$tmp/origin.log")"

# --- content -----------------------------------------------------------------------------
mkdir -p "$tmp/www"
declare -A item_of sha_of
n=0
for size in $sizes; do
    n=$((n + 1))
    case $n in 1) prio=P0 ;; 2) prio=P1 ;; *) prio=P3 ;; esac
    id=bench-$size
    # AES-256-CTR of zeros under a fixed key: the same pseudo-random bytes every run.
    # (openssl is stopped by SIGPIPE once head has enough: not a failure.)
    { openssl enc -aes-256-ctr -nosalt \
        -K 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
        -iv "$(printf '%032x' "$size")" </dev/zero 2>/dev/null || true; } |
        head -c "$size" >"$tmp/www/$id"
    [[ $(stat -c %s "$tmp/www/$id") == "$size" ]] || die "could not make $size bytes"
    item_of[$size]=$id
    sha_of[$size]=$(sha256sum "$tmp/www/$id" | cut -d' ' -f1)
    "$bin" origin publish --origin "http://127.0.0.1:$origin_admin" --id "$id" \
        --priority "$prio" --token "$SOVEREIGN_ADMIN_TOKEN_OPERATOR" "$tmp/www/$id" \
        >>"$tmp/publish.log" || die "publishing $id failed"
done

# Each tower's credential, issued by the origin (shown once; kept mode 0600).
for t in 1 2; do
    "$bin" origin add-tower --origin "http://127.0.0.1:$origin_admin" --tower "$t" \
        --token "$SOVEREIGN_ADMIN_TOKEN_OPERATOR" --out "$tmp/tower-$t.credential" \
        2>>"$tmp/publish.log" || die "issuing tower $t's credential failed"
done
# wrk's load comes from one address: no per-address rate or connection limit (nginx
# has none either).
"$bin" tower serve --id 1 --data "$tmp/tower" --listen "$tower" \
    --admin-listen "127.0.0.1:$tower_admin" --uplink "fibre=http://$origin" \
    --credential "$tmp/tower-1.credential" \
    --catalog-interval-s 1 --request-timeout-s 3 \
    --read-rate-per-s 0 --connections-max 65536 --connections-per-client-max 65536 \
    2>"$tmp/tower.log" &
pids+=($!)
tower_pid=$!
wait_http "http://$tower/healthz" 30 || die "tower did not start: $(tail -5 "$tmp/tower.log")"
if [[ -n $baseline_bin ]]; then
    base_extra=()
    ((baseline_credential)) && base_extra+=(--credential "$tmp/tower-2.credential")
    "$baseline_bin" tower serve --id 2 --data "$tmp/tower-baseline" --listen "$base" \
        --admin-listen "127.0.0.1:$base_admin" --uplink "fibre=http://$origin" \
        "${base_extra[@]}" \
        --catalog-interval-s 1 --request-timeout-s 3 2>"$tmp/tower-baseline.log" &
    pids+=($!)
    base_pid=$!
    wait_http "http://$base/healthz" 30 ||
        die "baseline tower did not start: $(tail -5 "$tmp/tower-baseline.log")"
fi

wait_served() { # ADDR NAME LOG
    local size id ok i
    for size in $sizes; do
        id=${item_of[$size]}
        ok=0
        for ((i = 0; i < 600; i++)); do
            if curl -fsS -o "$tmp/got" "http://$1/v1/items/$id" 2>/dev/null &&
                [[ $(sha256sum "$tmp/got" | cut -d' ' -f1) == "${sha_of[$size]}" ]]; then
                ok=1
                break
            fi
            sleep 0.1
        done
        ((ok)) || die "the $2 never served $id with sha256 ${sha_of[$size]}: $(tail -5 "$3")"
        say "$2 serves $id ($size bytes, sha256 ${sha_of[$size]:0:12}…)"
    done
}
wait_served "$tower" tower "$tmp/tower.log"
[[ -z $baseline_bin ]] || wait_served "$base" "baseline tower" "$tmp/tower-baseline.log"
chunk_size=$(echo "$sizes" | awk '{print $2}')
chunk_sha=
if [[ -n $chunk_size ]]; then
    chunk_sha=$(curl -fsS "http://$tower/v1/items/${item_of[$chunk_size]}/manifest" |
        jq -r '.chunks[0].sha256')
    chunk_len=$(curl -fsS "http://$tower/v1/chunks/$chunk_sha" | wc -c)
    say "first chunk of ${item_of[$chunk_size]}: $chunk_sha ($chunk_len bytes)"
fi

# --- nginx -------------------------------------------------------------------------------
# Workers may run as an unprivileged user: let them read the files.
chmod 755 "$tmp" "$tmp/www"
chmod 644 "$tmp/www"/*
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    default_type application/octet-stream;
    client_body_temp_path $tmp/nginx/client_body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen $nginx;
        root $tmp/www;
    }
}
EOF
"$nginx_bin" -p "$tmp/nginx" -e "$tmp/nginx/error.log" -c "$tmp/nginx/nginx.conf" \
    -g 'daemon off;' 2>"$tmp/nginx/stderr.log" &
pids+=($!)
nginx_pid=$!
for size in $sizes; do
    id=${item_of[$size]}
    wait_http "http://$nginx/$id" 10 ||
        die "nginx does not serve /$id: $(cat "$tmp/nginx/stderr.log" "$tmp/nginx/error.log" 2>/dev/null | tail -5)"
    [[ $(curl -fsS "http://$nginx/$id" | sha256sum | cut -d' ' -f1) == "${sha_of[$size]}" ]] ||
        die "nginx serves other bytes under /$id"
done
say "nginx serves the same bytes"

if [[ $floor_on == 1 ]]; then
    "$floor_bin" "$floor" "$tmp/www" 2>"$tmp/floor.log" &
    pids+=($!)
    floor_pid=$!
    for size in $sizes; do
        id=${item_of[$size]}
        wait_http "http://$floor/$id" 10 || die "http_floor does not serve /$id: $(tail -5 "$tmp/floor.log")"
        [[ $(curl -fsS "http://$floor/$id" | sha256sum | cut -d' ' -f1) == "${sha_of[$size]}" ]] ||
            die "http_floor serves other bytes under /$id"
    done
    say "http_floor serves the same bytes"
fi

# --- measuring -------------------------------------------------------------------------------
tck=$(getconf CLK_TCK)
cpu_ticks() { # PID: utime+stime of it and its children (nginx's workers)
    local p t=0
    for p in "$1" $(pgrep -P "$1" || true); do
        [[ -r /proc/$p/stat ]] || continue
        # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$t"
}

to_ms() { # a wrk duration (12.3us, 4.5ms, 1.2s, 2.0m) in ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

run_wrk() { # NAME URL PID -> "rps p99_ms cpu_us_per_req"
    local name=$1 url=$2 pid=$3 out c0 c1 rps p99 bad reqs
    out=$tmp/wrk-$name.txt
    c0=$(cpu_ticks "$pid")
    wrk -t"$threads" -c"$conns" -d"$duration" --latency "$url" >"$out" 2>&1 ||
        die "wrk failed on $url: $(cat "$out")"
    c1=$(cpu_ticks "$pid")
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    reqs=$(awk '/requests in/ {print $1}' "$out")
    [[ -n $rps && -n $p99 && -n $reqs ]] || die "cannot parse wrk output for $url: $(cat "$out")"
    bad=$(awk '/Non-2xx or 3xx responses:/ {print $NF}' "$out")
    [[ -z $bad ]] || die "$url answered $bad non-2xx responses (see $out): not a valid run"
    if grep -q 'Socket errors' "$out"; then
        say "warning: $(grep 'Socket errors' "$out") on $url"
    fi
    echo "$rps $(to_ms "$p99") $(awk -v t=$((c1 - c0)) -v k="$tck" -v n="$reqs" \
        'BEGIN { printf "%.1f", (n > 0 ? t / k * 1e6 / n : 0) }')"
}

human() { # bytes -> 1 KiB / 64 KiB / 1 MiB
    awk -v b="$1" 'BEGIN {
        if (b >= 1048576 && b % 1048576 == 0) printf "%d MiB", b / 1048576
        else if (b >= 1024 && b % 1024 == 0) printf "%d KiB", b / 1024
        else printf "%d B", b }'
}

declare -A rps_all p99_all cpu_all
measure() { # KEY URL PID
    local r rps p99 cpu
    r=$(run_wrk "$1-$round" "$2" "$3")
    read -r rps p99 cpu <<<"$r"
    rps_all[$1]+="$rps "
    p99_all[$1]+="$p99 "
    cpu_all[$1]+="$cpu "
    say "  $1 round $round: $rps req/s, p99 $p99 ms, $cpu µs CPU/req"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
say "wrk -t$threads -c$conns -d$duration --latency, $rounds rounds, servers alternating"
for size in $sizes; do
    id=${item_of[$size]}
    for ((round = 1; round <= rounds; round++)); do
        measure "tower-$size" "http://$tower/v1/items/$id" "$tower_pid"
        measure "nginx-$size" "http://$nginx/$id" "$nginx_pid"
        if [[ $floor_on == 1 ]]; then
            measure "floor-$size" "http://$floor/$id" "$floor_pid"
        fi
        if [[ -n $baseline_bin ]]; then
            measure "base-$size" "http://$base/v1/items/$id" "$base_pid"
        fi
        if [[ $size == "$chunk_size" && -n $chunk_sha ]]; then
            measure "chunk-$size" "http://$tower/v1/chunks/$chunk_sha" "$tower_pid"
        fi
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The tower must still serve the right bytes after the load.
for size in $sizes; do
    [[ $(curl -fsS "http://$tower/v1/items/${item_of[$size]}" | sha256sum | cut -d' ' -f1) == "${sha_of[$size]}" ]] ||
        die "after the load the tower serves other bytes for ${item_of[$size]}"
done

mean() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.0f", s / NF }' <<<"$1"; }
meanf() { awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.2f", s / NF }' <<<"$1"; }
each() { awk '{ for (i = 1; i <= NF; i++) printf "%s%.0f", (i > 1 ? " / " : ""), $i }' <<<"$1"; }
eachf() { awk '{ for (i = 1; i <= NF; i++) printf "%s%.2f", (i > 1 ? " / " : ""), $i }' <<<"$1"; }

echo
echo "wrk -t$threads -c$conns -d$duration --latency; $rounds rounds alternating; $(nproc) cores shared by wrk and the server; load average $load_before before, $load_after after"
echo
echo "| size | server | req/s (mean) | req/s (each round) | p99 ms (mean) | p99 ms (each round) | server CPU µs/req | req/s ÷ nginx's |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for size in $sizes; do
    h=$(human "$size")
    nginx_rps=$(mean "${rps_all[nginx-$size]}")
    for key in tower base nginx floor chunk; do
        k=$key-$size
        [[ -n ${rps_all[$k]:-} ]] || continue
        case $key in
            tower) server="tower /v1/items/ID" ;;
            nginx) server="nginx /ID" ;;
            floor) server="http_floor /ID (axum stack only)" ;;
            base) server="tower /v1/items/ID (baseline build)" ;;
            chunk) server="tower /v1/chunks/SHA ($(human "$chunk_len") chunk)" ;;
        esac
        r=$(mean "${rps_all[$k]}")
        ratio=$(awk -v a="$r" -v b="$nginx_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
        [[ $key == nginx ]] && ratio=1.00
        # A chunk smaller than the item is not comparable with nginx's whole file.
        [[ $key == chunk && $chunk_len != "$size" ]] && ratio="— (smaller body)"
        echo "| $h | $server | $r | $(each "${rps_all[$k]}") | $(meanf "${p99_all[$k]}") | $(eachf "${p99_all[$k]}") | $(meanf "${cpu_all[$k]}") | $ratio |"
    done
done
