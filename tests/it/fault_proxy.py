#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the tests and benchmarks: forwards to
moto_server and, per AWS operation (the X-Amz-Target header's last part, or
a query-protocol body's Action), injects faults.

Usage: fault_proxy.py LISTEN_PORT UPSTREAM_URL PLAN_JSON

PLAN_JSON maps an operation (or "*") to a list of faults, used in order,
one per request, then passes through; a fault is one of
  "throttle"  400 ThrottlingException (as ECR sends it)
  "500"       500 ServerException
  "reset"     close the connection without an answer
  "slow:MS"   answer after MS milliseconds
  "denied"    AccessDenied (XML for query-protocol services such as STS)
  "throttle*" (any fault with *) that fault on every request, forever
A key "Operation@text" applies only to requests whose body contains text. EKS's
and App Runner's operations are prefixed ("eks:ListClusters",
"apprunner:ListServices"), apart from ECS's of the same names.

The key "ecr": true makes the proxy behave like ECR where moto_server does
not: it pages DescribeRepositories, DescribeImages (without imageIds) and
ListImages at maxResults (default 100) with nextToken, and BatchDeleteImage
lists every image it deleted (moto leaves out untagged ones).

The key "refuseDelete" ({"DIGEST": "CODE"}) makes BatchDeleteImage refuse those
images, as ECR refuses one image of a call: they are not forwarded to moto,
and the answer lists each under `failures` with that failureCode.

The key "age" ({"GetParameter": SECONDS, "GetObject": SECONDS}) makes an SSM
parameter's LastModifiedDate, or an S3 object's Last-Modified, that many
seconds older than moto says: an external in-use list whose publisher died.
The key "bucketOwners" ({"BUCKET": "ACCOUNT"}) makes S3 answer 403
AccessDenied, as S3 does, to a request whose x-amz-expected-bucket-owner
names any other account (moto ignores the header).

