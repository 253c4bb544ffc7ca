#!/usr/bin/env python3
"""moto_server, plus the AWS APIs ecr-gc reads that moto does not serve.

Usage: emulator.py [-H HOST] [-p PORT]

Everything moto serves is moto's, unchanged. On top of it, App Runner (the
JSON 1.0 protocol, X-Amz-Target "AppRunner.<Operation>"), which moto lacks:
CreateService, DescribeService, ListServices (paged at MaxResults, default
20, with NextToken, as App Runner does) and DeleteService, which marks the
service DELETED and leaves it listed, as App Runner does for a while. Only
the fields ecr-gc reads are kept; the services live in memory.

Step Functions' ListStateMachineVersions, which moto lacks although it
publishes versions, is answered from moto's own in-process backend (newest
first, paged at maxResults, default 100, with nextToken).

For the tests of the EKS source, `PUT /__emulator/eks/clusters/NAME` with
{"endpoint": URL, "certificateAuthority": BASE64_PEM} makes EKS's
DescribeCluster answer that endpoint and certificate authority for the
cluster moto created (moto invents both), so that ecr-gc reaches a local
Kubernetes API.

ECR's archive storage class, which moto lacks, is layered over moto's ECR:
every image's `imageStatus` (ACTIVE unless archived), `lastRecordedPullTime`,
`lastArchivedAt` and `lastActivatedAt` are kept here and added to
DescribeImages; DescribeImages and ListImages list ACTIVE images only
unless their filter's `imageStatus` says ARCHIVED, ACTIVATING or ANY (a
DescribeImages by imageIds answers whatever the status); BatchGetImage
refuses archived images as a pull does (ImageNotFound); BatchDeleteImage
forgets what it deleted. UpdateImageStorageClass archives an ACTIVE image
(an index with the children its manifest lists, as one unit) and answers
ARCHIVED, or starts restoring an ARCHIVED one (ACTIVATING); it refuses an
image in any other state (ImageStorageClassUpdateNotSupportedException), a
missing image (ImageNotFoundException) or repository
(RepositoryNotFoundException), and a bad request
(InvalidParameterException). For the tests' seeding, `PUT
/__emulator/ecr/images` with {"registryId", "repositoryName",
"imageDigest", and any of "imageStatus", "imagePushedAt",
"lastRecordedPullTime", "lastArchivedAt", "lastActivatedAt" (epoch
seconds)} sets an image's state, as a pull, an archive or a restore would;
"imageSizeInBytes" sets the size DescribeImages gives (moto gives the
config's).

The tests, `make demo` and the benchmarks start this instead of
`moto_server`, so that ecr-gc's default in-use sources can all be read.
"""
import argparse
import io
import json
import os
import re
import threading
import time
import uuid

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

ACCOUNT = "123456789012"
lock = threading.Lock()
services = {}  # arn -> service, in creation order


def region_of(environ):
    # The SigV4 credential scope: Credential=KEY/DATE/REGION/SERVICE/aws4_request.
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        return auth.split("Credential=", 1)[1].split("/")[2]
    except IndexError:
        return "us-east-1"


def error(code, message, status=400):
    return status, {"__type": code, "Message": message}


def summary(service):
    keys = ("ServiceName", "ServiceId", "ServiceArn", "ServiceUrl", "CreatedAt", "UpdatedAt", "Status")
    return {k: service[k] for k in keys}


def create_service(body, region):
    name = body.get("ServiceName", "")
    source = body.get("SourceConfiguration") or {}
    if not name or not source:
        return error("InvalidRequestException", "ServiceName and SourceConfiguration are required")
    service_id = uuid.uuid4().hex
    arn = f"arn:aws:apprunner:{region}:{ACCOUNT}:service/{name}/{service_id}"
    now = time.time()
    service = {
        "ServiceName": name, "ServiceId": service_id, "ServiceArn": arn,
        "ServiceUrl": f"{service_id[:10]}.{region}.awsapprunner.com",
        "CreatedAt": now, "UpdatedAt": now, "Status": "RUNNING",
        "SourceConfiguration": source,
        "InstanceConfiguration": body.get("InstanceConfiguration") or {"Cpu": "1024", "Memory": "2048"},
    }
    with lock:
        if any(s["ServiceName"] == name and s["Status"] != "DELETED" for s in services.values()):
            return error("InvalidRequestException", f"Service with the provided name already exists: {name}")
        services[arn] = service
    return 200, {"Service": service, "OperationId": uuid.uuid4().hex}


