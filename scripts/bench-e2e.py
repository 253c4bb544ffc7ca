#!/usr/bin/env python3
"""End-to-end benchmark: ecr-gc's CLI against moto_server, through the
test proxy in its ECR mode (pages like ECR at maxResults, lists untagged
deletes like ECR, counts every request on the wire).

For each registry shape it seeds a fresh moto_server, runs
`ecr-gc run --apply --output json` once, and reports:
  * wall time, CPU time (user + system) and peak RSS of the ecr-gc process
    (GNU time's; moto and the proxy are not counted);
  * ECR API calls by operation, as ecr-gc counted them and as the proxy saw
    them, next to the floor computed from the shape;
  * whether the registry, listed repository by repository afterwards,
    holds exactly what the report kept.
It exits non-zero when the registry, the deletions or the calls do not
match: a benchmark that checks its own claims.

Usage: scripts/bench-e2e.py [--binary PATH] [SHAPE ...]
Shapes: huge (10,000 images in one repository), many (500 repositories of
20), multiarch (20 repositories of 50 two-platform indexes), peer (awslabs/
ecr-cleanup-lambda's shape: 3,000 untagged and 1,000 tagged images in one),
peer-exact (the same on a shared base layer, with settings.exactReclaim).
"""
import argparse
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port}")


def digest(text):
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def image_manifest(seed, base=None):
    """One config and one layer of its own; with `base`, on a shared base
    layer of 50 MB first."""
    layer = lambda d, n: {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": n, "digest": d}
    layers = ([layer(digest("base-" + base), 50_000_000)] if base else []) + [layer(digest("layer-" + seed), 1_000_000)]
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 1000,
                   "digest": digest("config-" + seed)},
        "layers": layers,
    })


def ecr_client(endpoint):
    return boto3.client("ecr", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(max_pool_connections=16, retries={"max_attempts": 10}))


def put(ecr, repo, manifest, tag=None, media_type=None, with_digest=False):
    args = {"repositoryName": repo, "imageManifest": manifest}
    if tag:
        args["imageTag"] = tag
    if media_type:
        args["imageManifestMediaType"] = media_type
    if with_digest:
        args["imageDigest"] = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    return ecr.put_image(**args)["image"]["imageId"]["imageDigest"]


def keep_newest(count, tag_status, prefixes=None):
    selection = {"tagStatus": tag_status, "countType": "imageCountMoreThan", "countNumber": count}
    if prefixes:
        selection["tagPrefixList"] = prefixes
    return {
        "rules": [{"rulePriority": 1, "selection": selection, "action": {"type": "expire"}}],
        "settings": {"gracePeriodMinutes": 0},
    }


# Each shape: (description, seed function, policy, floor function).
# The floor: DescribeRepositories pages (1000 per page) + one DescribeImages
# page per 1,000 images per repository + the compare-and-delete re-read
# (`reread`) + one BatchDeleteImage per 100 deletions; multi-arch
# repositories add one BatchGetImage per 100 indexes (reading the children),
# and an index's children go in a later call than the index, so the delete
# calls are counted per kind.


def reread(images, planned):
    """The compare-and-delete re-read of one repository: by id (100 per
    DescribeImages) or the listing again (1,000 per page), whichever is
    fewer calls."""
    return min(math.ceil(images / 1000), math.ceil(planned / 100))

def seed_huge(ecr):
    ecr.create_repository(repositoryName="huge/app")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: put(ecr, "huge/app", image_manifest(f"huge-{i}")), range(10_000)))


def floor_huge():
    deletions = 9_000
    return {"DescribeRepositories": 1, "DescribeImages": 10 + reread(10_000, deletions),
            "ListImages": 0, "BatchGetImage": 0, "BatchDeleteImage": math.ceil(deletions / 100)}


def seed_many(ecr):
    def one(r):
        repo = f"svc/{r:03d}"
        ecr.create_repository(repositoryName=repo)
        for i in range(20):
            put(ecr, repo, image_manifest(f"{repo}-{i}"), tag=f"v{i}")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(500)))