GET /__counts answers the requests seen, by operation, as JSON; an ECR
request without registryId is also counted under "<operation>:noRegistryId",
and a BatchDeleteImage naming any image by tag under
"BatchDeleteImage:imageTag".
Each served fault is printed on stdout, one JSON line.
"""
import email.utils
import datetime
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, upstream, plan = int(sys.argv[1]), urllib.parse.urlparse(sys.argv[2]), json.loads(sys.argv[3])
paging = bool(plan.pop("ecr", False))
ages = plan.pop("age", {})
refuse_delete = plan.pop("refuseDelete", {})
bucket_owners = plan.pop("bucketOwners", {})
lock = threading.Lock()
counts = {}
# Operations of REST-JSON services, whose errors are JSON like the JSON protocol's.
BATCH = {"/v1/describejobdefinitions": "DescribeJobDefinitions", "/v1/describejobqueues": "DescribeJobQueues",
         "/v1/listjobs": "ListJobs", "/v1/describejobs": "DescribeJobs"}
REST_JSON = ("ListFunctions", "GetFunction", "ListSchedules", "GetSchedule", "eks:ListClusters", "eks:DescribeCluster",
             *BATCH.values())
PAGED = {"DescribeRepositories": "repositories", "DescribeImages": "imageDetails", "ListImages": "imageIds"}


def count(key):
    with lock:
        counts[key] = counts.get(key, 0) + 1


def next_fault(operation, body):
    count(operation)
    with lock:
        keys = [k for k in plan if "@" in k and k.split("@", 1)[0] == operation and k.split("@", 1)[1] in body]
        for key in keys + [operation, "*"]:
            faults = plan.get(key)
            if faults:
                if faults[0].endswith("*"):
                    return faults[0][:-1]
                return faults.pop(0)
    return None


def operation_of(method, path, headers, body):
    target = headers.get("X-Amz-Target")
    if target and target.startswith("AppRunner."):
        return "apprunner:" + target.rsplit(".", 1)[-1]  # apart from ECS's ListServices
    if target:
        return target.rsplit(".", 1)[-1]
    form = urllib.parse.parse_qs(body)
    action = (form.get("Action") or [""])[0]
    if not action and path.startswith("/2015-03-31/functions"):
        # Lambda's REST API: /2015-03-31/functions/ lists, .../NAME gets.
        return "ListFunctions" if path.split("?")[0].rstrip("/").endswith("/functions") else "GetFunction"
    if not action and path.split("?")[0] in BATCH:
        return BATCH[path.split("?")[0]]
    if not action and path.startswith("/schedules"):
        # EventBridge Scheduler's REST API: /schedules lists, /schedules/NAME gets.
        return "ListSchedules" if path.split("?")[0].rstrip("/") == "/schedules" else "GetSchedule"
    # EKS's REST API, prefixed apart from ECS's ListClusters.
    if not action and path.split("?")[0] == "/clusters":
        return "eks:ListClusters"
    if not action and path.startswith("/clusters/") and path.split("?")[0].count("/") == 2:
        return "eks:DescribeCluster"
    if not action and method == "GET" and path.count("/") >= 2:
        return "GetObject"  # path-style S3: /bucket/key
    return action


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, content_type, payload, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def handle_any(self):
        if self.command == "GET" and self.path == "/__counts":
            with lock:
                payload = json.dumps(counts).encode()
            return self.answer(200, "application/json", payload)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        text = urllib.parse.unquote_plus(body.decode("utf-8", "replace"))
        operation = operation_of(self.command, self.path, self.headers, body.decode("utf-8", "replace"))
        if operation == "GetObject":
            bucket = self.path.split("/")[1]
            expected = self.headers.get("x-amz-expected-bucket-owner")
            owner = bucket_owners.get(bucket)
            if owner and expected and expected != owner:
                count(operation)
                payload = (
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AccessDenied</Code>"
                    "<Message>Access Denied</Message><RequestId>0</RequestId></Error>"
                ).encode()
                return self.answer(403, "application/xml", payload)
        fault = next_fault(operation, text)
        if fault:
            print(json.dumps({"operation": operation, "fault": fault}), flush=True)
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return
        if fault == "denied":
            if self.headers.get("X-Amz-Target") or operation in REST_JSON:
                payload = json.dumps({"__type": "AccessDeniedException", "message": "denied by the test"}).encode()
                return self.answer(400, "application/x-amz-json-1.1", payload, [("x-amzn-ErrorType", "AccessDeniedException")])
            payload = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                "<Message>User is not authorized to perform: sts:AssumeRole (denied by the test)</Message>"
                "</Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            ).encode()
            return self.answer(403, "text/xml", payload)
        if fault in ("throttle", "500"):
            status, kind, message = (
                (400, "ThrottlingException", "Rate exceeded") if fault == "throttle"
                else (500, "ServerException", "We encountered an internal error. Please try again.")
            )
            payload = json.dumps({"__type": kind, "message": message}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("x-amzn-ErrorType", kind)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if fault and fault.startswith("slow:"):
            time.sleep(int(fault[5:]) / 1000)
        target = self.headers.get("X-Amz-Target") or ""
        if target.startswith("AmazonEC2ContainerRegistry") and "registryId" not in json.loads(body or b"{}"):
            count(operation + ":noRegistryId")
        if operation == "BatchDeleteImage" and any("imageTag" in i for i in json.loads(body or b"{}").get("imageIds", [])):
            count(operation + ":imageTag")
        page = None
        if paging and operation in PAGED:
            request = json.loads(body or b"{}")
            if not (operation == "DescribeImages" and request.get("imageIds")):
                size = int(request.pop("maxResults", 100))
                offset = int(str(request.pop("nextToken", "p:0")).split(":", 1)[1])
                page = (PAGED[operation], size, offset)
                body = json.dumps(request).encode()
        refused = []
        if operation == "BatchDeleteImage" and refuse_delete:
            request = json.loads(body or b"{}")
            kept = []
            for image_id in request.get("imageIds", []):
                if image_id.get("imageDigest") in refuse_delete:
                    refused.append(image_id)
                else:
                    kept.append(image_id)
            request["imageIds"] = kept
            body = json.dumps(request).encode()
            if refused and not kept:
                answer = {"imageIds": [], "failures": [{
                    "imageId": i, "failureCode": refuse_delete[i["imageDigest"]],
                    "failureReason": "refused by the test proxy (%s)" % refuse_delete[i["imageDigest"]]}
                    for i in refused]}
                return self.answer(200, "application/x-amz-json-1.1", json.dumps(answer).encode())
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=300)
        # The body may have changed, and the signature with it: moto does
        # not check signatures.
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
        headers["Content-Length"] = str(len(body))
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if page and response.status == 200:
            field, size, offset = page
            answer = json.loads(data)
            items = answer.get(field, [])
            answer[field] = items[offset:offset + size]
            answer.pop("nextToken", None)
            if offset + size < len(items):
                answer["nextToken"] = "p:%d" % (offset + size)
            data = json.dumps(answer).encode()
        if refused and response.status == 200:
            answer = json.loads(data)
            for image_id in refused:
                code = refuse_delete[image_id["imageDigest"]]
                answer.setdefault("failures", []).append({
                    "imageId": image_id, "failureCode": code,
                    "failureReason": "refused by the test proxy (%s)" % code})
            data = json.dumps(answer).encode()
        if paging and operation == "BatchDeleteImage" and response.status == 200:
            requested = json.loads(body).get("imageIds", [])
            answer = json.loads(data)
            listed = {i.get("imageDigest") for i in answer.get("imageIds", [])}
            failed = {f.get("imageId", {}).get("imageDigest") for f in answer.get("failures", [])}
            for image_id in requested:
                digest = image_id.get("imageDigest")
                if digest and digest not in listed and digest not in failed:
                    answer.setdefault("imageIds", []).append({"imageDigest": digest})
            data = json.dumps(answer).encode()
        if operation == "GetParameter" and operation in ages and response.status == 200:
            answer = json.loads(data)
            answer["Parameter"]["LastModifiedDate"] -= ages[operation]
            data = json.dumps(answer).encode()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() == "last-modified" and operation in ages:
                when = email.utils.parsedate_to_datetime(v) - datetime.timedelta(seconds=ages[operation])
                v = email.utils.format_datetime(when, usegmt=True)
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


ThreadingHTTPServer(("127.0.0.1", port), Proxy).serve_forever()
