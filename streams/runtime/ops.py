"""Operations surface shared by every worker: Prometheus /metrics, /healthz, /readyz, JSON logs.

HTTP binds 127.0.0.1 unless GATEWATCH_HTTP_HOST says otherwise.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import orjson
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


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        extra = getattr(record, "fields", None)
        if extra:
            doc.update(extra)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def setup_json_logging(level: str | None = None) -> None:
    """Structured JSON logs on stderr (one object per line). Level from GATEWATCH_LOG_LEVEL."""
    import time
    handler = logging.StreamHandler(sys.stderr)
    fmt = JsonFormatter()
    fmt.converter = time.gmtime
    handler.setFormatter(fmt)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("GATEWATCH_LOG_LEVEL", "INFO")).upper())
    logging.getLogger("gatewatch.rdkafka").setLevel(logging.WARNING)


def log_event(logger: logging.Logger, msg: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, msg, extra={"fields": fields})
