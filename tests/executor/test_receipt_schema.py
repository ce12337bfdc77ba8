"""Receipts as written match schemas/receipt.json and survive the Avro form (nulls dropped) unchanged."""
import io

import fastavro
import jsonschema
import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.processors.acks import delivery_problem, sign_ack
from gatewatch.processors.canonical import canonical_json
from gatewatch.schemas import avro_schema, json_schema
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import DryRunBackend
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal, verify_receipt
from tests.executor.helpers import action_record, permitted, trusted

DECIDER, EXECUTOR, RECIPIENT = SigningKey(b"d" * 32), SigningKey(b"e" * 32), SigningKey(b"r" * 32)


def _all_receipt_types(tmp_path):
    led = Ledger(tmp_path / "l.db", lambda body: seal(EXECUTOR, body))
    h = core.ActionHandler(led, {"dry-run": DryRunBackend()}, lambda r: "dry-run", trusted(DECIDER))
    h.handle(canonical_json(permitted(DECIDER, action_record(1))))
    h.handle(canonical_json(action_record(2)))  # no permit
    h.handle(b"junk")
    return [orjson.loads(r.body) for r in led.receipts_after(0)]


def _with_deliveries(tmp_path) -> list[dict]:
    """Every receipt type plus RESULTs with a confirmed and an unconfirmed delivery ack."""
    receipts = _all_receipt_types(tmp_path)
    result = {k: v for k, v in receipts[1].items() if k not in ("id", "sig", "executor")}
    ack = sign_ack(RECIPIENT, result["action_id"], result["idempotency_key"], "success", "deploy",
                   "2026-12-07T01:00:00.000Z")
    confirmed = seal(EXECUTOR, {**result, "seq": 5, "delivery": "confirmed", "ack": ack["ack"],
                                "ack_key_id": ack["key_id"], "ack_sig": ack["sig"]})
    unconfirmed = seal(EXECUTOR, {**result, "seq": 6, "delivery": "unconfirmed", "delivery_reason": "bad_signature"})
    return [*receipts, confirmed, unconfirmed]


def test_receipts_match_json_schema(tmp_path):
    receipts = _with_deliveries(tmp_path)
    assert [r["type"] for r in receipts] == ["INTENT", "RESULT", "REFUSED", "REFUSED", "RESULT", "RESULT"]
    assert [r.get("delivery") for r in receipts] == [None, "not_requested", None, None, "confirmed", "unconfirmed"]
    for r in receipts:
        jsonschema.validate(r, json_schema("receipt"))


def test_json_schema_refuses_a_confirmed_delivery_without_its_ack(tmp_path):
    confirmed = _with_deliveries(tmp_path)[4]
    for drop in ("ack", "ack_sig", "ack_key_id"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({k: v for k, v in confirmed.items() if k != drop}, json_schema("receipt"))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**confirmed, "ack": {**confirmed["ack"], "extra": "x"}}, json_schema("receipt"))


def test_avro_round_trip_keeps_id_and_signature(tmp_path):
    schema = avro_schema("receipt")
    for r in _with_deliveries(tmp_path):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, r)
        buf.seek(0)
        back = {k: v for k, v in fastavro.schemaless_reader(buf, schema).items() if v is not None}
        assert back == r
        assert verify_receipt(back, trusted(EXECUTOR)) is None
        assert delivery_problem(back, trusted(RECIPIENT)) is None  # the ack survives the Avro form too
