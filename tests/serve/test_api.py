"""`gatewatch serve` against a real broker: gate records published to the gates topic (built by the
real gatestatus builder), asked over real HTTP."""
from __future__ import annotations

import orjson
import pytest

from gatewatch.streams.app.serve.materialize import wait_until
from gatewatch.streams.app.serve.openapi import OPENAPI
from tests.serve.helpers import gate, http, publish, publish_raw

pytestmark = pytest.mark.integration


def test_gates_by_scope_and_release_with_verdicts_and_reasons(kafka_bootstrap, start_serve):
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass", ts=1), gate("checkout", "1.6.0", "fail", ts=2),
                              gate("search", "2.0.0", "pending", missing=("latency_p95_ms", "err5xx_rate"))])
    s = start_serve()
    code, doc = http("GET", s.url + "/v1/gates/checkout?release=1.5.0")
    assert code == 200 and doc["verdict"] == "pass" and doc["reasons"] == [] and doc["state"] == "CANARY_READY"
    code, doc = http("GET", s.url + "/v1/gates/checkout?release=1.6.0")
    assert code == 200 and doc["verdict"] == "fail" and doc["reasons"][0]["kind"] == "failed"
    code, doc = http("GET", s.url + "/v1/gates/checkout")  # no release: the latest (1.6.0 started later)
    assert code == 200 and doc["release"] == "1.6.0"
    code, doc = http("GET", s.url + "/v1/gates/search")
    assert code == 200 and doc["verdict"] == "pending" and doc["missing"] == ["err5xx_rate", "latency_p95_ms"]
    assert {r["signal"] for r in doc["reasons"] if r["kind"] == "missing"} == {"err5xx_rate", "latency_p95_ms"}
    code, doc = http("GET", s.url + "/v1/gates")
    assert code == 200 and doc["ready"] is True
    assert [(g["scope"], g["release"]) for g in doc["gates"]] == [("checkout", "1.5.0"), ("checkout", "1.6.0"),
                                                                   ("search", "2.0.0")]


def test_unknown_and_bad_names_get_json_errors(kafka_bootstrap, start_serve):
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass")])
    s = start_serve()
    code, doc = http("GET", s.url + "/v1/gates/nope")
    assert code == 404 and doc["error"] == "unknown scope 'nope'"
    code, doc = http("GET", s.url + "/v1/gates/checkout?release=9.9.9")
    assert code == 404 and doc["releases"] == ["1.5.0"] and "no release '9.9.9'" in doc["error"]
    code, doc = http("GET", s.url + "/v1/gates/bad%20scope")
    assert code == 400 and "contains ' '" in doc["error"]
    code, doc = http("GET", s.url + "/v1/gates/checkout?release=" + "x" * 300)
    assert code == 400 and "more than 128" in doc["error"]
    code, doc = http("GET", s.url + "/v1/gates/checkout?release=a&release=b")
    assert code == 400
    code, doc = http("GET", s.url + "/v1/nothing")
    assert code == 404 and doc["status"] == 404
    code, doc = http("DELETE", s.url + "/v1/gates")
    assert code == 405 and "use GET" in doc["error"]
    code, doc = http("GET", s.url + "/v1/actions?limit=zero")
    assert code == 400 and "limit" in doc["error"]
    code, doc = http("POST", s.url + "/v1/flagger/rollout", raw=b"{not json")
    assert code == 400 and "not JSON" in doc["error"]
    code, doc = http("POST", s.url + "/v1/flagger/rollout", body={"namespace": "x"})
    assert code == 400 and "'name'" in doc["error"]
    code, doc = http("POST", s.url + "/v1/flagger/rollout", body=[1, 2])
    assert code == 400
    code, doc = http("POST", s.url + "/v1/flagger/rollout", body={"name": "x", "metadata": {"release": 5}})
    assert code == 400 and "metadata.release" in doc["error"]
    code, doc = http("POST", s.url + "/v1/flagger/promote-now", body={"name": "checkout"})
    assert code == 404 and "confirm-promotion" in doc["hooks"]
    code, doc = http("POST", s.url + "/v1/flagger/rollout", raw=b"x" * 70_000)
    assert code == 413


