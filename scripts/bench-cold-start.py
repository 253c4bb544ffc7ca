#!/usr/bin/env python3
"""Cold-start benchmark: from process start (just before exec) to the
function's first Runtime API poll (GET /2018-06-01/runtime/invocation/next),
against a local stand-in for the Lambda Runtime API.

In that time the binary parses its configuration (the policy and targets),
loads the AWS SDK configuration, builds every client, and starts the
runtime loop: everything a cold start does before it can take an event.

Usage: scripts/bench-cold-start.py [--binary PATH] [--runs N]
"""
import argparse
import json
import os
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
first_poll = {}
polled = threading.Event()


class RuntimeApi(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next") and not polled.is_set():
            first_poll["at"] = time.perf_counter()
            polled.set()
        # Never answer: the measurement ends at the poll.
        time.sleep(5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/ecr-gc"))
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    policy = open(os.path.join(ROOT, "examples/policy.json")).read()
    targets = json.dumps({"regions": ["eu-west-1", "us-east-1"], "accounts": [
        {"accountId": "111122223333", "roleArn": "arn:aws:iam::111122223333:role/ecr-gc", "externalId": "x1"},
        {"accountId": "444455556666", "roleArn": "arn:aws:iam::444455556666:role/ecr-gc"}]})
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME="ecr-gc", AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
               AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/ecr-gc",
               AWS_LAMBDA_LOG_STREAM_NAME="x", AWS_REGION="eu-west-1", AWS_DEFAULT_REGION="eu-west-1",
               AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret", AWS_SESSION_TOKEN="token",
               ECR_GC_POLICY=policy, ECR_GC_TARGETS=targets,
               ECR_GC_FANOUT_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/111122223333/ecr-gc",
               RUST_LOG="info")
    samples = []
    for _ in range(args.runs):
        polled.clear()
        start = time.perf_counter()
        child = subprocess.Popen([args.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not polled.wait(10):
            child.kill()
            raise SystemExit("the binary never polled the Runtime API")
        samples.append((first_poll["at"] - start) * 1000)
        child.kill()
        child.wait()
    samples.sort()
    print(json.dumps({
        "runs": len(samples),
        "min_ms": round(samples[0], 2),
        "median_ms": round(statistics.median(samples), 2),
        "p90_ms": round(samples[int(len(samples) * 0.9) - 1], 2),
        "max_ms": round(samples[-1], 2),
        "binary_bytes": os.path.getsize(args.binary),
    }))


if __name__ == "__main__":
    main()
