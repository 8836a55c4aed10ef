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
