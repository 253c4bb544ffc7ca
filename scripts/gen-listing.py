#!/usr/bin/env python3
"""Writes an `aws ecr describe-images` listing of N images to stdout, shaped
like the planner benchmark's registry (benches/planner.rs): over a year, 10 %
releases (v1.x.y), 30 % feature-branch builds, 30 % commit builds, 30 %
untagged. Pretty-printed as the AWS CLI v2 prints it, with the fields ECR
returns, so `ecr-gc plan --images` reads what a user would give it.

Usage: scripts/gen-listing.py N > images.json
"""
import json
import sys
from datetime import datetime, timedelta, timezone

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
MASK = (1 << 64) - 1


def image(i, n):
    kind = i % 10
    if kind == 0:
        tags = [f"v1.{i // 1000}.{i % 1000}"]
    elif kind <= 3:
        tags = [f"feature-{i % 97}", f"sha-{i:x}"]
    elif kind <= 6:
        tags = [f"sha-{i:x}"]
    else:
        tags = []
    detail = {
        "registryId": "123456789012",
        "repositoryName": "bench/app",
        "imageDigest": f"sha256:{(i * 0x9E3779B97F4A7C15) & MASK:064x}",
    }
    if tags:
        detail["imageTags"] = tags
    pushed = START + timedelta(seconds=(i * 31_536_000) // max(n, 1))
    detail.update({
        "imageSizeInBytes": 50_000_000,
        "imagePushedAt": pushed.isoformat(),
        "imageManifestMediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactMediaType": "application/vnd.oci.image.config.v1+json",
    })
    return detail


def main():
    n = int(sys.argv[1])
    out = sys.stdout
    out.write('{\n    "imageDetails": [\n')
    for i in range(n):
        text = json.dumps(image(i, n), indent=4)
        out.write("        " + text.replace("\n", "\n        "))
        out.write(",\n" if i + 1 < n else "\n")
    out.write("    ]\n}\n")


if __name__ == "__main__":
    main()
