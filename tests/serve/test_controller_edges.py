"""What Argo Rollouts and Flagger really send, at the edges (found by a review against their source):
no token from Flagger, a fresh connection per webhook call, an empty or misspelt release, a scope
with "/", HEAD, answers before serve has caught up, and a gate record whose body contradicts its key.
A real HTTP server and client where the transport matters; the Api object elsewhere."""
from __future__ import annotations

import http.client as httpclient
import threading

import orjson
import pytest

from gatewatch.streams.app.serve.server import Api, HttpServer
from gatewatch.streams.app.serve.store import GateStore
from tests.serve.helpers import gate, http


def _store(*gates) -> GateStore:
    s = GateStore()
    for scope, release, verdict in gates:
        s.apply_gate(f"{scope}@{release}".encode(), orjson.dumps(gate(scope, release, verdict)))
    return s


def _ask(api: Api, method: str, target: str, body: dict | None = None, headers: dict | None = None):
    status, _ctype, raw, hdrs = api.handle(method, target, headers or {}, None if body is None else orjson.dumps(body))
    return status, (orjson.loads(raw) if raw[:1] == b"{" else raw), hdrs


def test_flagger_hooks_can_answer_without_the_token_and_nothing_else_can():
    """Flagger's CanaryWebhook has no headers: with the token required, every call was a 401 and
    the canary rolled back at its threshold whatever the gate said."""
    store = _store(("podinfo", "1.0.0", "pass"))
    strict = Api(store, lambda: True, token="tok")
    assert _ask(strict, "POST", "/v1/flagger/confirm-promotion", {"name": "podinfo"})[0] == 401
    api = Api(store, lambda: True, token="tok", flagger_without_token=True)
    status, doc, _ = _ask(api, "POST", "/v1/flagger/confirm-promotion", {"name": "podinfo"})
    assert status == 200 and doc["go"] is True
    for target in ("/v1/gates/podinfo", "/v1/gates", "/v1/actions", "/"):
        assert _ask(api, "GET", target)[0] == 401, target
    assert _ask(api, "GET", "/v1/gates/podinfo", headers={"Authorization": "Bearer tok"})[0] == 200


def test_an_empty_or_unknown_release_parameter_is_refused_not_the_latest():
    """?release= (an unset controller argument) or ?Release= answered with the latest release's
    gate: here 1.7.0's pass, while 1.8.0, the one rolling out, has no gate yet."""
    api = Api(_store(("checkout", "1.7.0", "pass")), lambda: True)
    assert _ask(api, "GET", "/v1/gates/checkout?release=1.8.0")[0] == 404
    for target in ("/v1/gates/checkout?release=", "/v1/gates/checkout?Release=1.8.0",
                   "/v1/gates/checkout?releases=1.8.0", "/v1/gates?scope=checkout", "/v1/actions?scop=checkout"):
        status, doc, _ = _ask(api, "GET", target)
        assert status == 400 and "release" in doc["error"] or "unknown query parameter" in doc["error"], (target, doc)
    for md in ({"release": ""}, {"scope": "", "release": "1.8.0"}):
        status, doc, _ = _ask(api, "POST", "/v1/flagger/confirm-promotion", {"name": "checkout", "metadata": md})
        assert status == 400 and "must not be empty" in doc["error"], md
    assert _ask(api, "GET", "/v1/gates/checkout")[1]["release"] == "1.7.0"  # leaving it out still means latest


def test_no_answer_from_what_may_be_an_older_record_before_catching_up():
    """Serve held checkout@1.8.0's pass but had not read its later fail yet: confirm-promotion said
    promote. Before catching up no gate is answered and no hook says go."""
    api = Api(_store(("checkout", "1.8.0", "pass"), ("billing", "2.0.0", "fail")), lambda: False)
    status, doc, _ = _ask(api, "GET", "/v1/gates/checkout?release=1.8.0")
    assert status == 503 and doc["ready"] is False
    for hook, name in (("confirm-promotion", "checkout"), ("rollout", "checkout"), ("rollback", "billing")):
        status, doc, _ = _ask(api, "POST", f"/v1/flagger/{hook}", {"name": name})
        assert status == 503 and doc["go"] is False, hook
    assert _ask(api, "POST", "/v1/flagger/rollout", {"name": "billing"})[0] == 403  # a no stays a no


def test_a_scope_with_a_slash_is_reachable_as_argo_sends_it():
    """Argo substitutes {{args.scope}} into the URL unencoded; names allow namespace/service."""
    api = Api(_store(("prod/checkout", "1.0.0", "fail")), lambda: True)
    for target in ("/v1/gates/prod/checkout?release=1.0.0", "/v1/gates/prod%2Fcheckout?release=1.0.0",
                   "/v1/gates/prod/checkout/"):
        status, doc, _ = _ask(api, "GET", target)
        assert status == 200 and doc["scope"] == "prod/checkout" and doc["verdict"] == "fail", target


def test_a_record_whose_body_contradicts_its_key_is_skipped_and_the_page_still_renders():
    store = _store(("checkout", "1.0.0", "pass"))
    store.apply_gate(b"billing@2.0.0", b'{"verdict": "pass", "release": null}')
    store.apply_gate(b"billing@2.0.1", orjson.dumps(gate("other", "2.0.1", "pass")))
    assert store.rejected == 2
    api = Api(store, lambda: True)
    assert _ask(api, "GET", "/")[0] == 200 and _ask(api, "GET", "/metrics")[0] == 200


@pytest.fixture
def server():
    srv = HttpServer(Api(_store(("checkout", "1.0.0", "pass")), lambda: True), "127.0.0.1", 0).start()
    yield srv
    srv.stop()


def test_head_is_answered_wherever_get_is(server):
    for path in ("/v1/gates/checkout?release=1.0.0", "/healthz", "/readyz", "/"):
        c = httpclient.HTTPConnection("127.0.0.1", server.port, timeout=15)
        c.request("HEAD", path)
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"" and int(r.headers["Content-Length"]) > 0, path
        c.close()
    status, doc = http("POST", server.url + "/v1/gates/checkout", body={})
    assert status == 405 and "HEAD" in doc["error"]


def test_many_fresh_connections_at_once_are_all_answered(server):
    """Flagger opens a connection per webhook call: with socketserver's backlog of 5, simultaneous
    connects waited out SYN retries and some timed out (a failed check, a halted promotion)."""
    assert server.httpd.request_queue_size >= 128
    results: list[int] = []

    def one():
        results.append(http("GET", server.url + "/v1/gates/checkout?release=1.0.0")[0])
    threads = [threading.Thread(target=one) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 64
