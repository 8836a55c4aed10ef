#!/usr/bin/env bash
# Fuzz one target of tests/fuzz for a while (libFuzzer via cargo-fuzz).
#
#   scripts/fuzz.sh TARGET [SECONDS] [-- LIBFUZZER-ARGS…]
#
# TARGET is one of wire, scenario, failure, plan, shard, http (tests/fuzz/fuzz_targets/); SECONDS
# defaults to 300. The growing corpus goes to tests/fuzz/corpus/TARGET (not committed);
# the seeds (the shipped scenarios and game days, the parser's fixtures,
# tests/fuzz/seeds/TARGET) and the regressions are read as extra corpus directories;
# crashes land in tests/fuzz/artifacts/TARGET/. Copy a crash worth keeping into
# tests/fuzz/regressions/TARGET/ with a name that says what it found: `cargo test -p
# sovereign-hostile` then replays it (docs/SECURITY.md).
#
# cargo-fuzz needs nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain
# accept them. No sanitizer (the workspace forbids unsafe code; libFuzzer's own checks,
# panics and overflow checks (-a, debug assertions) are what finds bugs here), which also
# keeps executions fast. Needs `cargo install cargo-fuzz`.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS] [-- LIBFUZZER-ARGS…]}
seconds=${2:-300}
shift $(( $# >= 2 ? 2 : 1 ))
[ "${1:-}" = "--" ] && shift
# The seeds: as sovereign_hostile::seed_dirs (tests/hostile/src/lib.rs) lists them.
case "$target" in
  wire) dict=json.dict seeds=(tests/fuzz/seeds/wire) ;;
  http) dict=http.dict seeds=(tests/fuzz/seeds/http) ;;
  failure) dict=toml.dict seeds=(tests/fuzz/seeds/failure) ;;
  scenario) dict=toml.dict seeds=(scenarios simulator/sim/tests/fixtures/valid simulator/sim/tests/fixtures/invalid) ;;
  plan) dict=toml.dict seeds=(gamedays) ;;
  shard) dict=json.dict seeds=(tests/fuzz/seeds/shard) ;;
  *) echo "unknown target $target (wire, scenario, failure, plan, shard, http)" >&2; exit 2 ;;
esac
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
fuzz=tests/fuzz
mkdir -p "$fuzz/corpus/$target" "$fuzz/regressions/$target"
export RUSTC_BOOTSTRAP=1
exec cargo fuzz run --fuzz-dir "$fuzz" --sanitizer none --debug-assertions "$target" \
  "$fuzz/corpus/$target" "${seeds[@]}" "$fuzz/regressions/$target" -- \
  -max_total_time="$seconds" -dict="$fuzz/$dict" -timeout=30 \
  -print_final_stats=1 "$@"
