#!/usr/bin/env python3
"""A fault-injecting HTTP proxy for the tests: forwards to moto_server and,
per AWS operation (the X-Amz-Target header's last part), injects faults.

Usage: fault_proxy.py LISTEN_PORT UPSTREAM_URL PLAN_JSON

PLAN_JSON maps an operation (or "*") to a list of faults, used in order,
one per request, then passes through; a fault is one of
  "throttle"  400 ThrottlingException (as ECR sends it)
  "500"       500 ServerException
  "reset"     close the connection without an answer
  "slow:MS"   answer after MS milliseconds
  "throttle*" throttle every request, forever
Each served fault is printed on stdout, one JSON line.
"""
import http.client
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, upstream, plan = int(sys.argv[1]), urllib.parse.urlparse(sys.argv[2]), json.loads(sys.argv[3])
lock = threading.Lock()


def next_fault(operation):
    with lock:
        for key in (operation, "*"):
            faults = plan.get(key)
            if faults:
                if faults[0].endswith("*"):
                    return faults[0][:-1]
                return faults.pop(0)
    return None


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
        fault = next_fault(operation)
        if fault:
            print(json.dumps({"operation": operation, "fault": fault}), flush=True)
        if fault == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return
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
        conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        self.send_response(response.status)
        for k, v in response.getheaders():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        conn.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


ThreadingHTTPServer(("127.0.0.1", port), Proxy).serve_forever()
