#!/usr/bin/env bash
# Runs the planner benchmark, one size per process so each peak RSS is its
# own, under ECR's rules and then under ecr-gc's extensions (regexes, semver
# order, groups, a keep rule). Usage: scripts/bench-planner.sh [SIZES...]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench planner --no-run >/dev/null 2>&1
for policy in ecr extensions; do
  for n in "${@:-10000 100000 1000000}"; do
    for size in $n; do cargo bench -q --locked --bench planner -- "$size" "$policy" 2>/dev/null; done
  done
done
