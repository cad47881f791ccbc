#!/usr/bin/env python3
"""A counting HTTP proxy in front of DynamoDB Local, used by benches/scale.py: every request is
forwarded unchanged and counted by its `X-Amz-Target` header (`DynamoDB_20120810.BatchWriteItem`
→ `BatchWriteItem`), so any binary — the one built now or an older commit's — is counted the
same way, from outside. Standard library only.

    proxy = CountingProxy("http://127.0.0.1:8000").start()
    env["DYNAMODB_ENDPOINT_URL"] = proxy.url
    proxy.reset(); ...run...; proxy.counts()   # {"BatchWriteItem": 16, ...}

Run alone (`python3 benches/dynamo_count.py UPSTREAM`), it serves until interrupted and prints
the counts every few seconds.
"""

import http.client
import socketserver
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler

HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class CountingProxy:
    def __init__(self, upstream):
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port or 80)
        self.lock = threading.Lock()
        self._counts = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                target = self.headers.get("X-Amz-Target", "?").rsplit(".", 1)[-1]
                with proxy.lock:
                    proxy._counts[target] = proxy._counts.get(target, 0) + 1
                conn = getattr(self, "up", None)
                for attempt in (1, 2):
                    try:
                        if conn is None:
                            conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                        conn.request("POST", self.path, body, headers)
                        resp = conn.getresponse()
                        data = resp.read()
                        break
                    except (OSError, http.client.HTTPException):
                        conn = None
                        if attempt == 2:
                            self.send_error(502)
                            return
                self.up = conn
                self.send_response(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()

    def reset(self):
        with self.lock:
            self._counts = {}

    def counts(self):
        with self.lock:
            return dict(self._counts)


if __name__ == "__main__":
    p = CountingProxy(sys.argv[1]).start()
    print(p.url, flush=True)
    try:
        while True:
            time.sleep(5)
            print(p.counts(), flush=True)
    except KeyboardInterrupt:
        p.stop()
