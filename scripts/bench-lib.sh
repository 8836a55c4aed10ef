# Shared by the benchmark scripts (sourced, not run): progress and errors, installing the
# Debian packages a bench compares against, waiting for an HTTP server, stopping the
# processes a bench started.
#
#   source "$(dirname "$0")/bench-lib.sh"
#   need_tools nginx:nginx wrk:wrk        # PROGRAM:PACKAGE pairs
#   wait_http http://127.0.0.1:8080/healthz 30 || die "..."

say() { echo "bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

# need_tools PROGRAM:PACKAGE...: installs the packages of the programs missing from PATH
# (and /usr/sbin), or fails loudly naming them when not root.
need_tools() {
    local t need=()
    for t in "$@"; do
        command -v "${t%%:*}" >/dev/null 2>&1 || [[ -x /usr/sbin/${t%%:*} ]] || need+=("${t#*:}")
    done
    ((${#need[@]})) || return 0
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    [[ $(id -u) == 0 ]] || die "missing ${need[*]}; install them or run as root"
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${need[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${need[@]}" >&2; }
}

# wait_http URL SECONDS: until URL answers 2xx, or fail (status 1) after SECONDS.
wait_http() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# stop_pids PID...: TERM each process, then reap them all.
stop_pids() {
    local p
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# sovereign_bin ROOT: the `sovereign` binary to measure: $SOVEREIGN_BIN, or a release
# build of ROOT (honouring CARGO_TARGET_DIR). Prints its path.
sovereign_bin() {
    local bin target
    if [[ -n ${SOVEREIGN_BIN:-} ]]; then
        bin=$SOVEREIGN_BIN
    else
        say "building sovereign (release)"
        (cd "$1" && cargo build --release -p sovereign-cli >&2)
        target=${CARGO_TARGET_DIR:-$1/target}
        [[ $target == /* ]] || target=$1/$target
        bin=$target/release/sovereign
    fi
    [[ -x $bin ]] || die "no sovereign binary at $bin"
    echo "$bin"
}

# free_port: a TCP port free on 127.0.0.1 now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# sha FILE: its SHA-256, hex.
sha() { sha256sum "$1" | cut -d' ' -f1; }

# start_rsyncd DIR HOST [PREFIX...]: an rsync daemon serving DIR/src as module `m` on
# HOST (run under PREFIX, e.g. `ip netns exec NS`), its files in DIR; appends its pid to
# the caller's `pids`, sets `rsyncd_port`, and returns once it answers.
start_rsyncd() {
    local d=$1 host=$2 i
    shift 2
    rsyncd_port=$(free_port)
    cat >"$d/rsyncd.conf" <<EOF
use chroot = no
pid file = $d/rsyncd.pid
[m]
    path = $d/src
    read only = yes
EOF
    "$@" rsync --daemon --no-detach --config="$d/rsyncd.conf" --port="$rsyncd_port" \
        --address="$host" --log-file="$d/rsyncd.log" &
    pids+=($!)
    for ((i = 0; i < 100; i++)); do
        rsync "rsync://$host:$rsyncd_port/" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "the rsync daemon did not start: $(tail -3 "$d/rsyncd.log" 2>/dev/null)"
}

# fresh_fs DIR MIB: a new ext4 filesystem of MIB MiB (a loop image next to DIR) mounted at
# DIR; appends DIR to the caller's `mounts` (unmount them on exit). Needs root. Each run
# gets its own: ext4 allocates inodes slowly for minutes after thousands of files were
# deleted (it skips recently deleted inodes, reading each one's inode table block), which
# made runs that followed an earlier run's cleanup up to 5x slower, and the stores keep
# one file per chunk.
fresh_fs() {
    mkdir -p "$1"
    truncate -s "${2}M" "$1.img"
    # Inode tables and journal made now, not by ext4's background thread during a run.
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$1.img"
    mount -o loop "$1.img" "$1"
    mounts+=("$1")
}

# now: the time in seconds, to the nanosecond. secs A B: B - A, to the millisecond.
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# drop_tmp: unmounts the caller's `mounts`, then deletes its `tmp` (kept with BENCH_KEEP=1,
# or when a filesystem would not unmount: never delete through a mount).
drop_tmp() {
    local m busy=0
    for m in "${mounts[@]}"; do umount "$m" 2>/dev/null || { say "could not unmount $m"; busy=1; }; done
    if [[ ${BENCH_KEEP:-0} == 1 || $busy == 1 ]]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}

# on_exit FUNCTION: runs it when the script exits; INT and TERM exit (130), and a failing
# command is named with its line.
on_exit() {
    trap "$1" EXIT
    trap 'exit 130' INT TERM
    trap 'say "failed at line $LINENO: $BASH_COMMAND"' ERR
}
