#!/usr/bin/env python3
"""The organisation benchmark (issue 15): ecr-gc over 3 accounts x 2
regions x N repositories of 50 to 500 images, against tools/fake-ecr, a
fast fake of ECR with ECR's latency and a token-bucket rate limit per
(account, region, operation).

For each rate limit and each way of running it (the CLI, `ecr-gc run
--apply`, and the Lambda function's inline path, the real binary under the
fake's Lambda runtime API with a scheduled event), it reports:
  * wall time, CPU time (user + system) and peak RSS of ecr-gc (GNU time);
  * ECR calls by operation (the fake's count) against the floor, and the
    throttling responses received;
  * the ideal wall time: per (account, region), the larger of calls / rate
    for each operation and the latency of its calls over the concurrency,
    taken over the slowest target;
  * whether the organisation ends as the report says (the images left),
    and whether the calls that were answered (throttled ones aside) are the
    floor for what the report did.
It exits non-zero when the run fails, or the images left or the floor do not
hold.

Usage: scripts/bench-organisation.py [--binary PATH] [--repositories N]
       [--rates 20,100] [--modes cli,lambda] [--latency 30-80]
"""
import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNTS = ["111111111111", "222222222222", "333333333333"]
REGIONS = ["us-east-1", "eu-west-1"]
IMAGES = (50, 500)
# The planner benchmark's policy (BENCHMARKS.md), with every in-use source
# off: the fake serves ECR and STS only. The fake's pushes span the year
# before it started.
POLICY = {
    "rules": [
        {"rulePriority": 1, "description": "keep 20 releases", "action": {"type": "expire"},
         "selection": {"tagStatus": "tagged", "tagPatternList": ["v*.*.*"],
                       "countType": "imageCountMoreThan", "countNumber": 20}},
        {"rulePriority": 2, "description": "feature branches for 14 days", "action": {"type": "expire"},
         "selection": {"tagStatus": "tagged", "tagPrefixList": ["feature-"],
                       "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14}},
        {"rulePriority": 3, "description": "keep 10 untagged", "action": {"type": "expire"},
         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 10}},
        {"rulePriority": 4, "description": "anything else for 90 days", "action": {"type": "expire"},
         "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days",
                       "countNumber": 90}},
    ],
    "settings": {
        "gracePeriodMinutes": 0,
        "inUse": {source: {"enabled": False} for source in
                  ["ecs", "lambda", "events", "scheduler", "batch", "codebuild", "stepfunctions",
                   "apprunner", "sagemaker", "eks"]},
    },
}
TARGETS = {
    "regions": REGIONS,
    "accounts": [{"accountId": a, "roleArn": f"arn:aws:iam::{a}:role/ecr-gc"} for a in ACCOUNTS],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, r.read()


def start_fake(fake, repositories, latency, rate, event=None):
    port = free_port()
    args = [fake, str(port), ",".join(ACCOUNTS), ",".join(REGIONS), str(repositories),
            f"{IMAGES[0]}-{IMAGES[1]}", latency, str(rate)]
    if event:
        args.append(event)
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise SystemExit(f"the fake did not start: {line!r}")
    return proc, port


def environment(port, work):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECR_GC_"))}
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
               HOME=work)
    return env


def floor(log):
    """The fewest ECR calls that collect what the log's `repository
    collected` lines say (the report may list only some repositories): per
    target, one DescribeRepositories page per 1,000 repositories; per
    repository, one DescribeImages page per 1,000 images, the re-read (by
    id, 100 a call, or the listing again, whichever is fewer) and one
    BatchDeleteImage per 100 deletions."""
    calls = {"DescribeRepositories": 0, "DescribeImages": 0, "BatchDeleteImage": 0}
    per_target = {}
    with open(log) as f:
        for text in f:
            line = json.loads(text)
            if "imagesScanned" not in line or "repositoryName" not in line:
                continue
            target = (line.get("accountId"), line.get("region"))
            per_target[target] = per_target.get(target, 0) + 1
            images, planned = line["imagesScanned"], line["imagesPlanned"]
            calls["DescribeImages"] += max(1, math.ceil(images / 1000))
            if planned:
                calls["DescribeImages"] += min(math.ceil(images / 1000), math.ceil(planned / 100))
                calls["BatchDeleteImage"] += math.ceil(planned / 100)
    for repositories in per_target.values():
        calls["DescribeRepositories"] += max(1, math.ceil(repositories / 1000))
    return calls


def run_cli(binary, port, work):
    policy = os.path.join(work, "policy.json")
    targets = os.path.join(work, "targets.json")
    out = os.path.join(work, "report.json")
    measured = os.path.join(work, "time")
    with open(out, "wb") as stdout:
        with open(os.path.join(work, "log.jsonl"), "wb") as stderr:
            status = subprocess.call(["/usr/bin/time", "-o", measured, "-f", "%e %U %S %M", binary, "run",
                                      "--policy", policy, "--targets", targets, "--apply", "--output", "json",
                                      "--detail", "summary"],
                                     env=environment(port, work), stdout=stdout, stderr=stderr)
    with open(out) as f:
        report = json.load(f)
    return status, measured, os.path.getsize(out), report