def floor_many():
    deleting = 500
    return {"DescribeRepositories": 1, "DescribeImages": 500 + deleting * reread(20, 15), "ListImages": 0,
            "BatchGetImage": 0, "BatchDeleteImage": deleting}


def seed_multiarch(ecr):
    def one(r):
        repo = f"multi/{r:02d}"
        ecr.create_repository(repositoryName=repo)
        for i in range(50):
            children = [put(ecr, repo, image_manifest(f"{repo}-{i}-{arch}")) for arch in ("amd64", "arm64")]
            index = json.dumps({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
                               "size": 1000, "platform": {"architecture": a, "os": "linux"}}
                              for d, a in zip(children, ("amd64", "arm64"))],
            })
            put(ecr, repo, index, tag=f"build-{i}", media_type="application/vnd.oci.image.index.v1+json",
                with_digest=True)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(20)))


def floor_multiarch():
    repos, indexes_deleted, children_deleted = 20, 40, 80
    return {"DescribeRepositories": 1,
            "DescribeImages": repos * (1 + reread(150, indexes_deleted + children_deleted)),
            "ListImages": 0, "BatchGetImage": repos,
            "BatchDeleteImage": repos * (math.ceil(indexes_deleted / 100) + math.ceil(children_deleted / 100))}


def seed_peer(ecr, base=None):
    ecr.create_repository(repositoryName="peer/app")
    def one(i):
        put(ecr, "peer/app", image_manifest(f"peer-{i}", base), tag=f"v{i}" if i % 4 == 0 else None)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(4_000)))


