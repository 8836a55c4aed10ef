#!/usr/bin/env bash
# How fast a tower syncs a new item from its origin, against rsync over the same link,
# side by side in one run (issue 16: "sync at the link's speed").
#
#   scripts/bench-sync-goodput.sh
#
# What it does:
#   1. installs Debian's rsync, curl and python3 if missing (needs root, as do the network
#      namespace and the rate limits), and builds `sovereign` in release (honours
#      CARGO_TARGET_DIR; SOVEREIGN_BIN skips it);
#   2. writes a BENCH_MIB MiB file of pseudo-random bytes (incompressible, so zstd cannot
#      make the link look faster than it is), from a fixed seed;
#   3. per link in BENCH_LINKS:
#        loopback   origin and tower on 127.0.0.1, nothing in between;
#        RATE       (e.g. 100mbit, 10mbit) the origin runs in a network namespace joined
#                   to the host by a veth pair, with a `tc tbf` rate limit of RATE on
#                   both ends (the kernel's own limiter: no netem is needed for a rate);
#      a fresh origin gets the file published (P1) and a tower credential before the
#      limit goes on (origin and tower keep their data on a new ext4 filesystem, a loop
#      image, per run: see fresh_fs in bench-lib.sh); then a fresh tower starts with its fibre uplink at the origin, and
#      the time runs from the tower's start until it first answers 200 for the item
#      (polled every 20 ms; the bytes are then downloaded and checked against the file's
#      SHA-256, untimed). Goodput = file size / that time;
#   4. per link, rsync: an rsync daemon next to the origin (same namespace, same limit)
#      serving the same file, and `rsync --whole-file` pulling it into an empty
#      directory, timed the same way: what the link really carries for a plain copy;
#   5. prints a Markdown table: time, goodput, goodput as a share of the rate, rsync's,
#      and tower / rsync.
#   Every process, the namespace and the temporary directory go on exit.
#
# Settings (environment): BENCH_MIB (default 32), BENCH_LINKS (default
# "loopback 100mbit 10mbit"), BENCH_SEED (default 16), BENCH_KEEP=1 keeps the temporary
# directory, SOVEREIGN_LOG (default warn). Progress goes to stderr, the table to stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mib=${BENCH_MIB:-32}
links=${BENCH_LINKS:-"loopback 100mbit 10mbit"}
seed=${BENCH_SEED:-16}
export SOVEREIGN_LOG=${SOVEREIGN_LOG:-warn}

source "$root/scripts/bench-lib.sh"

[[ $mib =~ ^[0-9]+$ && $mib -ge 1 && $mib -le 4096 ]] || die "BENCH_MIB must be 1..4096, not '$mib'"
need_tools rsync:rsync curl:curl python3:python3 ip:iproute2 tc:iproute2 mkfs.ext4:e2fsprogs
[[ $(id -u) == 0 ]] || die "the namespace and the rate limit need root"

bin=$(sovereign_bin "$root")

# --- processes, namespace and cleanup ------------------------------------------------
tmp=$(mktemp -d /tmp/bench-sync-goodput.XXXXXX)
ns=sovbench$$
veth_host=sbh$$ veth_ns=sbn$$
host_ip=10.203.0.1 ns_ip=10.203.0.2
pids=()
mounts=()
stop_all() {
    stop_pids "${pids[@]}"
    pids=()
}
drop_ns() {
    ip link del "$veth_host" 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
}
cleanup() {
    stop_all
    drop_ns
    drop_tmp
}
on_exit cleanup

# make_ns: a namespace joined to the host by a veth pair, no limit yet.
make_ns() {
    drop_ns
    ip netns add "$ns"
    ip link add "$veth_host" type veth peer name "$veth_ns"
    ip link set "$veth_ns" netns "$ns"
    ip addr add "$host_ip/30" dev "$veth_host"
    ip link set "$veth_host" up
    ip netns exec "$ns" ip addr add "$ns_ip/30" dev "$veth_ns"
    ip netns exec "$ns" ip link set "$veth_ns" up
    ip netns exec "$ns" ip link set lo up
}

# limit RATE: tbf at RATE on both ends of the pair (egress each way).
limit() {
    local bits burst
    bits=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)(k|m|g)bit', sys.argv[1]); \
print(int(m[1]) * {'k': 10**3, 'm': 10**6, 'g': 10**9}[m[2]]) if m else sys.exit(1)" "$1") ||
        die "a link is loopback or a rate like 10mbit, not '$1'"
    # The bucket holds at least 10 ms of the rate (and one 64 KiB segment): a smaller one
    # caps below the rate at the kernel's timer granularity.
    burst=$((bits / 8 / 100 > 65536 ? bits / 8 / 100 : 65536))
    tc qdisc replace dev "$veth_host" root tbf rate "$1" burst "$burst" latency 50ms
    ip netns exec "$ns" tc qdisc replace dev "$veth_ns" root tbf rate "$1" burst "$burst" latency 50ms
    echo "$bits"
}

