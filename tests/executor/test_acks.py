"""Signed delivery acknowledgements (seed 004): a real HTTP recipient signs its answer; the RESULT
receipt says confirmed only for a valid ack of this action and outcome, else unconfirmed with why."""
import base64
import random

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gatewatch.processors.acks import check_response, delivery_problem, sign_ack
from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.signing import key_id, sign_b64
from gatewatch.schemas import json_schema
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import WebhookBackend
from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal, verify_receipt
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.keys import init_keys, load_verify_key
from tests.executor.helpers import action_record, permitted, trusted
from tests.executor.webhook_server import WebhookServer

DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)
RECIPIENT, IMPOSTOR = SigningKey(b"r" * 32), SigningKey(b"i" * 32)
TS = "2026-12-07T01:00:00.000Z"


def _ack_reply(signer=RECIPIENT, action_id=None, outcome=None, claim_key=None):
    """A recipient that signs an ack of what it got (or of action_id/outcome when given)."""
    def reply(request, status):
        rec = orjson.loads(request["body"])
        body = sign_ack(signer, action_id or rec["id"], request["key"],
                        outcome or ("success" if status < 300 else "failure"), "deploy", TS)
        if claim_key is not None:
            body["key_id"] = key_id(claim_key.verify_key)
        return orjson.dumps(body)
    return reply


def _run(tmp_path, reply=None, status=200, ack=True, required=True):
    """One permitted action through a real webhook; returns (RESULT receipt, handler, server)."""
    with WebhookServer(lambda n: (status, 0.0), reply=reply) as srv:
        led = Ledger(tmp_path / "l.db", lambda body: seal(EXECUTOR, body))
        hook = WebhookBackend("deploy", srv.url, EXECUTOR, timeout_s=1, deadline_s=2, rng=random.Random(0),
                              ack_keys=trusted(RECIPIENT) if ack else None, ack_required=required)
        h = core.ActionHandler(led, {"deploy": hook}, lambda rec: "deploy", trusted(DECIDER))
        rec = permitted(DECIDER, action_record(1))
        assert h.handle(canonical_json(rec)) == core.EXECUTED
    result = [orjson.loads(r.body) for r in led.receipts_after(0)][-1]
    assert result["type"] == "RESULT"
    jsonschema.validate(result, json_schema("receipt"))
    assert verify_receipt(result, trusted(EXECUTOR)) is None
    return result, h, srv


def _delivery_count(h, delivery, reason=""):
    return h.metrics.registry.get_sample_value(
        "gatewatch_executor_deliveries_total", {"backend": "deploy", "delivery": delivery, "reason": reason})


def test_valid_ack_is_confirmed_in_the_receipt_and_verifies_offline(tmp_path):
    result, h, srv = _run(tmp_path, reply=_ack_reply())
    assert result["delivery"] == "confirmed" and "delivery_reason" not in result
    assert result["ack"] == {"action_id": result["action_id"], "idempotency_key": result["idempotency_key"],
                             "outcome": "success", "recipient": "deploy", "ts": TS}
    assert result["ack_key_id"] == key_id(RECIPIENT.verify_key)
    # offline: only the receipt and the pinned recipient key are needed
    assert delivery_problem(result, trusted(RECIPIENT)) is None
    assert delivery_problem(result, trusted(IMPOSTOR)) == "unknown_key"
    assert delivery_problem({**result, "ack": {**result["ack"], "outcome": "failure"}},
                            trusted(RECIPIENT)) == "bad_signature"
    assert _delivery_count(h, "confirmed") == 1


@pytest.mark.parametrize("reply,reason", [
    (_ack_reply(signer=IMPOSTOR, claim_key=RECIPIENT), "bad_signature"),   # the recipient's key id, another key
    (_ack_reply(signer=IMPOSTOR), "unknown_key"),
    (_ack_reply(action_id="another-action"), "mismatch_action_id"),
    (_ack_reply(outcome="failure"), "mismatch_outcome"),                  # 2xx, but the recipient says it failed
    (lambda request, status: b'{"ok":true}', "missing_ack"),                # no ack while required
    (lambda request, status: b'{"ack": {"action_id": 1}, "sig": "x", "key_id": "y"}', "malformed_ack"),
])
def test_a_bad_or_missing_ack_leaves_the_delivery_unconfirmed_with_its_reason(tmp_path, reply, reason):
    result, h, srv = _run(tmp_path, reply=reply)
    assert (result["delivery"], result["delivery_reason"]) == ("unconfirmed", reason)
    assert "ack" not in result and "ack_sig" not in result
    # HTTP said 2xx: the action succeeded and was not retried (no retry storm for a missing signature)
    assert (result["status"], result["attempts"]) == ("success", 1) and srv.keys[result["action_id"]] == 1
    assert _delivery_count(h, "unconfirmed", reason) == 1