def run_lambda(binary, port, work):
    env = environment(port, work)
    env.update(AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{port}", AWS_LAMBDA_FUNCTION_NAME="ecr-gc",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="1",
               ECR_GC_POLICY_FILE=os.path.join(work, "policy.json"), ECR_GC_DRY_RUN="false",
               ECR_GC_TARGETS=json.dumps(TARGETS))
    measured = os.path.join(work, "time")
    # The function logs to stdout, as Lambda functions do.
    with open(os.path.join(work, "log.jsonl"), "wb") as log:
        proc = subprocess.Popen(["/usr/bin/time", "-o", measured, "-f", "%e %U %S %M", binary],
                                env=env, stdout=log, stderr=subprocess.DEVNULL)
    # The function waits for its next invocation once it has answered: stop it then.
    while True:
        status, body = get(port, "/__response")
        if status == 200:
            break
        if proc.poll() is not None:
            raise SystemExit("the function exited before answering")
        time.sleep(0.05)
    # Stop the function, not GNU time, which then reports on it.
    for pid in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split():
        os.kill(int(pid), 15)
    proc.wait()
    response = json.loads(body)
    return (0 if "errorType" not in response else 1), measured, len(body), response


def ideal(calls_by_target, rate, latency_ms, concurrency):
    """Per target (the fake's count of the calls it answered there), the
    larger of calls / rate per operation and the calls' mean latency over
    the concurrency; the slowest target's."""
    worst = 0.0
    for calls in calls_by_target:
        by_rate = max(n / rate for n in calls.values())
        by_latency = sum(calls.values()) * latency_ms / 1000 / concurrency
        worst = max(worst, by_rate, by_latency)
    return worst


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/ecr-gc"))
    parser.add_argument("--fake", default=os.path.join(ROOT, "target/release/fake-ecr"))
    parser.add_argument("--repositories", type=int, default=2000)
    parser.add_argument("--rates", default="20,100")
    parser.add_argument("--modes", default="cli,lambda")
    parser.add_argument("--latency", default="30-80")
    parser.add_argument("--concurrency", type=int, default=64,
                        help="the concurrency the ideal assumes per target")
    args = parser.parse_args()
    low, high = (int(x) for x in args.latency.split("-"))
    failed = []
    for rate in [int(r) for r in args.rates.split(",")]:
        for mode in args.modes.split(","):
            with tempfile.TemporaryDirectory() as work:
                with open(os.path.join(work, "policy.json"), "w") as f:
                    json.dump(POLICY, f)
                with open(os.path.join(work, "targets.json"), "w") as f:
                    json.dump(TARGETS, f)
                event = os.path.join(work, "event.json")
                with open(os.path.join(ROOT, "events/schedule.json")) as f:
                    scheduled = json.load(f)
                scheduled["time"] = "2027-01-01T00:00:00Z"
                with open(event, "w") as f:
                    json.dump(scheduled, f)
                fake, port = start_fake(args.fake, args.repositories, args.latency, rate, event)
                try:
                    before = json.loads(get(port, "/__stats")[1])
                    started = time.time()
                    if mode == "cli":
                        status, measured, output, report = run_cli(args.binary, port, work)
                    else:
                        status, measured, output, report = run_lambda(args.binary, port, work)
                    elapsed = time.time() - started
                    stats = json.loads(get(port, "/__stats")[1])
                finally:
                    fake.kill()
                with open(measured) as f:
                    wall, user, system, max_kib = f.read().split()[-4:]
                requests = stats["requests"]
                throttled = sum(stats["throttled"].values())
                total = sum(requests.values())
                result = {
                    "mode": mode, "rate": rate, "latency_ms": args.latency,
                    "repositories": args.repositories * len(ACCOUNTS) * len(REGIONS), "images": stats["images"],
                    "images_left": stats["imagesLeft"], "exit": status,
                    "wall_s": float(wall), "observed_s": round(elapsed, 1),
                    "cpu_s": round(float(user) + float(system), 2),
                    "peak_rss_mib": round(int(max_kib) / 1024, 1),
                    "output_bytes": output,
                    "requests": requests, "throttled": throttled,
                    "throttled_pct": round(100 * throttled / max(total, 1), 2),
                    "ideal_s": round(ideal(stats["answeredByTarget"].values(), rate, (low + high) / 2,
                                           args.concurrency), 1),
                    "fake_cpu_s": round(stats["cpuSeconds"] - before["cpuSeconds"], 2),
                }
                result["wall_over_ideal"] = round(result["wall_s"] / max(result["ideal_s"], 0.001), 2)
                deleted = report["summary"]["imagesDeleted"]
                result["deleted"] = deleted
                result["left_as_reported"] = stats["imagesLeft"] == stats["images"] - deleted
                want = floor(os.path.join(work, "log.jsonl"))
                done = {op: requests.get(op, 0) - stats["throttled"].get(op, 0) for op in want}
                result["floor"] = want
                result["at_floor"] = done == want
                print(json.dumps(result), flush=True)
                if status != 0 or not result["left_as_reported"] or not result["at_floor"]:
                    failed.append(f"{mode} at {rate}/s")
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
