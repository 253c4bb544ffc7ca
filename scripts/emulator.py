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

The tests, `make demo` and the benchmarks start this instead of
`moto_server`, so that ecr-gc's default in-use sources can all be read.
"""
import argparse
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


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    moto_app = DomainDispatcherApplication(create_backend_app)
    app = with_eks_endpoints(with_app_runner(with_state_machine_versions(moto_app)))
    run_simple(args.host, args.port, app, threaded=True)


if __name__ == "__main__":
    main()