def describe_service(body, _region):
    with lock:
        service = services.get(body.get("ServiceArn", ""))
    if service is None:
        return error("ResourceNotFoundException", f"Service not found: {body.get('ServiceArn')}")
    return 200, {"Service": service}


def list_services(body, _region):
    size = int(body.get("MaxResults") or 20)
    if not 1 <= size <= 20:
        return error("InvalidRequestException", "MaxResults must be between 1 and 20")
    start = int(body.get("NextToken") or 0)
    with lock:
        page = [summary(s) for s in services.values()][start:start + size]
        more = start + size < len(services)
    out = {"ServiceSummaryList": page}
    if more:
        out["NextToken"] = str(start + size)
    return 200, out


def delete_service(body, _region):
    with lock:
        service = services.get(body.get("ServiceArn", ""))
        if service is None:
            return error("ResourceNotFoundException", f"Service not found: {body.get('ServiceArn')}")
        service["Status"] = "DELETED"
    return 200, {"Service": service, "OperationId": uuid.uuid4().hex}


APP_RUNNER = {"CreateService": create_service, "DescribeService": describe_service,
              "ListServices": list_services, "DeleteService": delete_service}


eks_clusters = {}  # name -> {"endpoint": ..., "certificateAuthority": ...}


def json_answer(start_response, status, doc):
    payload = json.dumps(doc).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def with_eks_endpoints(moto_app):
    def app(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD")
        if path.startswith("/__emulator/eks/clusters/") and method == "PUT":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            with lock:
                eks_clusters[path.rsplit("/", 1)[1]] = json.loads(environ["wsgi.input"].read(length))
            return json_answer(start_response, "200 OK", {})
        named = re.fullmatch(r"/clusters/([^/]+)", path)
        with lock:
            override = eks_clusters.get(named.group(1)) if named and method == "GET" else None
        if override is None:
            return moto_app(environ, start_response)
        seen = {}
        body = b"".join(moto_app(environ, lambda status, headers, *_: seen.update(status=status)))
        if not seen["status"].startswith("200"):
            return json_answer(start_response, seen["status"], json.loads(body or b"{}"))
        doc = json.loads(body)
        doc["cluster"]["endpoint"] = override["endpoint"]
        doc["cluster"]["certificateAuthority"] = {"data": override["certificateAuthority"]}
        return json_answer(start_response, "200 OK", doc)
    return app


def list_state_machine_versions(body):
    from moto.stepfunctions.models import stepfunctions_backends
    arn = body.get("stateMachineArn", "")
    parts = arn.split(":")
    if len(parts) != 7:
        return error("ValidationException", f"Invalid Arn: '{arn}'")
    backend = stepfunctions_backends[parts[4]][parts[3]]
    machine = next((m for m in backend.state_machines if m.arn == arn), None)
    if machine is None:
        return error("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{arn}'")
    size = int(body.get("maxResults") or 100)
    start = int(body.get("nextToken") or 0)
    versions = [{"stateMachineVersionArn": v.arn, "creationDate": time.time()}
                for _, v in sorted(machine.versions.items(), reverse=True)]
    out = {"stateMachineVersions": versions[start:start + size]}
    if start + size < len(versions):
        out["nextToken"] = str(start + size)
    return 200, out


def with_state_machine_versions(moto_app):
    def app(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "") != "AWSStepFunctions.ListStateMachineVersions":
            return moto_app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        status, out = list_state_machine_versions(json.loads(environ["wsgi.input"].read(length) or b"{}"))
        payload = json.dumps(out).encode()
        start_response("200 OK" if status == 200 else "400 Bad Request",
                       [("Content-Type", "application/x-amz-json-1.0"), ("Content-Length", str(len(payload)))])
        return [payload]
    return app


def with_app_runner(moto_app):
    def app(environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith("AppRunner."):
            return moto_app(environ, start_response)
        handler = APP_RUNNER.get(target.split(".", 1)[1])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        if handler is None:
            status, out = error("UnknownOperationException", f"{target} is not served here")
        elif not isinstance(body, dict):
            status, out = error("SerializationException", "the body is not a JSON object")
        else:
            status, out = handler(body, region_of(environ))
        payload = json.dumps(out).encode()
        reason = "OK" if status == 200 else "Bad Request"
        start_response(f"{status} {reason}", [("Content-Type", "application/x-amz-json-1.0"),
                                              ("Content-Length", str(len(payload)))])
        return [payload]
    return app


ECR_TARGET = "AmazonEC2ContainerRegistry_V20150921."
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
ecr_images = {}  # (registryId, region, repositoryName, digest) -> state fields


def moto_json(moto_app, environ, operation, body):
    """One ECR call to moto in-process, with the caller's credentials."""
    payload = json.dumps(body).encode()
    sub = dict(environ)
    sub["HTTP_X_AMZ_TARGET"] = ECR_TARGET + operation
    sub["CONTENT_LENGTH"] = str(len(payload))
    sub["wsgi.input"] = io.BytesIO(payload)
    seen = {}
    raw = b"".join(moto_app(sub, lambda status, headers, *_: seen.update(status=status)))
    return int(seen["status"].split()[0]), json.loads(raw or b"{}")


def ecr_key(body, region, digest):
    return (body.get("registryId") or ACCOUNT, region, body.get("repositoryName", ""), digest)


def state_of(body, region, digest):
    with lock:
        return dict(ecr_images.get(ecr_key(body, region, digest), {}))


def status_of(body, region, digest):
    return state_of(body, region, digest).get("imageStatus", "ACTIVE")


def wanted_status(body):
    """The statuses a listing's filter asks for: ACTIVE unless it says."""
    wanted = (body.get("filter") or {}).pop("imageStatus", "ACTIVE")
    return None if wanted == "ANY" else wanted


def describe_images(moto_app, environ, body, region):
    wanted = None if body.get("imageIds") else wanted_status(body)
    status, doc = moto_json(moto_app, environ, "DescribeImages", body)
    if status != 200:
        return status, doc
    details = []
    for detail in doc.get("imageDetails", []):
        detail.update(state_of(body, region, detail["imageDigest"]))
        detail.setdefault("imageStatus", "ACTIVE")
        if wanted is None or detail["imageStatus"] == wanted:
            details.append(detail)
    doc["imageDetails"] = details
    return status, doc


def list_images(moto_app, environ, body, region):
    wanted = wanted_status(body)
    status, doc = moto_json(moto_app, environ, "ListImages", body)
    if status == 200 and wanted is not None:
        doc["imageIds"] = [i for i in doc.get("imageIds", [])
                           if status_of(body, region, i.get("imageDigest")) == wanted]
    return status, doc


def batch_get_image(moto_app, environ, body, region):
    ids = body.get("imageIds", [])
    stored = [i for i in ids if status_of(body, region, i.get("imageDigest")) != "ACTIVE"]
    body["imageIds"] = [i for i in ids if i not in stored]
    status, doc = (200, {"images": [], "failures": []}) if not body["imageIds"] else \
        moto_json(moto_app, environ, "BatchGetImage", body)
    if status == 200:
        doc.setdefault("failures", []).extend(
            {"imageId": i, "failureCode": "ImageNotFound",
             "failureReason": "The image is archived and cannot be pulled"} for i in stored)
    return status, doc


def batch_delete_image(moto_app, environ, body, region):
    status, doc = moto_json(moto_app, environ, "BatchDeleteImage", body)
    if status == 200:
        failed = {f.get("imageId", {}).get("imageDigest") for f in doc.get("failures", [])}
        with lock:
            for image_id in body.get("imageIds", []):
                if image_id.get("imageDigest") not in failed:
                    ecr_images.pop(ecr_key(body, region, image_id.get("imageDigest")), None)
    return status, doc


def update_image_storage_class(moto_app, environ, body, region):
    image_id = body.get("imageId") or {}
    target = body.get("targetStorageClass")
    if target not in ("ARCHIVE", "STANDARD") or not body.get("repositoryName") or not image_id:
        return error("InvalidParameterException",
                     "repositoryName, imageId and targetStorageClass (ARCHIVE or STANDARD) are required")
    status, doc = moto_json(moto_app, environ, "DescribeImages",
                            {k: body[k] for k in ("registryId", "repositoryName") if k in body} | {"imageIds": [image_id]})
    if status != 200:
        return status, doc
    detail = doc["imageDetails"][0]
    digest = detail["imageDigest"]
    current = status_of(body, region, digest)
    now = time.time()
    if target == "ARCHIVE" and current == "ACTIVE":
        unit = [digest] + children_of(moto_app, environ, body, detail)
        with lock:
            for member in unit:
                state = ecr_images.setdefault(ecr_key(body, region, member), {})
                state.update(imageStatus="ARCHIVED", lastArchivedAt=now)
        new = "ARCHIVED"
    elif target == "STANDARD" and current == "ARCHIVED":
        with lock:
            ecr_images[ecr_key(body, region, digest)]["imageStatus"] = "ACTIVATING"
        new = "ACTIVATING"
    else:
        return error("ImageStorageClassUpdateNotSupportedException",
                     f"cannot move an image that is {current} to {target}")
    return 200, {"registryId": body.get("registryId") or ACCOUNT, "repositoryName": body["repositoryName"],
                 "imageId": {"imageDigest": digest}, "imageStatus": new}


def children_of(moto_app, environ, body, detail):
    """The digests an index lists, present in the repository."""
    if detail.get("imageManifestMediaType") not in INDEX_TYPES:
        return []
    request = {k: body[k] for k in ("registryId", "repositoryName") if k in body}
    status, doc = moto_json(moto_app, environ, "BatchGetImage",
                            request | {"imageIds": [{"imageDigest": detail["imageDigest"]}]})
    if status != 200 or not doc.get("images"):
        return []
    manifest = json.loads(doc["images"][0]["imageManifest"])
    return [m["digest"] for m in manifest.get("manifests", [])]


ECR_ARCHIVE = {"DescribeImages": describe_images, "ListImages": list_images, "BatchGetImage": batch_get_image,
               "BatchDeleteImage": batch_delete_image, "UpdateImageStorageClass": update_image_storage_class}
ECR_TIMES = ("imagePushedAt", "lastRecordedPullTime", "lastArchivedAt", "lastActivatedAt")


def seed_ecr_image(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    doc = json.loads(environ["wsgi.input"].read(length) or b"{}")
    fields = {k: doc[k] for k in ("imageStatus", "imageSizeInBytes", *ECR_TIMES) if k in doc}
    with lock:
        ecr_images.setdefault(ecr_key(doc, doc.get("region") or "us-east-1", doc["imageDigest"]), {}).update(fields)
    return {}


def with_ecr_archive(moto_app):
    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/__emulator/ecr/images" and environ.get("REQUEST_METHOD") == "PUT":
            return json_answer(start_response, "200 OK", seed_ecr_image(environ))
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        handler = ECR_ARCHIVE.get(target[len(ECR_TARGET):]) if target.startswith(ECR_TARGET) else None
        if handler is None:
            return moto_app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        status, out = handler(moto_app, environ, body, region_of(environ))
        payload = json.dumps(out).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))]
        if status != 200:
            headers.append(("x-amzn-ErrorType", out.get("__type", "")))
        start_response(f"{status} {'OK' if status == 200 else 'Bad Request'}", headers)
        return [payload]
    return app


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    moto_app = DomainDispatcherApplication(create_backend_app)
    app = with_ecr_archive(with_eks_endpoints(with_app_runner(with_state_machine_versions(moto_app))))
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
