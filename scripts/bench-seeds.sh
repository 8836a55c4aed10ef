#!/usr/bin/env bash
# What a seed costs: seeds per core-hour on the one-hour storm, and the CPU time of one
# region run (issue 16's goals: >= 150,000 seeds per core-hour, region <= 0.5 CPU s),
# for this build and, when given, a baseline build measured alternately in the same run
# (docs/BENCHMARKS.md has the figures).
#
#   scripts/bench-seeds.sh                      # this build: target/release/sovereign
#   scripts/bench-seeds.sh /tmp/sovereign-old   # and a baseline binary, side by side
#
# storm-1h: `sim sweep scenarios/bench/storm-1h.toml --seeds $BENCH_SEEDS --jobs 1`, whose
# CPU time (user + system, the sweep and its workers) gives seeds per core-hour.
# region: `sim run scenarios/region.toml --seed 1`, CPU time; the fastest of $BENCH_ROUNDS.
# Each build runs $BENCH_ROUNDS rounds, builds alternating, and the table shows the
# fastest round (the least disturbed by other work on the machine). The builds must agree
# on the region run's trace hash and on every sweep verdict: a speed-up that changes
# behaviour is not a speed-up, and the script fails.
#
# Environment: SOVEREIGN_BIN (default target/release/sovereign), BENCH_SEEDS (200),
# BENCH_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${SOVEREIGN_BIN:-target/release/sovereign}
base=${1:-}
seeds=${BENCH_SEEDS:-200}
rounds=${BENCH_ROUNDS:-3}
[ -x "$bin" ] || { echo "$bin missing: cargo build --release" >&2; exit 2; }
[ -z "$base" ] || [ -x "$base" ] || { echo "baseline $base is not an executable" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }

# cpu BIN ARGS...: run BIN, print "<cpu seconds> <last line of its output>".
cpu() {
  python3 - "$@" <<'EOF'
import resource, subprocess, sys
out = subprocess.run(sys.argv[1:], capture_output=True, text=True)
if out.returncode != 0:
    sys.stderr.write(out.stdout + out.stderr)
    sys.exit(f"{' '.join(sys.argv[1:])}: exit {out.returncode}")
r = resource.getrusage(resource.RUSAGE_CHILDREN)
lines = [l for l in out.stdout.splitlines() if l.strip()]
hashes = [l for l in lines if l.startswith("trace-hash:")]
summary = [l.split(";")[0] for l in lines if l.startswith("summary:")]
print(f"{r.ru_utime + r.ru_stime:.3f}", (hashes or summary or [""])[-1])
EOF
}

builds=("$bin")
[ -z "$base" ] || builds+=("$base")
declare -A storm region what
for b in "${builds[@]}"; do storm[$b]=; region[$b]=; done
for round in $(seq 1 "$rounds"); do
  for b in "${builds[@]}"; do
    read -r s sline < <(cpu "$b" sim sweep scenarios/bench/storm-1h.toml --seeds "$seeds" --jobs 1)
    read -r r rline < <(cpu "$b" sim run scenarios/region.toml --seed 1)
    echo "round $round $b: storm-1h $s CPU s ($sline), region $r CPU s" >&2
    storm[$b]+="$s "
    region[$b]+="$r "
    what[$b]="$sline | $rline"
  done
done

if [ -n "$base" ] && [ "${what[$bin]}" != "${what[$base]}" ]; then
  echo "the builds disagree:" >&2
  echo "  $bin: ${what[$bin]}" >&2
  echo "  $base: ${what[$base]}" >&2
  exit 1
fi

min() { tr ' ' '\n' <<<"$1" | grep . | sort -g | head -n 1; }
echo
echo "| build | storm-1h: CPU s for $seeds seeds | seeds per core-hour | of the 150,000 goal | region seed 1: CPU s | of the 0.5 s goal |"
echo "|---|---|---|---|---|---|"
for b in "${builds[@]}"; do
  s=$(min "${storm[$b]}"); r=$(min "${region[$b]}")
  awk -v b="$b" -v s="$s" -v r="$r" -v n="$seeds" 'BEGIN {
    per = n * 3600 / s
    printf "| %s | %.2f | %.0f | %.2fx | %.3f | %.2fx |\n", b, s, per, per / 150000, r, 0.5 / r
  }'
done
if [ -n "$base" ]; then
  awk -v s1="$(min "${storm[$bin]}")" -v s0="$(min "${storm[$base]}")" \
      -v r1="$(min "${region[$bin]}")" -v r0="$(min "${region[$base]}")" 'BEGIN {
    printf "\nthis build against the baseline: storm-1h %.2fx the seeds per CPU s, region %.2fx as fast\n", s0 / s1, r0 / r1
  }'
fi
echo "same behaviour: ${what[$bin]}"