# awslabs/ecr-cleanup-lambda's job, side by side (issue 15): 3,000 untagged
# and 1,000 tagged images; keep the newest 100 tagged, delete the untagged
# (all but the newest, since ECR's count rules keep at least one).
PEER_POLICY = {
    "rules": [
        {"rulePriority": 1, "action": {"type": "expire"},
         "selection": {"tagStatus": "tagged", "tagPatternList": ["*"],
                       "countType": "imageCountMoreThan", "countNumber": 100}},
        {"rulePriority": 2, "action": {"type": "expire"},
         "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1}},
    ],
    "settings": {"gracePeriodMinutes": 0},
}


def floor_peer():
    deletions = 900 + 2_999
    return {"DescribeRepositories": 1, "DescribeImages": 4 + reread(4_000, deletions),
            "ListImages": 0, "BatchGetImage": 0, "BatchDeleteImage": math.ceil(deletions / 100)}


def floor_peer_exact():
    """The peer's floor and the manifests: one BatchGetImage per 100 images."""
    return dict(floor_peer(), BatchGetImage=math.ceil(4_000 / 100))


# With settings.exactReclaim, every image of the peer's shape on one shared
# 50 MB base layer: the base stays (kept images use it), so what deleting
# frees is each deleted image's own layer and config.
PEER_EXACT_POLICY = dict(PEER_POLICY, settings=dict(PEER_POLICY["settings"], exactReclaim=True))
PEER_EXACT_BYTES = 3_899 * 1_001_000


SHAPES = {
    "huge": ("10,000 images in one repository; keep the newest 1,000", seed_huge,
             keep_newest(1000, "untagged"), floor_huge, 9_000),
    "many": ("500 repositories of 20 tagged images; keep the newest 5", seed_many,
             keep_newest(5, "tagged", ["v"]), floor_many, 7_500),
    "multiarch": ("20 repositories of 50 two-platform indexes (150 images each); keep the newest 10",
                  seed_multiarch, keep_newest(10, "tagged", ["build-"]), floor_multiarch, 2_400),
    "peer": ("one repository of 3,000 untagged and 1,000 tagged images; keep the newest 100 tagged, "
             "delete the untagged", seed_peer, PEER_POLICY, floor_peer, 3_899),
    "peer-exact": ("the peer's shape on one shared base layer, with settings.exactReclaim",
                   lambda ecr: seed_peer(ecr, base="peer"), PEER_EXACT_POLICY, floor_peer_exact, 3_899),
}


def run_shape(name, binary, moto_port):
    description, seed, policy, floor, deletions = SHAPES[name]
    moto = f"http://127.0.0.1:{moto_port}"
    urllib.request.urlopen(urllib.request.Request(moto + "/moto-api/reset", method="POST")).read()
    started = time.time()
    seed(ecr_client(moto))
    seeded = time.time() - started
    proxy_port = free_port()
    proxy = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests/it/fault_proxy.py"), str(proxy_port), moto,
                              json.dumps({"ecr": True})], stdout=subprocess.DEVNULL)
    try:
        wait_for(proxy_port)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(policy, f)
        env = dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{proxy_port}", AWS_ACCESS_KEY_ID="testing",
                   AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
        out = tempfile.TemporaryFile()
        # GNU time measures the process: a child forked straight from this
        # Python process would report Python's resident memory as its own
        # peak (Linux carries the high-water mark across fork and exec).
        measured = tempfile.NamedTemporaryFile("r", suffix=".time")
        child = subprocess.Popen(["/usr/bin/time", "-o", measured.name, "-f", "%e %U %S %M", binary, "run",
                                  "--policy", f.name, "--apply", "--output", "json"],
                                 env=env, stdout=out, stderr=subprocess.DEVNULL)
        status = child.wait()
        wall, user, system, max_kib = measured.read().split()[-4:]
        out.seek(0)
        report = json.load(out)
        counts = json.load(urllib.request.urlopen(f"http://127.0.0.1:{proxy_port}/__counts"))
    finally:
        proxy.kill()
    # The registry afterwards, listed repository by repository: it must hold
    # exactly what the report says it kept, nothing the report deleted, and
    # every planned image must be gone.
    ecr = ecr_client(moto)
    mismatches = []
    for repo in report["targets"][0]["repositories"]:
        repository = repo["repositoryName"]
        remaining = set()
        for page in ecr.get_paginator("list_images").paginate(repositoryName=repository):
            remaining.update(i["imageDigest"] for i in page["imageIds"])
        planned = {p["imageDigest"] for p in repo["planned"]}
        deleted = {p["imageDigest"] for p in repo["deleted"]}
        if deleted != planned or remaining & deleted or len(remaining) != repo["imagesScanned"] - len(deleted):
            mismatches.append(repository)
    exact = report["summary"].get("exactReclaim")
    if policy["settings"].get("exactReclaim") and (exact or {}).get("bytesReclaimed") != PEER_EXACT_BYTES:
        mismatches.append(f"exactReclaim {exact}, expected {PEER_EXACT_BYTES} bytes")
    ours = report["apiCalls"]
    want = floor()
    wire = {op: counts.get(op, 0) for op in want}
    return {
        "shape": name, "description": description, "seed_s": round(seeded, 1),
        "exit": status,
        "wall_s": float(wall), "cpu_s": round(float(user) + float(system), 2),
        "peak_rss_mib": round(int(max_kib) / 1024, 1),
        "images": report["summary"]["imagesScanned"], "deleted": report["summary"]["imagesDeleted"],
        "exact_reclaim": exact,
        "expected_deleted": deletions,
        "calls": {op: ours.get(op, 0) for op in want}, "wire": wire, "floor": want,
        "at_floor": all(ours.get(op, 0) == want[op] == wire[op] for op in want),
        "registry_matches_report": not mismatches, "mismatched_repositories": mismatches[:10],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "target/release/ecr-gc"))
    parser.add_argument("shapes", nargs="*", default=list(SHAPES))
    args = parser.parse_args()
    moto_port = free_port()
    moto = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "emulator.py"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(moto_port)
        failed = []
        for name in args.shapes:
            result = run_shape(name, args.binary, moto_port)
            print(json.dumps(result), flush=True)
            if not (result["registry_matches_report"] and result["at_floor"]
                    and result["deleted"] == result["expected_deleted"] and result["exit"] == 0):
                failed.append(name)
    finally:
        moto.kill()
    if failed:
        raise SystemExit(f"the registry or the API calls do not match the report: {', '.join(failed)}")


if __name__ == "__main__":
    main()
