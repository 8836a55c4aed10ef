#!/usr/bin/env bash
# How fast an origin takes in new content (`sovereign origin publish`), against hashing
# the same bytes (sha256sum) and writing them durably (dd conv=fsync), side by side in one
# run (issue 16: "10x faster ingest").
#
#   scripts/bench-ingest.sh
#
# What it does:
#   1. installs Debian's curl, python3 and e2fsprogs if missing (needs root for the loop
#      filesystem), and builds `sovereign` in release (honours CARGO_TARGET_DIR;
#      SOVEREIGN_BIN skips it);
#   2. writes BENCH_MIB MiB of pseudo-random bytes (incompressible) from a fixed seed, as
#      parts of BENCH_PART_MIB MiB (an origin takes at most 1 GiB per publish), and
#      reads them once so that every contender starts from the page cache;
#   3. sha256sum: hashes every part (one process, one core), timed;
#   4. dd: copies every part onto a new ext4 filesystem with `conv=fsync`, timed: what the
#      disk takes for a durable write of the same bytes;
#   5. sovereign: a fresh origin on another new ext4 filesystem; every part published as
#      an item of its own (P1), one after the other, timed from the first publish's start
#      to the last one's answer (an answer means chunked, hashed, stored and fsynced);
#      then the origin's resident memory (VmRSS) and its peak (VmHWM), and its store's
#      chunk files; then the origin restarted on that store with the page cache dropped
#      (cold, as after a power cut): how long until it answers again (every chunk file
#      read and verified) and its resident memory then;
#   6. prints a Markdown table: time, throughput, and the origin's throughput as a share
#      of sha256sum's and dd's.
#   Every process, mount and the temporary directory go on exit.
#
# Settings (environment): BENCH_MIB (default 1024), BENCH_PART_MIB (default 1024: one
# publish of the whole),
# BENCH_SEED (default 16), BENCH_KEEP=1 keeps the temporary directory, SOVEREIGN_LOG
# (default warn). Progress goes to stderr, the table to stdout.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mib=${BENCH_MIB:-1024}
part=${BENCH_PART_MIB:-1024}
seed=${BENCH_SEED:-16}
export SOVEREIGN_LOG=${SOVEREIGN_LOG:-warn}

source "$root/scripts/bench-lib.sh"

[[ $part =~ ^[0-9]+$ && $part -ge 1 && $part -le 1024 ]] || die "BENCH_PART_MIB must be 1..1024, not '$part'"
[[ $mib =~ ^[0-9]+$ && $mib -ge 1 && $mib -le 8192 ]] || die "BENCH_MIB must be at most 8192, not '$mib'"
part=$((part < mib ? part : mib))
need_tools curl:curl python3:python3 mkfs.ext4:e2fsprogs
[[ $(id -u) == 0 ]] || die "the loop filesystems need root"

bin=$(sovereign_bin "$root")

tmp=$(mktemp -d /tmp/bench-ingest.XXXXXX)
pids=()
mounts=()
cleanup() {
    stop_pids "${pids[@]}"
    drop_tmp
}
on_exit cleanup

bytes=$((mib << 20))
mbs() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.1f MB/s", b / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", b / a }'; }

parts=$((mib / part))
say "writing $parts parts of $part MiB (seed $seed, in $tmp)"
mkdir -p "$tmp/parts"
python3 - "$tmp/parts" "$parts" "$part" "$seed" <<'PYEOF'
import random, sys
d, n, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) << 20, int(sys.argv[4])
r = random.Random(seed)
for i in range(n):
    with open(f"{d}/part-{i}", "wb") as f:
        for at in range(0, size, 1 << 24):  # randbytes takes at most 2^31 bits at once
            f.write(r.randbytes(min(1 << 24, size - at)))
