#!/usr/bin/env python3
"""A webhook receiver (the tests and ops/demo use it): records every POST it gets, one JSON line each.

    webhook-receiver.py --port N --log FILE [--fail K] [--secret FILE]

Each line holds the delivery id, the attempt and event headers, whether the
X-Slipway-Signature matches the secret, the status answered and the body.
With --fail K, the first K attempts of every delivery id are answered 500.
"""
import argparse
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--fail", type=int, default=0)
parser.add_argument("--secret")
args = parser.parse_args()
secret = open(args.secret, "rb").read() if args.secret else None
lock = threading.Lock()
seen = {}


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        delivery = self.headers.get("X-Slipway-Delivery", "")
        with lock:
            seen[delivery] = seen.get(delivery, 0) + 1
            status = 500 if seen[delivery] <= args.fail else 204
            signature = self.headers.get("X-Slipway-Signature")
            expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest() if secret else None
            record = {"delivery": delivery, "attempt": self.headers.get("X-Slipway-Attempt"), "event": self.headers.get("X-Slipway-Event"),
                      "signature_ok": signature == expected if secret else None, "status": status, "body": json.loads(body)}
            with open(args.log, "a") as log:
                log.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Receiver).serve_forever()
