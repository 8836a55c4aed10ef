#!/bin/bash
# The cluster files in docs/deploy/ against their real schemas: the Kubernetes Indexed
# Job with kubernetes-validate (strict: unknown fields are errors), the GitHub Actions
# workflow with check-jsonschema's vendored workflow schema, the Slurm batch script with
# bash -n (tests/cluster/slurm.sh submits it for real). The two schema checks are also
# shown to fail on a broken copy.
#
# Usage: tests/cluster/manifests.sh   (needs kubernetes-validate and check-jsonschema from
# PyPI; .ci/run installs them)
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

k8s() { kubernetes-validate --strict --quiet "$1"; }
gha() { check-jsonschema --builtin-schema vendor.github-workflows "$1" >/dev/null; }

k8s docs/deploy/k8s-sweep-job.yaml
sed 's/completions: 100/completions: many/' docs/deploy/k8s-sweep-job.yaml > "$tmp/bad-job.yaml"
if k8s "$tmp/bad-job.yaml" >/dev/null 2>&1; then
  echo "FAIL: kubernetes-validate accepted completions: many"
  exit 1
fi
grep -q -- "--shards=100" docs/deploy/k8s-sweep-job.yaml && grep -q "completions: 100" docs/deploy/k8s-sweep-job.yaml ||
  { echo "FAIL: the Job's completions and --shards disagree"; exit 1; }
echo "ok docs/deploy/k8s-sweep-job.yaml: a valid batch/v1 Job (Kubernetes $(kubernetes-validate --version) schema, strict)"

gha docs/deploy/github-sweep.yml
sed 's/runs-on: ubuntu-latest/runs_on: ubuntu-latest/' docs/deploy/github-sweep.yml > "$tmp/bad.yml"
if gha "$tmp/bad.yml" 2>/dev/null; then
  echo "FAIL: check-jsonschema accepted runs_on"
  exit 1
fi
echo "ok docs/deploy/github-sweep.yml: a valid GitHub Actions workflow"

bash -n docs/deploy/slurm-sweep.sbatch
echo "ok docs/deploy/slurm-sweep.sbatch: bash syntax (run for real by tests/cluster/slurm.sh)"
