"""Whatever arrives, serve answers a documented status with a body that matches docs/openapi.json,
and never a 5xx: hypothesis drives the API (paths, methods, query strings, bodies, tokens), then raw
malformed HTTP goes to a live server."""
from __future__ import annotations

import socket
from urllib.parse import unquote

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.streams.app.serve.openapi import OPENAPI
from gatewatch.streams.app.serve.server import Api, HttpServer
from gatewatch.streams.app.serve.store import GateStore
from tests.serve.helpers import gate


def _validator(schema: dict):
    """A validator for an OpenAPI schema object ($refs into components resolved as $defs)."""
    text = orjson.dumps(schema).decode().replace("#/components/schemas/", "#/$defs/")
    doc = dict(orjson.loads(text), **{"$defs": orjson.loads(
        orjson.dumps(OPENAPI["components"]["schemas"]).decode().replace("#/components/schemas/", "#/$defs/"))})
    return jsonschema.Draft202012Validator(doc)


def _store() -> GateStore:
    s = GateStore()
    for scope, release, verdict in (("checkout", "1.5.0", "pass"), ("checkout", "1.6.0", "fail"),
                                    ("search", "2.0.0", "pending")):
        s.apply_gate(f"{scope}@{release}".encode(), orjson.dumps(gate(scope, release, verdict,
                                                                      missing=("err5xx_rate",))))
    return s


API = Api(_store(), lambda: True, token=None, openapi=OPENAPI)
TOKEN_API = Api(_store(), lambda: True, token="tok", openapi=OPENAPI)


def _operation(path: str, method: str):
    """The OpenAPI operation a request path and method match (None: undocumented path)."""
    segs = path.split("?")[0].rstrip("/").split("/") or [""]
    for template, ops in OPENAPI["paths"].items():
        t = template.split("/")
        if len(t) == len(segs) and all(a == b or (a.startswith("{") and b) for a, b in zip(t, segs)):
            return ops.get(method.lower(), "wrong-method")
    return None


def check(api: Api, method: str, target: str, headers: dict, body: bytes | None) -> int:
    status, ctype, raw, _h = api.handle(method, target, headers, body)
    assert status < 500, (method, target, body, raw)
    op = _operation(target, method)
    if ctype == "application/json":
        doc = orjson.loads(raw)
        if op is None or op == "wrong-method" or str(status) not in op["responses"]:
            assert status in (400, 401, 404, 405), (method, target, status)
            _validator({"$ref": "#/components/schemas/Error"}).validate(doc)
        else:
            schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
            _validator(schema).validate(doc)
    return status


names = st.one_of(st.sampled_from(["checkout", "search", "nope", "", "a b", "x" * 300, "%2F", "ü", "\x00"]),
                  st.text(max_size=20))
hooks = st.one_of(st.sampled_from(["rollout", "confirm-promotion", "rollback", "post-rollout", "event"]),
                  st.text(max_size=10))
bodies = st.one_of(st.none(), st.binary(max_size=64),
                   st.builds(lambda d: orjson.dumps(d), st.recursive(
                       st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53), st.text(max_size=8)),
                       lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=8), c, max_size=3)),
                       max_leaves=8)),
                   st.builds(lambda n, md: orjson.dumps({"name": n, "namespace": "t", "metadata": md}), names,
                             st.dictionaries(st.sampled_from(["scope", "release", "x"]),
                                             st.one_of(names, st.integers(-2**53, 2**53)), max_size=3)))


@settings(max_examples=400, deadline=None)
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]),
       path=st.one_of(st.sampled_from(["/v1/gates", "/v1/actions", "/healthz", "/readyz", "/metrics",
                                       "/openapi.json", "/", "/v1", "/v1/"]),
                      st.builds(lambda n: "/v1/gates/" + n, names),
                      st.builds(lambda h: "/v1/flagger/" + h, hooks),
                      st.text(max_size=30)),
       query=st.one_of(st.just(""), st.builds(lambda k, v: f"?{k}={v}",
                                               st.sampled_from(["release", "scope", "limit", "x"]), names)),
       body=bodies, token=st.sampled_from([None, "Bearer tok", "Bearer nope", "tok", ""]))
def test_no_5xx_and_every_answer_matches_the_openapi_document(method, path, query, body, token):
    headers = {} if token is None else {"Authorization": token}
    for api in (API, TOKEN_API):
        status = check(api, method, path + query, headers, body)
        if api is TOKEN_API and [unquote(p) for p in path.split("?")[0].split("/")[1:2]] == ["v1"] and token != "Bearer tok":
            assert status == 401


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET /v1/gates HTTP/9.9\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n",
    b"POST /v1/flagger/rollout HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /v1/flagger/rollout HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"POST /v1/flagger/rollout HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n{\"a\":",
])
def test_malformed_http_gets_a_4xx_json_answer(raw):
    srv = HttpServer(API, "127.0.0.1", 0).start()
    try:
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        status = int(head.split()[1])
        assert 400 <= status < 500 or (status == 505 and b"HTTP/9.9" in raw), data[:300]
        assert "error" in orjson.loads(body)
    finally:
        srv.stop()
