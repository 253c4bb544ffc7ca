#!/usr/bin/env python3
"""A small Kubernetes API over HTTPS for the EKS source's tests.

Usage: kube_api.py PLAN_JSON

PLAN_JSON: {"cluster": NAME, "secret": AWS_SECRET_KEY, "pageSize": N,
            "lists": {"/api/v1/pods": [ITEM, ...], ...}, "refuse": false}

On start it makes a certificate authority and a server certificate for
127.0.0.1 (with the `cryptography` package moto brings), listens on a free
loopback port, and prints one JSON line: {"port": P, "ca": BASE64_PEM}, the
CA as EKS's DescribeCluster gives it.

Every request must carry the bearer token EKS expects: "k8s-aws-v1." and
the unpadded base64url of a presigned STS GetCallerIdentity URL for the
regional STS host, valid 60 seconds, with host and x-k8s-aws-id (this
cluster) signed, whose SigV4 signature checks out with SECRET. Anything
else is answered 401, as EKS does; "refuse": true answers 403 to a good
token (no access entry).

A list path answers its items in pages of pageSize, with metadata.continue
until the last; an unknown path answers an empty list. GET /__log (no
token) answers the paths and continue tokens served, in order.
"""
import base64
import datetime
import hashlib
import hmac
import json
import ssl
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
import ipaddress

plan = json.loads(sys.argv[1])
log = []
lock = threading.Lock()


def certificates(directory):
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kubernetes")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = f"{directory}/server.pem", f"{directory}/server.key"
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path, ca.public_bytes(serialization.Encoding.PEM)


def sign(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def token_error(header):
    """Why the Authorization header is not a good EKS token, or None."""
    if not header.startswith("Bearer k8s-aws-v1."):
        return "not a k8s-aws-v1 bearer token"
    encoded = header[len("Bearer k8s-aws-v1."):]
    if "=" in encoded:
        return "the token is padded"
    url = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    one = {k: v[0] for k, v in query.items()}
    region = one.get("X-Amz-Credential", "////").split("/")[2]
    checks = [
        (parsed.scheme == "https" and parsed.netloc == f"sts.{region}.amazonaws.com", "not the regional STS host"),
        (parsed.path == "/", "not the root path"),
        (one.get("Action") == "GetCallerIdentity", "not GetCallerIdentity"),
        (one.get("Version") == "2011-06-15", "not STS's version"),
        (one.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256", "not SigV4"),
        (one.get("X-Amz-Expires") == "60", "not valid for 60 seconds"),
        (one.get("X-Amz-SignedHeaders") == "host;x-k8s-aws-id", "host and x-k8s-aws-id are not what is signed"),
    ]
    for ok, why in checks:
        if not ok:
            return why
    # The signature, computed as STS would for this cluster's header, over
    # an empty payload (as botocore, and so `aws eks get-token`, signs it).
    canonical_query = "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(one.items()) if k != "X-Amz-Signature")
    canonical = "\n".join(["GET", "/", canonical_query, f"host:{parsed.netloc}",
                           f"x-k8s-aws-id:{plan['cluster']}", "", "host;x-k8s-aws-id",
                           hashlib.sha256(b"").hexdigest()])
    date = one["X-Amz-Date"]
    scope = "/".join(one["X-Amz-Credential"].split("/")[1:])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + plan["secret"]).encode()
    for part in scope.split("/"):
        key = sign(key, part)
    if hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest() != one.get("X-Amz-Signature"):
        return "the signature does not match (another cluster's token?)"
    return None


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, doc):
        payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/__log":
            with lock:
                return self.answer(200, log)
        why = token_error(self.headers.get("Authorization", ""))
        if why:
            return self.answer(401, {"kind": "Status", "status": "Failure", "message": f"Unauthorized: {why}",
                                     "code": 401})
        if plan.get("refuse"):
            return self.answer(403, {"kind": "Status", "status": "Failure", "code": 403,
                                     "message": f"forbidden: cannot list resource at {url.path}"})
        query = urllib.parse.parse_qs(url.query)
        start = int((query.get("continue") or ["0"])[0].removeprefix("page-"))
        size = min(int((query.get("limit") or ["500"])[0]), plan.get("pageSize", 500))
        with lock:
            log.append([url.path, (query.get("continue") or [None])[0]])
        items = plan.get("lists", {}).get(url.path, [])
        metadata = {"resourceVersion": "1"}
        if start + size < len(items):
            metadata["continue"] = f"page-{start + size}"
        self.answer(200, {"kind": "List", "apiVersion": "v1", "metadata": metadata,
                          "items": items[start:start + size]})


def main():
    with tempfile.TemporaryDirectory() as directory:
        cert, key, ca = certificates(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        print(json.dumps({"port": server.server_address[1], "ca": base64.b64encode(ca).decode()}), flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