PYEOF
mib=$((parts * part))
bytes=$((mib << 20))
# Written back and in the page cache before anything is timed.
sync
cat "$tmp"/parts/* >/dev/null

say "sha256sum"
t0=$(now)
sha256sum "$tmp"/parts/* >/dev/null
sha_secs=$(secs "$t0" "$(now)")

say "dd conv=fsync"
fresh_fs "$tmp/dd" "$((mib + 256))"
t0=$(now)
for f in "$tmp"/parts/*; do
    dd if="$f" of="$tmp/dd/$(basename "$f")" bs=4M conv=fsync status=none
done
dd_secs=$(secs "$t0" "$(now)")

say "sovereign origin publish"
export SOVEREIGN_ADMIN_TOKEN_VIEWER=bench-viewer-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_OPERATOR=bench-operator-token-0123456789
export SOVEREIGN_ADMIN_TOKEN_CHAOS=bench-chaos-token-0123456789
fresh_fs "$tmp/fs" "$((mib * 2 + 512))"
o_port=$(free_port) o_admin=$(free_port)
"$bin" origin serve --data "$tmp/fs/origin" --listen "127.0.0.1:$o_port" \
    --admin-listen "127.0.0.1:$o_admin" 2>"$tmp/origin.log" &
origin_pid=$!
pids+=("$origin_pid")
wait_http "http://127.0.0.1:$o_port/healthz" 30 || die "origin did not start: $(tail -5 "$tmp/origin.log")"
sync
t0=$(now)
for ((i = 0; i < parts; i++)); do
    "$bin" origin publish --origin "http://127.0.0.1:$o_admin" --id "part-$i" --priority P1 \
        --token "$SOVEREIGN_ADMIN_TOKEN_OPERATOR" "$tmp/parts/part-$i" >>"$tmp/publish.log" ||
        die "publishing part $i failed: $(tail -3 "$tmp/publish.log")"
done
origin_secs=$(secs "$t0" "$(now)")
# The origin's CPU time (user + system, clock ticks) over its life so far: how much of
# the publish wall time it computed, and how much it waited (for the disk).
ticks=$(getconf CLK_TCK)
cpu=$(awk -v t="$ticks" '{ printf "%.2f s user, %.2f s system", $14 / t, $15 / t }' "/proc/$origin_pid/stat")
rss=$(awk '/^VmRSS/ { printf "%.0f MB", $2 * 1024 / 1e6 }' "/proc/$origin_pid/status")
hwm=$(awk '/^VmHWM/ { printf "%.0f MB", $2 * 1024 / 1e6 }' "/proc/$origin_pid/status")
files=$(find "$tmp/fs/origin" -type f | wc -l)

# A restart: the origin rebuilds from its store (every chunk file read and verified once,
# none kept in memory); its memory then and how long it took to answer again.
say "sovereign origin restart"
stop_pids "$origin_pid"
# Cold: nothing of the store in the page cache (as after a power cut).
sync
echo 3 >/proc/sys/vm/drop_caches
t0=$(now)
"$bin" origin serve --data "$tmp/fs/origin" --listen "127.0.0.1:$o_port" \
    --admin-listen "127.0.0.1:$o_admin" 2>>"$tmp/origin.log" &
origin_pid=$!
pids+=("$origin_pid")
wait_http "http://127.0.0.1:$o_port/healthz" 300 || die "origin did not restart: $(tail -5 "$tmp/origin.log")"
restart_secs=$(secs "$t0" "$(now)")
restart_rss=$(awk '/^VmRSS/ { printf "%.0f MB", $2 * 1024 / 1e6 }' "/proc/$origin_pid/status")

echo "machine: $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sovereign: $("$bin" --version 2>/dev/null | head -1); $(sha256sum --version | head -1)"
echo "content: $mib MiB of pseudo-random bytes, $parts publishes of $part MiB, seed $seed"
echo
echo "| contender | time | throughput | origin / it |"
echo "|---|---|---|---|"
printf '| sovereign origin publish | %.2f s | %s | — |\n' "$origin_secs" "$(mbs "$origin_secs")"
printf '| sha256sum | %.2f s | %s | %s |\n' "$sha_secs" "$(mbs "$sha_secs")" "$(ratio "$origin_secs" "$sha_secs")"
printf '| dd conv=fsync | %.2f s | %s | %s |\n' "$dd_secs" "$(mbs "$dd_secs")" "$(ratio "$origin_secs" "$dd_secs")"
echo
echo "origin after: resident $rss (peak $hwm); $files files in its data directory; CPU $cpu"
printf 'origin restarted on that store: answering after %.2f s, resident %s\n' "$restart_secs" "$restart_rss"
