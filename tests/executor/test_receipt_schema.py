"""Receipts as written match schemas/receipt.json and survive the Avro form (nulls dropped) unchanged."""
import io

import fastavro
import jsonschema
import orjson
from nacl.signing import SigningKey

from gatewatch.processors.canonical import canonical_json
from gatewatch.schemas import avro_schema, json_schema
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import DryRunBackend
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal, verify_receipt
from tests.executor.helpers import action_record, permitted, trusted

DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)


def _all_receipt_types(tmp_path):
    led = Ledger(tmp_path / "l.db", lambda body: seal(EXECUTOR, body))
    h = core.ActionHandler(led, {"dry-run": DryRunBackend()}, lambda r: "dry-run", trusted(DECIDER))
    h.handle(canonical_json(permitted(DECIDER, action_record(1))))
    h.handle(canonical_json(action_record(2)))  # no permit
    h.handle(b"junk")
    return [orjson.loads(r.body) for r in led.receipts_after(0)]


def test_receipts_match_json_schema(tmp_path):
    receipts = _all_receipt_types(tmp_path)
    assert [r["type"] for r in receipts] == ["INTENT", "RESULT", "REFUSED", "REFUSED"]
    for r in receipts:
        jsonschema.validate(r, json_schema("receipt"))


def test_avro_round_trip_keeps_id_and_signature(tmp_path):
    schema = avro_schema("receipt")
    for r in _all_receipt_types(tmp_path):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, r)
        buf.seek(0)
        back = {k: v for k, v in fastavro.schemaless_reader(buf, schema).items() if v is not None}
        assert back == r
        assert verify_receipt(back, trusted(EXECUTOR)) is None
