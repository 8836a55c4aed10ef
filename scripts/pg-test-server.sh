#!/usr/bin/env bash
# A throwaway PostgreSQL for the store's tests (sovereign-store's PgStore tests).
#
#   eval "$(scripts/pg-test-server.sh start)"   # prints: export SOVEREIGN_TEST_PG='...'
#   cargo test -p sovereign-store
#   scripts/pg-test-server.sh stop              # stops it and deletes its directory
#   scripts/pg-test-server.sh status
#
# Settings (environment): PG_TEST_PORT (default 5433), PG_TEST_DIR (default
# /tmp/sovereign-pg-test-$PORT). Only the export line goes to stdout; progress goes to
# stderr. The server listens on 127.0.0.1 only, with trust authentication, fsync on (the
# tests check durability, so the server keeps its own promises too).
#
# Finds initdb/pg_ctl under /usr/lib/postgresql/*/bin (the newest version there; the
# project targets 15). If none is installed and we are root, installs Debian's
# `postgresql` package first. As root, the server runs as the `postgres` user.
set -euo pipefail

cmd=${1:-start}
port=${PG_TEST_PORT:-5433}
dir=${PG_TEST_DIR:-/tmp/sovereign-pg-test-$port}
data=$dir/data
log=$dir/server.log

say() { echo "pg-test-server: $*" >&2; }
die() { say "error: $*"; exit 1; }

find_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        echo "$d"
    fi
}

bindir=$(find_bindir)
if [ -z "$bindir" ] && [ "$cmd" = start ]; then
    [ "$(id -u)" = 0 ] || die "no initdb under /usr/lib/postgresql/*/bin; install PostgreSQL (apt-get install postgresql) or run as root"
    say "installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    bindir=$(find_bindir)
    [ -n "$bindir" ] || die "postgresql installed but no initdb under /usr/lib/postgresql/*/bin"
fi

# Run a PostgreSQL program as the postgres user when we are root (initdb and the server
# refuse to run as root), as ourselves otherwise.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "no 'postgres' user to run the server as"
        # From /: postgres may not be allowed into the caller's working directory.
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

running() { [ -n "$bindir" ] && [ -f "$data/PG_VERSION" ] && as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

# Our directories carry this marker; we delete no directory without it.
marker=.sovereign-pg-test
remove_dir() {
    if [ -d "$dir" ] && [ -z "$(ls -A "$dir")" ]; then
        rmdir "$dir"
    elif [ -e "$dir" ]; then
        [ -f "$dir/$marker" ] || die "$dir exists and was not made by this script (no $marker); not touching it"
        rm -rf "$dir"
    fi
}

conninfo="host=127.0.0.1 port=$port user=postgres dbname=postgres"

case "$cmd" in
start)
    if running; then
        say "already running in $data ($bindir)"
    else
        if [ ! -f "$data/PG_VERSION" ]; then
            remove_dir
            mkdir -p "$dir"
            touch "$dir/$marker"
            [ "$(id -u)" = 0 ] && chown postgres: "$dir"
            say "initdb $data ($("$bindir/postgres" --version))"
            as_pg "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
                --no-locale >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
        fi
        say "starting on 127.0.0.1:$port (log: $log)"
        # Sockets in our own directory: /var/run/postgresql may not exist or be writable.
        if ! as_pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 60 start \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200" >&2; then
            tail -n 30 "$log" >&2 || true
            die "the server did not start"
        fi
    fi
    # Prove it answers before telling anyone to use it.
    "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 30 || die "the server does not answer on 127.0.0.1:$port"
    echo "export SOVEREIGN_TEST_PG='$conninfo'"
    ;;
stop)
    if running; then
        say "stopping $data"
        as_pg "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2
    else
        say "not running"
    fi
    remove_dir
    ;;
status)
    if running; then
        say "running in $data, port $port"
        echo "export SOVEREIGN_TEST_PG='$conninfo'"
    else
        say "not running"
        exit 3
    fi
    ;;
*)
    die "unknown command '$cmd': expected start, stop or status"
    ;;
esac