# wait_serves URL SHA LOG SECONDS: until the tower serves the item with that SHA-256;
# prints when it first answered 200 (the download that checks the bytes is not timed).
wait_serves() {
    local i end code at
    end=$(awk -v s="$4" 'BEGIN { printf "%d", s * 50 }')
    for ((i = 0; i < end; i++)); do
        code=$(curl -sS -o /dev/null -w '%{http_code}' -I "$1" 2>/dev/null || true)
        if [[ $code == 200 ]]; then
            at=$(now)
            curl -fsS -o "$tmp/got" "$1" || die "the tower said 200 but the download failed"
            [[ $(sha "$tmp/got") == "$2" ]] || die "the tower served bytes that are not the file's"
            echo "$at"
            return 0
        fi
        sleep 0.02
    done
    die "the tower never served sha256 $2 within $4 s: $(tail -5 "$3")"
}

export SOVEREIGN_ADMIN_TOKEN_VIEWER=bench-viewer-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_OPERATOR=bench-operator-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_CHAOS=bench-chaos-token-0123456789

# tower LINK: prints "seconds rate_bits" (rate 0 for loopback).
tower() {
    local l=$1 d=$tmp/tower-$1 run=() host=127.0.0.1 bits=0
    mkdir -p "$d"
    if [[ $l != loopback ]]; then
        make_ns
        run=(ip netns exec "$ns")
        host=$ns_ip
    fi
    local o_port o_admin t_port t_admin
    o_port=$(free_port) o_admin=$(free_port) t_port=$(free_port) t_admin=$(free_port)
    fresh_fs "$d/fs" "$((mib * 3 + 256))"
    "${run[@]}" "$bin" origin serve --data "$d/fs/origin" --listen "$host:$o_port" \
        --admin-listen "$host:$o_admin" 2>"$d/origin.log" &
    pids+=($!)
    wait_http "http://$host:$o_port/healthz" 30 || die "origin did not start: $(tail -5 "$d/origin.log")"
    local admin=http://$host:$o_admin tok=$SOVEREIGN_ADMIN_TOKEN_OPERATOR
    "$bin" origin publish --origin "$admin" --id big --priority P1 --token "$tok" \
        "$tmp/file" >>"$d/publish.log" || die "publishing failed: $(tail -3 "$d/publish.log")"
    "$bin" origin add-tower --origin "$admin" --tower 1 --token "$tok" \
        --out "$d/tower.credential" 2>>"$d/publish.log" || die "issuing the credential failed"
    [[ $l == loopback ]] || bits=$(limit "$l")
    # Start from a quiet disk: the publish's and earlier runs' writes flushed.
    sync
    local t0 t1
    t0=$(now)
    "$bin" tower serve --id 1 --data "$d/fs/tower" --listen "127.0.0.1:$t_port" \
        --admin-listen "127.0.0.1:$t_admin" --uplink "fibre=http://$host:$o_port" \
        --credential "$d/tower.credential" --read-rate-per-s 0 2>"$d/tower.log" &
    pids+=($!)
    t1=$(wait_serves "http://127.0.0.1:$t_port/v1/items/big" "$file_sha" "$d/tower.log" 600)
    stop_all
    umount "$d/fs"
    echo "$(secs "$t0" "$t1") $bits"
}

# rsync_run LINK: prints "seconds".
rsync_run() {
    local l=$1 d=$tmp/rsync-$1 run=() host=127.0.0.1
    mkdir -p "$d/src" "$d/dst"
    cp "$tmp/file" "$d/src/file"
    if [[ $l != loopback ]]; then
        make_ns
        run=(ip netns exec "$ns")
        host=$ns_ip
    fi
    start_rsyncd "$d" "$host" "${run[@]}"
    local port=$rsyncd_port
    [[ $l == loopback ]] || limit "$l" >/dev/null
    local t0 t1
    t0=$(now)
    rsync --whole-file "rsync://$host:$port/m/file" "$d/dst/file"
    t1=$(now)
    stop_all
    [[ $(sha "$d/dst/file") == "$file_sha" ]] || die "rsync did not copy the file"
    secs "$t0" "$t1"
}

say "writing the $mib MiB file (seed $seed, in $tmp)"
python3 -c "import random, sys; sys.stdout.buffer.write(random.Random($seed).randbytes($mib << 20))" \
    >"$tmp/file"
file_sha=$(sha "$tmp/file")
bytes=$((mib << 20))

mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f MB/s", b / s / 1e6 }'; }
share() { awk -v b="$bytes" -v s="$1" -v r="$2" 'BEGIN { if (r == 0) print "—"; else printf "%.0f%%", 800 * b / s / r }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", b / a }'; }

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sovereign: $("$bin" --version 2>/dev/null | head -1); $(rsync --version | head -1)"
echo "file: $mib MiB of pseudo-random bytes, seed $seed; the tower's first sync of it"
echo
echo "| link | tower: time | tower: goodput | of the rate | rsync: time | rsync: goodput | of the rate | tower / rsync (goodput) |"
echo "|---|---|---|---|---|---|---|---|"
for l in $links; do
    say "$l: tower"
    read -r t_secs bits < <(tower "$l")
    say "$l: rsync"
    r_secs=$(rsync_run "$l")
    printf '| %s | %.2f s | %s | %s | %.2f s | %s | %s | %s |\n' "$l" \
        "$t_secs" "$(mbs "$t_secs")" "$(share "$t_secs" "$bits")" \
        "$r_secs" "$(mbs "$r_secs")" "$(share "$r_secs" "$bits")" "$(ratio "$t_secs" "$r_secs")"
done
