#!/bin/bash
# A sweep on a real Slurm cluster: starts a one-node cluster on this machine (munged,
# slurmctld, slurmd, all under a scratch directory), submits the shipped batch script
# (docs/deploy/slurm-sweep.sbatch) as a job array of 4 shards, waits for it, merges the
# shards' records, and checks that the merged result is a single-machine sweep of the
# same seeds: the same cases and failures in JUnit, the same summary, the same exit code.
#
# Usage: tests/cluster/slurm.sh SOVEREIGN_BINARY   (as root; .ci/run runs it)
# Needs Debian's slurmctld, slurmd, slurm-client and munge.
set -euo pipefail

bin=$(realpath "${1:?usage: $0 SOVEREIGN_BINARY}")
repo=$(cd "$(dirname "$0")/../.." && pwd)
for tool in munged slurmctld slurmd sbatch sinfo scancel; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed (apt-get install slurmctld slurmd slurm-client munge)"; exit 1; }
done

work=$(mktemp -d /tmp/sovereign-slurm.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  scancel --full --quiet "${job:-0}" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${keep:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# munge: its own key, socket and state under $work.
mkdir -p "$work/munge" && chown munge:munge "$work/munge" && chmod 755 "$work/munge" # munged wants its socket's folder reachable by all
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chown munge:munge "$work/munge/munge.key" && chmod 400 "$work/munge/munge.key"
socket="$work/munge/munge.socket"
runuser -u munge -- munged --foreground --key-file="$work/munge/munge.key" \
  --socket="$socket" --pid-file="$work/munge/munged.pid" \
  --log-file="$work/munge/munged.log" --seed-file="$work/munge/munged.seed" \
  > "$work/munge/munged.out" 2>&1 &
pids+=($!)

node=$(hostname -s)
mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
cpus=$(nproc)
mkdir -p "$work/ctld" "$work/spool" "$work/out"
export SLURM_CONF="$work/slurm.conf"
cat > "$SLURM_CONF" <<CONF
ClusterName=sovereign-test
SlurmctldHost=$node
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$work/ctld
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
ReturnToService=2
MpiDefault=none
NodeName=$node CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || { echo "FAIL: munged did not start"; cat "$work/munge/munged.log" || true; exit 1; }
slurmctld -D -f "$SLURM_CONF" > "$work/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" > "$work/slurmd.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  timeout 5 sinfo -h -o %t 2>/dev/null | grep -qx idle && break
  sleep 0.2
done
timeout 5 sinfo -h -o '%P %t %D %c' | grep -q idle || {
  echo "FAIL: the Slurm node did not come up"
  tail -n 20 "$work/slurmctld.log" "$work/slurmd.log" || true
  keep=1
  exit 1
}
echo "slurm: one node ($node, $cpus CPUs) up: $(sinfo --version)"

scenarios="scenarios/fibre-cut.toml scenarios/storm.toml"
seeds=12
plant=ack-before-fsync
out="$work/out/slurm"
cd "$repo"
job=$(timeout 600 sbatch --parsable --wait --array=0-3 --cpus-per-task=1 --mem=256M \
  --chdir="$repo" --output="$work/out/task-%a.out" \
  --export="ALL,SOVEREIGN=$bin,SCENARIOS=$scenarios,SEEDS=$seeds,SHARDS=4,OUT=$out,PLANT=$plant" \
  docs/deploy/slurm-sweep.sbatch) || {
  echo "FAIL: the job array did not complete"
  cat "$work"/out/task-*.out || true
  keep=1
  exit 1
}
echo "slurm: job array $job of 4 tasks done"
for a in 0 1 2 3; do
  grep -q "shard $a/4 from SLURM_ARRAY_TASK_ID" "$work/out/task-$a.out" || {
    echo "FAIL: task $a did not run shard $a/4 from Slurm's variables"
    cat "$work/out/task-$a.out"
    exit 1
  }
done

set +e
"$bin" sim merge "$out/records" --junit "$work/merged.xml" > "$work/merge.txt"
merged_code=$?
# shellcheck disable=SC2086
"$bin" sim sweep $scenarios --seeds "$seeds" --plant "$plant" --jobs 2 2>/dev/null \
  --junit "$work/whole.xml" --out "$work/whole" > "$work/whole.txt"
whole_code=$?
set -e
cat "$work/merge.txt"

cases() { sed -E 's/ time="[0-9.]+"//; s#(/tmp|'"$work"')[^ "<]*/([^/ "<]+\.failure\.toml)#\2#g' "$1"; }
fail=0
[ "$merged_code" = "$whole_code" ] || { echo "FAIL: merge exit $merged_code, single sweep exit $whole_code"; fail=1; }
[ "$whole_code" = 1 ] || { echo "FAIL: the single sweep should find the planted bug (exit $whole_code)"; fail=1; }
summary() { sed -n 's/^summary: \([^;]*\).*/\1/p' "$1"; }
[ "$(summary "$work/merge.txt")" = "$(summary "$work/whole.txt")" ] || {
  echo "FAIL: summaries differ: merged '$(summary "$work/merge.txt")', single '$(summary "$work/whole.txt")'"
  fail=1
}
grep -q "4 of 4 shards" "$work/merge.txt" || { echo "FAIL: not all 4 shards merged"; fail=1; }
if ! diff <(cases "$work/merged.xml") <(cases "$work/whole.xml") > "$work/junit.diff"; then
  echo "FAIL: merged JUnit differs from the single sweep's:"
  head -40 "$work/junit.diff"
  fail=1
fi
[ "$fail" = 0 ] || { keep=1; exit 1; }
echo "PASS: 4 Slurm array tasks merged = one machine's sweep ($(summary "$work/merge.txt"), exit $merged_code)"