FLAGGER = {  # hook -> {verdict (None: no gate): expected status}
    "confirm-rollout": {"pass": 200, "pending": 200, "fail": 403, None: 200},
    "pre-rollout": {"pass": 200, "pending": 200, "fail": 403, None: 200},
    "rollout": {"pass": 200, "pending": 200, "fail": 403, None: 200},
    "confirm-traffic-increase": {"pass": 200, "pending": 200, "fail": 403, None: 200},
    "confirm-promotion": {"pass": 200, "pending": 409, "fail": 403, None: 404},
    "post-rollout": {"pass": 200, "pending": 200, "fail": 200, None: 404},
    "rollback": {"pass": 409, "pending": 409, "fail": 200, None: 404},
}


def test_flagger_hooks_answer_with_flaggers_status_semantics(kafka_bootstrap, start_serve):
    publish(kafka_bootstrap, [gate("podinfo", "1.0.0", "pass"), gate("podinfo", "1.1.0", "pending", ts=T1),
                              gate("podinfo", "1.2.0", "fail", ts=T1 + 1)])
    s = start_serve()
    release = {"pass": "1.0.0", "pending": "1.1.0", "fail": "1.2.0", None: "7.7.7"}
    for hook, want in FLAGGER.items():
        for verdict, status in want.items():
            # Flagger's payload as pkg/controller/webhook.go sends it (metadata is map[string]string)
            payload = {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": "6f7b9c",
                       "metadata": {"release": release[verdict]}}
            code, doc = http("POST", s.url + f"/v1/flagger/{hook}", body=payload)
            assert (hook, verdict, code) == (hook, verdict, status), doc
            assert doc["go"] is (200 <= code <= 202) and doc["scope"] == "podinfo"
            if verdict is not None:
                assert doc["verdict"] == verdict and doc["release"] == release[verdict]
    # metadata.scope names the gate when the Canary is named otherwise; no release: the latest
    code, doc = http("POST", s.url + "/v1/flagger/rollback", body={"name": "web", "namespace": "prod",
                                                                  "metadata": {"scope": "podinfo"}})
    assert code == 200 and doc["release"] == "1.2.0"


T1 = 1_790_000_100_000


def test_bearer_token_guards_v1_but_not_probes(kafka_bootstrap, start_serve):
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass")])
    s = start_serve(token="s3cret-token")
    assert http("GET", s.url + "/v1/gates/checkout")[0] == 401
    assert http("GET", s.url + "/v1/gates/checkout", token="wrong")[0] == 401
    assert http("GET", s.url + "/v1/gates/checkout", headers={"Authorization": "Basic s3cret-token"})[0] == 401
    assert http("POST", s.url + "/v1/flagger/rollout", body={"name": "checkout"})[0] == 401
    code, doc = http("GET", s.url + "/v1/gates/checkout", token="s3cret-token")
    assert code == 200 and doc["verdict"] == "pass"
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert http("GET", s.url + path)[0] == 200, path


def test_non_loopback_bind_is_refused_without_a_token(kafka_bootstrap):
    from gatewatch.streams.app.serve import Serve
    from gatewatch.streams.runtime.errors import GatewatchError
    with pytest.raises(GatewatchError, match="refusing to bind 0.0.0.0: a non-loopback address needs a bearer"):
        Serve(kafka_bootstrap, host="0.0.0.0", port=0)


def test_tombstones_delete_and_the_last_record_per_key_wins(kafka_bootstrap, start_serve):
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pending"), gate("checkout", "1.5.0", "pass", ts=T1),
                              gate("cart", "3.0.0", "fail")])
    s = start_serve()
    assert http("GET", s.url + "/v1/gates/checkout?release=1.5.0")[1]["verdict"] == "pass"
    publish(kafka_bootstrap, [("cart@3.0.0", None)])
    assert wait_until(lambda: http("GET", s.url + "/v1/gates/cart")[0] == 404, 30)
    # unreadable records are skipped, never served and never fatal
    publish_raw(kafka_bootstrap, "gates", [(b"checkout@1.7.0", b"{oops"), (b"no-at-sign", b"{}")])
    publish(kafka_bootstrap, [gate("checkout", "1.8.0", "pending", ts=T1 + 5)])
    assert wait_until(lambda: http("GET", s.url + "/v1/gates/checkout")[1].get("release") == "1.8.0", 30)
    assert http("GET", s.url + "/v1/gates/checkout?release=1.7.0")[0] == 404
    assert s.store.rejected == 2


