#!/usr/bin/env bash
# Throughput and added latency of `sovereign proxy` with no toxics, next to a direct
# loopback connection and to socat, in one run (docs/BENCHMARKS.md has the figures).
#
#   scripts/bench-proxy.sh        # needs target/release/sovereign, python3 and socat
#
# An upstream process (Python) serves two ports: a source that sends BENCH_BYTES to each
# connection and closes, and an echo. For each path (direct, sovereign proxy, socat):
#   throughput: BENCH_RUNS downloads of BENCH_BYTES; the median rate is reported;
#   latency:    BENCH_PINGS round trips of 64 bytes on one connection (after 1000 warm-up
#               ones); p50 and p99, and p99 minus the direct path's p99 ("added p99").
# The client is the same Python code for every path, so its own overhead cancels out in
# the differences. Goals (issue 13): ≥ 90% of direct throughput, < 100 µs added p99.
#
# Environment: SOVEREIGN_BIN (default target/release/sovereign), BENCH_BYTES (default
# 1 GiB), BENCH_RUNS (5), BENCH_PINGS (20000).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SOVEREIGN_BIN:-target/release/sovereign}
[ -x "$bin" ] || { echo "$bin missing: cargo build --release" >&2; exit 2; }
command -v socat >/dev/null || { echo "socat missing: apt-get install socat" >&2; exit 2; }
export BENCH_BYTES=${BENCH_BYTES:-1073741824} BENCH_RUNS=${BENCH_RUNS:-5} BENCH_PINGS=${BENCH_PINGS:-20000}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

src=$(free_port); echo_port=$(free_port)
python3 - "$src" "$echo_port" <<'EOF' &
import os, socket, sys, threading
size = int(os.environ["BENCH_BYTES"])
block = b"\x5a" * (1 << 20)
def serve(port, handle):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port)); l.listen(64)
    while True:
        c, _ = l.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=handle, args=(c,), daemon=True).start()
def source(c):
    left = size
    try:
        while left > 0:
            n = min(left, len(block)); c.sendall(block[:n]); left -= n
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536): pass
    except OSError: pass
    c.close()
def echo(c):
    try:
        while True:
            d = c.recv(65536)
            if not d: break
            c.sendall(d)
    except OSError: pass
    c.close()
threading.Thread(target=serve, args=(int(sys.argv[1]), source), daemon=True).start()
serve(int(sys.argv[2]), echo)
EOF
pids+=($!)

# sovereign proxy: two proxies (source, echo), no toxics.
api=127.0.0.1:$(free_port); p_src=$(free_port); p_echo=$(free_port)
cfg=$(mktemp)
printf '[{"name":"source","listen":"127.0.0.1:%s","upstream":"127.0.0.1:%s"},{"name":"echo","listen":"127.0.0.1:%s","upstream":"127.0.0.1:%s"}]' \
  "$p_src" "$src" "$p_echo" "$echo_port" >"$cfg"
SOVEREIGN_LOG=warn "$bin" proxy serve --listen "$api" --config "$cfg" &
pids+=($!)
# socat: one forking listener per upstream port.
s_src=$(free_port); s_echo=$(free_port)
socat "TCP-LISTEN:$s_src,bind=127.0.0.1,reuseaddr,fork" "TCP:127.0.0.1:$src" &
pids+=($!)
socat "TCP-LISTEN:$s_echo,bind=127.0.0.1,reuseaddr,fork,nodelay" "TCP:127.0.0.1:$echo_port,nodelay" &
pids+=($!)
sleep 1
rm -f "$cfg"

echo "machine: $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bytes per download: $BENCH_BYTES, downloads: $BENCH_RUNS, round trips: $BENCH_PINGS"
python3 - "$src:$echo_port" "$p_src:$p_echo" "$s_src:$s_echo" <<'EOF'
import os, socket, statistics, sys, time
size, runs, pings = (int(os.environ[k]) for k in ("BENCH_BYTES", "BENCH_RUNS", "BENCH_PINGS"))
paths = dict(zip(["direct", "sovereign proxy", "socat"], sys.argv[1:]))
def download(port):
    s = socket.create_connection(("127.0.0.1", port)); buf = bytearray(1 << 20); got = 0
    t = time.perf_counter()
    while True:
        n = s.recv_into(buf)
        if n == 0: break
        got += n
    d = time.perf_counter() - t; s.close()
    assert got == size, f"got {got} of {size} bytes"
    return got / d
def latencies(port):
    s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"p" * 64; out = []
    for i in range(1000 + pings):
        t = time.perf_counter_ns(); s.sendall(msg); got = 0
        while got < len(msg): got += len(s.recv(64 - got))
        if i >= 1000: out.append((time.perf_counter_ns() - t) / 1000)
    s.close(); return sorted(out)
res = {}
# Interleaved: run r of every path before run r+1 of any, so a load change hits all alike.
rates = {k: [] for k in paths}
for r in range(runs):
    for name, ports in paths.items():
        rates[name].append(download(int(ports.split(":")[0])))
lat = {name: latencies(int(ports.split(":")[1])) for name, ports in paths.items()}
direct_rate = statistics.median(rates["direct"]); direct_p99 = lat["direct"][int(0.99 * len(lat["direct"]))]
print(f"{'path':<16} {'MB/s (median)':>14} {'vs direct':>10} {'p50 µs':>8} {'p99 µs':>8} {'added p99 µs':>13}")
for name in paths:
    rate = statistics.median(rates[name]); l = lat[name]
    p50 = l[len(l) // 2]; p99 = l[int(0.99 * len(l))]
    print(f"{name:<16} {rate / 1e6:>14.0f} {rate / direct_rate:>9.0%} {p50:>8.1f} {p99:>8.1f} {p99 - direct_p99:>13.1f}")
EOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
