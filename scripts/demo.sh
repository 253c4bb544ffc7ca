#!/usr/bin/env bash
# make demo: a local ECR emulator, seeded; the real handler under
# `cargo lambda watch`; the sample events, first as a dry run, then (once
# the operator sets ECR_GC_DRY_RUN=false) for real.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
WATCH_PORT=$(free_port)
ENDPOINT="http://127.0.0.1:${MOTO_PORT}"
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_port() { for _ in $(seq 1 600); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done; echo "nothing listens on port $1" >&2; exit 1; }

step "Starting a local AWS emulator (moto_server, plus App Runner: scripts/emulator.py) on ${ENDPOINT}"
python3 scripts/emulator.py -H 127.0.0.1 -p "${MOTO_PORT}" > "${WORK}/moto.log" 2>&1 &
pids+=($!)
wait_port "${MOTO_PORT}"
python3 scripts/seed_demo.py "${ENDPOINT}"

step "The policy (examples/demo-policy.json): keep 3 releases, 2 untagged; demo/keep-* excluded; no grace period, as the demo images are seconds old"
python3 -c 'import json; [print("  rule %(rulePriority)s: %(description)s" % r) for r in json.load(open("examples/demo-policy.json"))["rules"]]'

step "Building the function (cargo lambda watch runs this build)"
cargo build --bin ecr-gc --locked

# $1: ECR_GC_DRY_RUN. The function reads its environment once, as Lambda
# does at a cold start, so changing it means starting it again.
start_function() {
  if [ -n "${watch_pid:-}" ]; then kill "${watch_pid}" 2>/dev/null || true; wait "${watch_pid}" 2>/dev/null || true; fi
  cargo lambda watch --bin ecr-gc --invoke-address 127.0.0.1 --invoke-port "${WATCH_PORT}" --timeout 600 --quiet \
    --env-var "AWS_ENDPOINT_URL=${ENDPOINT}" --env-var AWS_ACCESS_KEY_ID=testing \
    --env-var AWS_SECRET_ACCESS_KEY=testing --env-var AWS_REGION=us-east-1 \
    --env-var ECR_GC_POLICY_FILE=examples/demo-policy.json --env-var "ECR_GC_DRY_RUN=$1" \
    >> "${WORK}/function.log" 2>&1 &
  watch_pid=$!
  pids+=("${watch_pid}")
  wait_port "${WATCH_PORT}"
}

step "Starting the real handler under cargo lambda watch with ECR_GC_DRY_RUN=true (the default)"
touch "${WORK}/function.log"
start_function true

invoke() { # $1: a label ("refused" expects the invocation to fail), then cargo lambda invoke's data arguments
  local label=$1; shift
  local before; before=$(wc -l < "${WORK}/function.log")
  if ! cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port "${WATCH_PORT}" --output-format json "$@" > "${WORK}/response.json" 2> "${WORK}/invoke.err"; then
    if [ "${label}" != "refused" ]; then
      echo "-- the invocation failed, and it should not have:" >&2
      tail -n +"$((before + 1))" "${WORK}/function.log" | grep '^{' | grep '"level":"ERROR"' >&2 || true
      cat "${WORK}/invoke.err" >&2
      exit 1
    fi
    echo "-- the invocation failed, as it should:"
    tail -n +"$((before + 1))" "${WORK}/function.log" | grep '^{' | grep '"message":"invocation failed"' || cat "${WORK}/invoke.err"
    return 0
  fi
  if [ "${label}" = "refused" ]; then
    echo "-- the invocation should have been refused, and was not" >&2
    exit 1
  fi
  echo "-- JSON log lines (${label}):"
  tail -n +"$((before + 1))" "${WORK}/function.log" | grep '^{' | grep -E '"message":"(image|repository|run|event)' || true
  echo "-- the report's summary:"
  python3 - "${WORK}/response.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
if "ignored" in r:
    print("  ignored:", r["ignored"])
else:
    s = r["summary"]
    print(f"  trigger={r['trigger']} dryRun={r['dryRun']} repositories={s['repositories']} scanned={s['imagesScanned']} "
          f"planned={s['imagesPlanned']} deleted={s['imagesDeleted']} failed={s['imagesFailed']} bytesReclaimed={s['bytesReclaimed']}")
    saving = s["estimatedMonthlySaving"]["plannedUsd" if r["dryRun"] else "reclaimedUsd"]
    print(f"  estimated saving ${saving:.4f} a month at ECR's storage prices (an estimate; the image sizes are an upper bound)")
PY
}

count_images() {
  python3 - "${ENDPOINT}" <<'PY'
import sys, boto3
ecr = boto3.client("ecr", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
for repo in ["demo/web", "demo/worker", "demo/keep-base"]:
    images = ecr.describe_images(repositoryName=repo)["imageDetails"]
    tags = sorted(t for i in images for t in i.get("imageTags", []))
    untagged = sum(1 for i in images if not i.get("imageTags"))
    print(f"  {repo}: {len(images)} images: {', '.join(tags)} + {untagged} untagged")
PY
}

step "1. Scheduled run (events/schedule.json): a dry run, nothing is deleted"
invoke "dry run" --data-file events/schedule.json
count_images

step "2. An ECR DELETE event (events/ecr-delete.json) is ignored"
invoke "delete event" --data-file events/ecr-delete.json

step "3. An event cannot turn deleting on: {\"dryRun\": false} is refused while ECR_GC_DRY_RUN=true"
invoke "refused" --data-ascii '{"dryRun": false}'
count_images

step "4. The operator sets ECR_GC_DRY_RUN=false (the template's DryRun=false)"
start_function false

step "5. An event can still brake: events/manual.json says \"dryRun\": true"
invoke "braked" --data-file events/manual.json

step "6. For real: the scheduled run (events/schedule.json) deletes"
invoke "for real" --data-file events/schedule.json
count_images

step "Done. The full function output is in ${WORK}/function.log"
