"""`gatewatch serve`: release gates over HTTP for delivery controllers (Argo Rollouts, Flagger).

Serve = GateStore (materialized gw.gates + recent gw.actions) + Materializer (the Kafka reader
thread) + Api (routes, auth, Flagger semantics) + HttpServer (stdlib, optional TLS).
"""
from __future__ import annotations

from pathlib import Path

from gatewatch.streams.app.serve.materialize import Materializer
from gatewatch.streams.app.serve.server import Api, HttpServer, check_bind
from gatewatch.streams.app.serve.store import GateStore
from gatewatch.streams.runtime.errors import GatewatchError

__all__ = ["Serve", "check_bind", "read_token"]


def read_token(path: str | None) -> str | None:
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise GatewatchError(f"cannot read the token file {path}: {getattr(e, 'strerror', None) or e}") from None
    if not token or any(c.isspace() for c in token):
        raise GatewatchError(f"the token file {path} must hold one non-empty token without whitespace")
    return token


class Serve:
    """The whole service; a context manager. `url` is where it answers."""

    def __init__(self, bootstrap: str, host: str = "127.0.0.1", port: int = 8088, token: str | None = None,
                 tls: tuple[str, str] | None = None, pfx: str | None = None, flagger_without_token: bool = False):
        check_bind(host, token)  # before touching Kafka: a refused bind fails fast
        self.store = GateStore()
        self.materializer = Materializer(bootstrap, self.store, pfx)
        from gatewatch.streams.app.serve.openapi import OPENAPI
        self.api = Api(self.store, lambda: self.materializer.ready, token, OPENAPI, flagger_without_token)
        self.http = HttpServer(self.api, host, port, tls)

    @property
    def url(self) -> str:
        return self.http.url

    def start(self) -> "Serve":
        try:
            self.materializer.start()
        except BaseException:
            self.http.stop()
            raise
        self.http.start()
        return self

    def stop(self) -> None:
        self.http.stop()
        self.materializer.stop()

    def __enter__(self) -> "Serve":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