def test_metrics_carry_state_and_verdict_per_scope_and_release(kafka_bootstrap, start_serve):
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass"),
                              gate("search", "2.0.0", "pending", missing=("latency_p95_ms",))])
    s = start_serve()
    code, text = http("GET", s.url + "/metrics")
    assert code == 200
    assert 'gatewatch_gate_verdict{release="1.5.0",scope="checkout",verdict="pass"} 1.0' in text
    assert 'gatewatch_gate_verdict{release="1.5.0",scope="checkout",verdict="fail"} 0.0' in text
    assert 'gatewatch_gate_state{release="1.5.0",scope="checkout",state="CANARY_READY"} 1.0' in text
    assert 'gatewatch_gate_verdict{release="2.0.0",scope="search",verdict="pending"} 1.0' in text
    assert 'gatewatch_gate_missing_signals{release="2.0.0",scope="search"} 1.0' in text
    assert "gatewatch_serve_ready 1.0" in text


def test_actions_are_materialized_newest_first(kafka_bootstrap, start_serve):
    acts = [{"id": f"{i:064x}", "kind": "abort" if i == 2 else "gate", "action": "rollback", "scope": "checkout",
             "release": "1.6.0" if i == 2 else "1.5.0", "permit": {"id": f"p{i}"}} for i in range(3)]
    publish_raw(kafka_bootstrap, "actions", [(b"checkout", orjson.dumps(a)) for a in acts])
    receipt = {"id": "r1", "sig": "s", "type": "RESULT", "seq": 1, "executor": "e", "ts": "t",
               "action_id": acts[1]["id"], "status": "EXECUTED", "backend": "dry-run"}
    publish_raw(kafka_bootstrap, "receipts", [(acts[1]["id"].encode(), orjson.dumps(receipt))] * 2)
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass")])
    s = start_serve()
    assert wait_until(lambda: len(http("GET", s.url + "/v1/actions")[1]["actions"]) == 3, 30)
    assert wait_until(lambda: http("GET", s.url + "/v1/actions")[1]["actions"][1]["receipts"], 30)
    code, doc = http("GET", s.url + "/v1/actions?scope=checkout&release=1.5.0")
    assert code == 200 and [a["id"][-1] for a in doc["actions"]] == ["1", "0"]
    assert doc["actions"][0]["permit"] == {"id": "p1"}  # the action's permit, as decide signed it
    assert [(r["type"], r["status"]) for r in doc["actions"][0]["receipts"]] == [("RESULT", "EXECUTED")]  # deduped
    assert doc["actions"][1]["receipts"] == []
    assert http("GET", s.url + "/v1/actions?scope=other")[1] == {"actions": []}


def test_readyz_waits_for_the_gates_topic_and_openapi_is_checked_in(kafka_bootstrap, start_serve):
    s = start_serve()  # an empty topic: ready at once
    assert http("GET", s.url + "/readyz") == (200, {"status": "ready"})
    assert http("GET", s.url + "/healthz") == (200, {"status": "ok"})
    with open("docs/openapi.json", "rb") as f:
        assert orjson.loads(f.read()) == OPENAPI
    assert http("GET", s.url + "/openapi.json")[1] == OPENAPI


def test_not_caught_up_is_503_on_readyz_and_never_a_go_on_an_unknown_gate():
    """Before serve has read the gates topic to its end, a missing gate may just be unread yet."""
    from gatewatch.streams.app.serve.server import Api
    from gatewatch.streams.app.serve.store import GateStore
    store = GateStore()
    store.apply_gate(b"podinfo@1.0.0", orjson.dumps(gate("podinfo", "1.0.0", "fail")))
    api = Api(store, lambda: False)
    status, _ctype, body, _h = api.handle("GET", "/readyz", {}, None)
    assert (status, orjson.loads(body)) == (503, {"status": "not ready"})
    status, _c, body, _h = api.handle("POST", "/v1/flagger/rollout", {}, b'{"name": "other"}')
    assert status == 503 and orjson.loads(body)["go"] is False
    status, _c, _b, _h = api.handle("POST", "/v1/flagger/rollout", {}, b'{"name": "podinfo"}')
    assert status == 403  # a gate it holds is answered
