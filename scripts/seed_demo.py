#!/usr/bin/env python3
"""Seed a local ECR emulator (moto_server) with the demo repositories.

demo/web and demo/worker each get six release images (v1.0 .. v1.5) and
three untagged images left behind by re-pushed tags; demo/keep-base gets
the same but is excluded by examples/policy.json's settings.
"""
import hashlib
import json
import sys
import time

import boto3


def manifest(seed: str) -> str:
    digest = lambda s: "sha256:" + hashlib.sha256(s.encode()).hexdigest()
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": 25_000_000, "digest": digest("config-" + seed)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": 25_000_000, "digest": digest("layer-" + seed)}],
    })


def main(endpoint: str) -> None:
    ecr = boto3.client("ecr", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    repos = ["demo/web", "demo/worker", "demo/keep-base"]
    for repo in repos:
        ecr.create_repository(repositoryName=repo)
    # The emulator stamps imagePushedAt in whole seconds: a second between
    # releases keeps "newest" meaningful (equal times fall back to digest).
    for i in range(6):
        for repo in repos:
            ecr.put_image(repositoryName=repo, imageManifest=manifest(f"{repo}-v1.{i}"), imageTag=f"v1.{i}")
        time.sleep(1.05)
    for repo in repos:
        for i in range(3):
            ecr.put_image(repositoryName=repo, imageManifest=manifest(f"{repo}-dev-{i}"))
        count = len(ecr.describe_images(repositoryName=repo)["imageDetails"])
        print(f"seeded {repo}: {count} images (6 releases, 3 untagged)")


if __name__ == "__main__":
    main(sys.argv[1])
