"""`gatewatch serve`: the HTTP API over the materialized gates (docs/serve.md).

stdlib ThreadingHTTPServer (as the workers' ops endpoint): one thread per connection, a read timeout
per connection, TLS handshakes in the connection's thread (a slow client never stalls accept).
Every answer is JSON (or Prometheus text on /metrics); bad input gets a 4xx with the reason; an
unexpected error gets a JSON 500 with no trace (logged server-side).

Security: binds 127.0.0.1 by default; a non-loopback bind is refused without a bearer token; with a
token every /v1 request and the status page / need `Authorization: Bearer <token>` (401 otherwise). /healthz, /readyz,
/metrics and /openapi.json stay open for probes and scrapers.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import re
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gatewatch.streams.app.serve import flagger, page
from gatewatch.streams.app.serve.metrics import registry
from gatewatch.streams.app.serve.store import GateStore, bad_name
from gatewatch.streams.runtime.errors import GatewatchError

LOG = logging.getLogger("gatewatch.serve")
MAX_BODY = 64 * 1024
READ_TIMEOUT_S = 30


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class HttpError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is a loopback address."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def check_bind(host: str, token: str | None) -> None:
    if not token and not is_loopback(host):
        raise GatewatchError(f"refusing to bind {host}: a non-loopback address needs a bearer token "
                             f"(--token-file)")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Flagger opens a connection per webhook call and Argo keeps 2 idle per host: socketserver's
    # default backlog of 5 made simultaneous connects wait out SYN retries (1 s and more)
    request_queue_size = 128
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request, client_address):
        request.settimeout(READ_TIMEOUT_S)
        # headers and body leave in two writes: with Nagle on, the second waits for the client's
        # delayed ACK (~40 ms a request on a keep-alive connection, measured by bench/serve.py)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context is not None:
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError) as e:
                LOG.info("TLS handshake with %s failed: %s", client_address[0], e)
                return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):  # no tracebacks on stderr for broken clients
        LOG.debug("connection from %s ended with an error", client_address[0], exc_info=True)


class Api:
    """Routes and answers; `ready` says whether the store is caught up with gw.gates."""

    def __init__(self, store: GateStore, ready: Callable[[], bool], token: str | None = None,
                 openapi: dict | None = None, flagger_without_token: bool = False):
        self.store, self.ready, self.token = store, ready, token
        # Flagger's webhooks carry no headers (its CanaryWebhook has none): with this, its hook paths
        # answer without the token (read-only go/no-go; admit only Flagger with a NetworkPolicy)
        self.flagger_without_token = flagger_without_token
        self.registry = registry(store, ready)
        self.openapi = openapi

    # ---- routing ------------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers, body: bytes | None) -> tuple[int, str, bytes, dict]:
        try:
            url = urlsplit(target)
            parts = [unquote(p) for p in url.path.split("/")[1:]]
            if len(parts) > 1 and parts[-1] == "":  # a trailing slash names the same resource
                parts.pop()
            if parts[:1] == ["v1"] and not (self.flagger_without_token and parts[1:2] == ["flagger"]):
                self._authorize(headers)  # nothing about /v1, not even that a target is malformed
            if _CONTROL.search(target):  # urlsplit dropped tab/CR/LF: it would answer for another path
                raise HttpError(400, "control character in the request target")
            query = parse_qs(url.query, keep_blank_values=True)
            if parts == [""]:  # the status page: the same data as /v1/gates, so the same guard
                self._method(method, "GET")
                self._authorize(headers)
                return 200, "text/html; charset=utf-8", page.render(self.store.gates(), self.ready()), {}
            if parts[:1] == ["v1"]:
                return self._v1(method, parts[1:], query, body)
            if parts in (["healthz"], ["readyz"], ["metrics"], ["openapi.json"]):
                self._method(method, "GET")
                if parts == ["healthz"]:
                    return self._json(200, {"status": "ok"})
                if parts == ["readyz"]:
                    ok = self.ready()
                    return self._json(200 if ok else 503, {"status": "ready" if ok else "not ready"})
                if parts == ["metrics"]:
                    return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry), {}
                if self.openapi is None:
                    raise HttpError(404, "no OpenAPI document")
                return self._json(200, self.openapi)
            raise HttpError(404, f"no such path: {url.path}")
        except HttpError as e:
            hdrs = {"WWW-Authenticate": 'Bearer realm="gatewatch"'} if e.status == 401 else {}
            if e.status == 405:
                hdrs["Allow"] = e.extra.pop("allow")
            return self._json(e.status, {"error": e.message, "status": e.status, **e.extra}, hdrs)
        except Exception:  # noqa: BLE001 (a bug: logged here, never a trace to the client)
            LOG.exception("internal error answering %s %s", method, target[:200])
            return self._json(500, {"error": "internal error", "status": 500})

    def _v1(self, method, parts, query, body):
        if parts == ["gates"]:
            self._method(method, "GET")
            self._only(query)
            return self._json(200, {"gates": self.store.gates(), "ready": self.ready()})
        if len(parts) >= 2 and parts[0] == "gates":  # a scope may hold "/" (namespace/service)
            self._method(method, "GET")
            self._only(query, "release")
            scope = self._name("scope", "/".join(parts[1:]))
            release = self._param(query, "release")
            if not self.ready():  # an older record of the key may be all we hold: no answer yet
                raise HttpError(503, "not caught up with the gates topic yet", scope=scope, ready=False)
            gate = self._gate(scope, release)
            return self._json(200, gate)
        if parts == ["actions"]:
            self._method(method, "GET")
            self._only(query, "scope", "release", "limit")
            scope, release = self._param(query, "scope"), self._param(query, "release")
            limit = query.get("limit")
            if limit is not None and len(limit) > 1:
                raise HttpError(400, "query parameter 'limit' given more than once")
            try:
                n = 100 if limit is None else int(limit[0])  # an empty limit= is no integer either
            except ValueError:
                n = -1
            if not 1 <= n <= 1000:
                raise HttpError(400, "limit must be an integer from 1 to 1000")
            return self._json(200, {"actions": self.store.actions(scope, release, n)})
        if len(parts) == 2 and parts[0] == "flagger":
            self._method(method, "POST")
            hook = parts[1]
            if hook not in flagger.HOOKS:
                raise HttpError(404, f"unknown Flagger hook type {hook!r}", hooks=list(flagger.HOOKS))
            return self._flagger(hook, body)
        raise HttpError(404, "no such path: /v1/" + "/".join(parts))

    # ---- endpoints ----------------------------------------------------------------------------
    def _gate(self, scope: str, release: str | None) -> dict:
        gate = self.store.get(scope, release)
        if gate is not None:
            return gate
        known = self.store.releases(scope)
        if not known:
            raise HttpError(404, f"unknown scope {scope!r}", scope=scope, ready=self.ready())
        raise HttpError(404, f"scope {scope!r} has no release {release!r}", scope=scope, release=release,
                        releases=known, ready=self.ready())

    def _flagger(self, hook: str, body: bytes | None):
        try:
            payload = orjson.loads(body or b"")
        except orjson.JSONDecodeError as e:
            raise HttpError(400, f"the body is not JSON: {e}") from None
        try:
            scope, release = flagger.target(payload)
        except flagger.PayloadError as e:
            raise HttpError(400, str(e)) from None
        scope = self._name("scope", scope)
        if release is not None:
            release = self._name("release", release)
        gate = self.store.get(scope, release)
        status, reason = flagger.decide(hook, gate)
        if not self.ready() and 200 <= status <= 202:  # never a go on what may be an older record
            status, reason = 503, "not caught up with the gates topic yet"
        doc = {"hook": hook, "go": 200 <= status <= 202, "message": reason, "scope": scope, "release": release,
               **flagger.summary(gate)}
        return self._json(status, doc)

    # ---- helpers ------------------------------------------------------------------------------
    def _authorize(self, headers) -> None:
        if not self.token:
            return
        got = headers.get("Authorization") or ""
        scheme, _, cred = got.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(cred.strip().encode(), self.token.encode()):
            raise HttpError(401, "missing or wrong bearer token (Authorization: Bearer <token>)")

    @staticmethod
    def _method(method: str, allowed: str) -> None:
        if method != allowed and not (method == "HEAD" and allowed == "GET"):  # RFC 9110 9.3.2
            allow = "GET, HEAD" if allowed == "GET" else allowed
            raise HttpError(405, f"method {method} not allowed here (use {allow})", allow=allow)

    @staticmethod
    def _only(query: dict, *names: str) -> None:
        """A parameter this resource does not read (a misspelt release...) is refused, not ignored:
        ignoring it would answer for another gate than the one asked about."""
        extra = sorted(set(query) - set(names))
        if extra:
            raise HttpError(400, f"unknown query parameter {extra[0]!r}" +
                            (f" (this resource reads {', '.join(names)})" if names else ""))

    @staticmethod
    def _name(what: str, text: str) -> str:
        why = bad_name(what, text)
        if why:
            raise HttpError(400, why)
        return text

    def _param(self, query: dict, name: str) -> str | None:
        vals = query.get(name)
        if not vals:
            return None
        if vals[-1] == "":  # an unset variable in a controller's URL: not "the latest"
            raise HttpError(400, f"query parameter {name!r} is empty (leave it out to mean the latest)")
        if len(vals) > 1:
            raise HttpError(400, f"query parameter {name!r} given more than once")
        return self._name(name, vals[0])

    @staticmethod
    def _json(status: int, doc, headers: dict | None = None):
        return status, "application/json", orjson.dumps(doc), headers or {}


def _handler(api: Api):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "gatewatch-serve"
        sys_version = ""

        def _answer(self, method: str) -> None:
            body = None
            if method != "POST" and self.headers.get("Content-Length", "0").strip() not in ("", "0"):
                self.close_connection = True  # a body nobody reads must not become the next request
            if method == "POST":
                n = self.headers.get("Content-Length")
                if n is None:
                    return self._send(*api._json(411, {"error": "Content-Length required", "status": 411}))
                try:
                    size = int(n)
                except ValueError:
                    size = -1
                if not 0 <= size <= MAX_BODY:
                    self.close_connection = True
                    return self._send(*api._json(413, {"error": f"body must be 0..{MAX_BODY} bytes", "status": 413}))
                body = self.rfile.read(size)
            self._send(*api.handle(method, self.path, self.headers, body), head=method == "HEAD")

        def _send(self, status, ctype, body, headers, head=False):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_GET(self):  # noqa: N802 (http.server API)
            self._answer("GET")

        def do_HEAD(self):  # noqa: N802
            self._answer("HEAD")

        def do_POST(self):  # noqa: N802
            self._answer("POST")

        def do_PUT(self):  # noqa: N802
            self._answer("PUT")

        def do_DELETE(self):  # noqa: N802
            self._answer("DELETE")

        def do_PATCH(self):  # noqa: N802
            self._answer("PATCH")

        def __getattr__(self, name):  # any other method (TRACE, QUERY...): the documented 405, not 501
            if name.startswith("do_") and name[3:].isascii() and name[3:].isalpha():
                return lambda: self._answer(name[3:])
            raise AttributeError(name)

        def send_error(self, code, message=None, explain=None):  # malformed requests: JSON too
            self.close_connection = True
            if self.request_version == "HTTP/0.9":  # unparsable request line: answer with a status line
                self.request_version = "HTTP/1.0"
            try:
                self._send(*api._json(code, {"error": message or "bad request", "status": code}))
            except OSError:
                pass

        def log_message(self, fmt, *args):
            LOG.debug("%s " + fmt, self.client_address[0], *args)

    return Handler


class HttpServer:
    def __init__(self, api: Api, host: str = "127.0.0.1", port: int = 8088, tls: tuple[str, str] | None = None):
        check_bind(host, api.token)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        cls = type("_S", (_Server,), {"address_family": family})
        try:
            self.httpd = cls((host, port), _handler(api))
        except OSError as e:
            raise GatewatchError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                ctx.load_cert_chain(tls[0], tls[1])
            except (OSError, ssl.SSLError) as e:
                self.httpd.server_close()
                raise GatewatchError(f"cannot load TLS certificate {tls[0]} / key {tls[1]}: {e}") from None
            self.httpd.ssl_context = ctx
        self.host, self.port = host, self.httpd.server_address[1]
        self.scheme = "https" if tls else "http"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.2,), name="serve-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def start(self) -> "HttpServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever for a loop that never started
            self.httpd.shutdown()
        self.httpd.server_close()