def test_a_signed_refusal_confirms_the_failure(tmp_path):
    result, _, _ = _run(tmp_path, reply=_ack_reply(), status=403)
    assert (result["status"], result["delivery"], result["ack"]["outcome"]) == ("failure", "confirmed", "failure")


def test_without_a_recipient_key_the_delivery_is_not_requested(tmp_path):
    result, h, _ = _run(tmp_path, reply=_ack_reply(), ack=False)
    assert result["delivery"] == "not_requested" and "ack" not in result
    assert _delivery_count(h, "confirmed") is None


def test_an_ack_is_checked_even_when_not_required(tmp_path):
    result, _, _ = _run(tmp_path, reply=lambda request, status: b"", required=False)
    assert (result["delivery"], result["delivery_reason"]) == ("unconfirmed", "missing_ack")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_response_body_gives_a_delivery_never_an_exception(body):
    d = check_response(body, trusted(RECIPIENT), "a1", "a1", "success")
    assert d["delivery"] == "unconfirmed" and d["delivery_reason"] in (
        "missing_ack", "malformed_ack", "unknown_key", "bad_signature")


_text = st.text(max_size=40)


@settings(max_examples=100, deadline=None)
@given(action_id=_text, idem=_text, recipient=_text, ts=_text, outcome=st.sampled_from(["success", "failure"]),
       field=st.sampled_from(["action_id", "idempotency_key", "outcome", "recipient", "ts"]))
def test_a_signed_ack_confirms_and_any_edited_field_does_not(action_id, idem, recipient, ts, outcome, field):
    body = sign_ack(RECIPIENT, action_id, idem, outcome, recipient, ts)
    d = check_response(orjson.dumps(body), trusted(RECIPIENT), action_id, idem, outcome)
    assert d["delivery"] == "confirmed" and delivery_problem(
        {"type": "RESULT", "action_id": action_id, "idempotency_key": idem, "status": outcome, **d},
        trusted(RECIPIENT)) is None
    swap = {"success": "failure", "failure": "success"}
    edited = {**body["ack"], field: swap[outcome] if field == "outcome" else body["ack"][field] + "x"}
    d = check_response(orjson.dumps({**body, "ack": edited}), trusted(RECIPIENT), action_id, idem, outcome)
    assert (d["delivery"], d["delivery_reason"]) == ("unconfirmed", "bad_signature")


def test_config_takes_the_recipient_key_as_hex_base64_or_pub_file(tmp_path):
    init_keys(tmp_path, roles=("recipient-deploy",))
    vk = load_verify_key("recipient-deploy", tmp_path)
    for ack in ({"public_key": vk.encode().hex()}, {"public_key": base64.b64encode(vk.encode()).decode()},
                {"public_key_file": str(tmp_path / "recipient-deploy.pub"), "required": False}):
        cfg = config_from_dict({"backends": {"deploy": {"type": "webhook", "url": "http://127.0.0.1:1/x", "ack": ack}},
                                "default_backend": "deploy"})
        hook = cfg.build_backends(EXECUTOR)["deploy"]
        assert hook.ack_keys == {key_id(vk): vk} and hook.ack_required == ack.get("required", True)


@pytest.mark.parametrize("ack", [{"public_key": "abcd"}, {"public_key_file": "/nonexistent/x.pub"},
                                 {"public_key_file": "x.key"}, {"required": True}, {"public_key": "00" * 32,
                                                                                    "required": "yes"}, "key"])
def test_config_refuses_a_bad_ack_spec_in_one_line(ack):
    with pytest.raises(GatewatchError) as e:
        config_from_dict({"backends": {"deploy": {"type": "webhook", "url": "http://127.0.0.1:1/x", "ack": ack}},
                          "default_backend": "deploy"}).build_backends(EXECUTOR)
    assert str(e.value).startswith("config: backends.deploy.ack") or "backends.deploy.ack" in str(e.value)
    assert "\n" not in str(e.value)


def test_the_documented_recipient_snippet_produces_a_confirmed_ack():
    """docs/integrations/acks.md's ~20-line recipient, run as written."""
    import re
    from pathlib import Path
    doc = Path(__file__).resolve().parents[2] / "docs" / "integrations" / "acks.md"
    code = re.search(r"```python\n(.*?)```", doc.read_text(), re.S).group(1)
    ns: dict = {}
    exec(compile(code, str(doc), "exec"), ns)  # noqa: S102 - the documented snippet, our own file
    body = ns["ack_response"](RECIPIENT.encode(), {"id": "a1"}, "k1", 200, "deploy")
    d = check_response(body, trusted(RECIPIENT), "a1", "k1", "success")
    assert d["delivery"] == "confirmed", d
    assert sign_b64(RECIPIENT, canonical_json(d["ack"])) == d["ack_sig"]
