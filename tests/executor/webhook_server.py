"""A real HTTP server on 127.0.0.1 that plays a webhook receiver and records what reached it."""
from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class WebhookServer:
    """`respond(n_for_this_key) -> (status, delay_s)` decides each answer; default 200 at once.
    `reply(request, status) -> bytes`, when given, makes the response body (e.g. a signed ack)."""

    def __init__(self, respond=None, reply=None):
        self.respond = respond or (lambda n: (200, 0.0))
        self.reply = reply
        self.requests: list[dict] = []
        self.keys: Counter = Counter()
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key")
                with outer._lock:
                    outer.keys[key] += 1
                    n = outer.keys[key]
                    request = {"key": key, "headers": dict(self.headers), "body": body}
                    outer.requests.append(request)
                status, delay = outer.respond(n)
                if delay:
                    time.sleep(delay)
                reply = b'{"ok":true}' if status < 300 else b'{"ok":false}'
                if outer.reply is not None:
                    reply = outer.reply(request, status)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (timeout) or was killed

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
