"""The HTTP operations surface of every worker: Prometheus /metrics, /healthz, /readyz.

HTTP binds 127.0.0.1 unless GATEWATCH_HTTP_HOST says otherwise.
"""
from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest


class OpsServer:
    """Serves /metrics (Prometheus text), /healthz (process alive) and /readyz (ready())."""

    def __init__(self, port: int = 0, host: str | None = None, ready: Callable[[], bool] = lambda: True,
                 registry=REGISTRY):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server API)
                if self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(outer.registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/healthz"):
                    body, ctype, code = b'{"status":"ok"}', "application/json", 200
                elif self.path.startswith("/readyz"):
                    ok = outer.ready()
                    body = b'{"status":"ready"}' if ok else b'{"status":"not ready"}'
                    ctype, code = "application/json", 200 if ok else 503
                else:
                    body, ctype, code = b"not found\n", "text/plain", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet: access logs are noise here
                pass

        self.registry = registry
        self.ready = ready
        self.httpd = ThreadingHTTPServer((host or os.environ.get("GATEWATCH_HTTP_HOST", "127.0.0.1"), port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="ops-http", daemon=True)

    def start(self) -> "OpsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
