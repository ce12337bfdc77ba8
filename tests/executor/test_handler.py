"""Permit checks and exactly-once handling, against a real local webhook."""
import random

import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.processors.canonical import canonical_json, content_id
from gatewatch.processors.signing import permit_message, sign_b64
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import DryRunBackend, WebhookBackend
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal, verify_chain
from tests.executor.helpers import action_record, now_ms, permitted, trusted
from tests.executor.webhook_server import WebhookServer

DECIDER, EXECUTOR, STRANGER = SigningKey(b"d" * 32), SigningKey(b"e" * 32), SigningKey(b"s" * 32)


@pytest.fixture
def hook():
    with WebhookServer() as srv:
        yield srv


def _handler(path, url, **kw):
    led = Ledger(path, lambda body: seal(EXECUTOR, body))
    backends = {"hook": WebhookBackend("hook", url, EXECUTOR, timeout_s=1, deadline_s=2, rng=random.Random(0)),
                "dry-run": DryRunBackend()}
    return core.ActionHandler(led, backends, lambda rec: "hook", trusted(DECIDER), **kw)


def _receipts(h):
    return [orjson.loads(r.body) for r in h.ledger.receipts_after(0)]


def _forged_sig(rec):
    rec = permitted(DECIDER, rec)
    rec["permit"]["sig"] = sign_b64(STRANGER, permit_message(rec["permit"]))
    return rec


def _expired(rec):
    return permitted(DECIDER, rec, expires_ms=now_ms() - 1000)


def _altered(field, value):
    def make(rec):
        rec = permitted(DECIDER, rec)
        return {**rec, field: value}
    return make


def _no_permit(rec):
    return dict(rec)


CASES = {
    "bad_signature": _forged_sig,
    "unknown_key": lambda rec: permitted(STRANGER, rec),
    "expired": _expired,
    "mismatch_action": _altered("action", "freeze"),
    "mismatch_scope": _altered("scope", "payments"),
    "mismatch_digest": _altered("severity", "ticket"),
    "mismatch_action_id": _altered("id", "f" * 64),
    "missing_permit": _no_permit,
}


@pytest.mark.parametrize("reason", sorted(CASES))
def test_invalid_permits_are_refused_and_never_reach_the_backend(tmp_path, hook, reason):
    h = _handler(tmp_path / "l.db", hook.url)
    rec = CASES[reason](action_record(1))
    assert h.handle(canonical_json(rec)) == core.REFUSED
    assert h.handle(canonical_json(rec)) == core.REFUSED  # re-delivery: no second receipt
    assert hook.requests == []
    [receipt] = _receipts(h)
    assert (receipt["type"], receipt["reason"]) == ("REFUSED", reason)
    assert h.metrics.refusals.labels(reason)._value.get() == 1


def test_replayed_nonce_is_refused(tmp_path, hook):
    h = _handler(tmp_path / "l.db", hook.url)
    a = permitted(DECIDER, action_record(1))
    b = permitted(DECIDER, action_record(2))
    b["permit"]["nonce"] = a["permit"]["nonce"]           # a valid signature over a reused nonce
    b["permit"]["sig"] = sign_b64(DECIDER, permit_message(b["permit"]))
    assert h.handle(canonical_json(a)) == core.EXECUTED
    assert h.handle(canonical_json(b)) == core.REFUSED
    assert [r["key"] for r in hook.requests] == [a["id"]]
    assert _receipts(h)[-1]["reason"] == "replayed_nonce"


@pytest.mark.parametrize("raw", [b"{not json", b"[1,2]", b'{"id": 5}', None])
def test_malformed_records_are_refused(tmp_path, hook, raw):
    h = _handler(tmp_path / "l.db", hook.url)
    assert h.handle(raw) == core.REFUSED
    assert _receipts(h)[0]["reason"] == "malformed_action" and hook.requests == []


def test_forged_copy_does_not_block_the_real_action(tmp_path, hook):
    h = _handler(tmp_path / "l.db", hook.url)
    rec = action_record(1)
    assert h.handle(canonical_json(_forged_sig(rec))) == core.REFUSED
    assert h.handle(canonical_json(permitted(DECIDER, rec))) == core.EXECUTED
    assert hook.keys[rec["id"]] == 1


def test_executes_once_with_intent_then_result_and_dedupes(tmp_path, hook):
    h = _handler(tmp_path / "l.db", hook.url)
    rec = permitted(DECIDER, action_record(1))
    assert h.handle(canonical_json(rec)) == core.EXECUTED
    assert h.handle(canonical_json(rec)) == core.DUPLICATE
    reissued = permitted(DECIDER, action_record(1), expires_ms=now_ms() + 1_800_000)
    assert h.handle(canonical_json(reissued)) == core.DUPLICATE  # a new permit does not mean a new effect
    intent, result = _receipts(h)
    assert (intent["type"], result["type"]) == ("INTENT", "RESULT")
    assert result["status"] == "success" and result["attempts"] == 1 and result["run"] == 1
    assert result["idempotency_key"] == rec["id"] and result["prev"] == intent["id"]
    assert hook.keys[rec["id"]] == 1
    assert verify_chain(_receipts(h), trusted(EXECUTOR)) is None


def test_in_flight_action_is_rerun_with_the_same_key_after_restart(tmp_path, hook):
    path = tmp_path / "l.db"
    rec = permitted(DECIDER, action_record(1))
    first = _handler(path, hook.url)
    # the process died after INTENT (and maybe after the effect), before RESULT:
    first.ledger.admit(rec, content_id(rec), "hook", first._intent(rec, "hook"))
    first.ledger.close()
    second = _handler(path, hook.url)
    assert second.resume_in_flight() == 1
    assert second.handle(canonical_json(rec)) == core.DUPLICATE  # the re-delivery after restart
    assert hook.keys[rec["id"]] == 1
    intent, result = _receipts(second)
    assert result["run"] == 2 and result["status"] == "success"
    assert verify_chain(_receipts(second), trusted(EXECUTOR)) is None


def test_permanent_failure_is_recorded_not_retried_forever(tmp_path):
    with WebhookServer(lambda n: (400, 0)) as srv:
        h = _handler(tmp_path / "l.db", srv.url)
        rec = permitted(DECIDER, action_record(1))
        assert h.handle(canonical_json(rec)) == core.EXECUTED
        assert h.handle(canonical_json(rec)) == core.DUPLICATE
    result = _receipts(h)[-1]
    assert (result["status"], result["attempts"], result["detail"]) == ("failure", 1, "http 400")
    assert srv.keys[rec["id"]] == 1
