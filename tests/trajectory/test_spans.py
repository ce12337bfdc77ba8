"""canonical_contract_v1: typed rejection reasons (seed 002 §25.1)."""
import orjson
import pytest

from processors.spans import Rejected, Span, decode, dlq_record

GOOD = {"id": "s_1", "tenant": "t_a", "who": "dan", "did": "sale.post", "this": "order:1",
        "when": "2025-10-05T22:18:07Z", "confirmed_by": ["pos://register-7"], "status": "confirmed",
        "data": {"gross": 19.9}}


def test_valid_span_keeps_extra_fields_and_parses_time():
    r = decode(orjson.dumps(dict(GOOD, extra=1)))
    assert isinstance(r, Span)
    assert r.when_ms == 1759702687000 and r.doc["extra"] == 1 and r.id == "s_1" and r.tenant == "t_a"


def test_optional_fields_may_be_absent():
    doc = {k: GOOD[k] for k in ("id", "tenant", "who", "did", "this", "when")}
    assert isinstance(decode(orjson.dumps(doc)), Span)


@pytest.mark.parametrize("raw, reason", [
    (b"{not json", "not_json"),
    (b"", "not_json"),
    (b"[1,2]", "not_object"),
    (b'"s"', "not_object"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "who"}), "missing_field:who"),
    (orjson.dumps(dict(GOOD, id=None)), "missing_field:id"),
    (orjson.dumps({k: v for k, v in GOOD.items() if k != "when"}), "missing_field:when"),
    (orjson.dumps(dict(GOOD, tenant=7)), "bad_type:tenant"),
    (orjson.dumps(dict(GOOD, this="")), "bad_type:this"),
    (orjson.dumps(dict(GOOD, status=3)), "bad_type:status"),
    (orjson.dumps(dict(GOOD, when="yesterday")), "bad_time:when"),
    (orjson.dumps(dict(GOOD, when="2025-10-05T22:18:07")), "bad_time:when"),   # no offset
    (orjson.dumps(dict(GOOD, when="1759702687")), "bad_time:when"),            # epoch, not RFC 3339
    (orjson.dumps(dict(GOOD, when=1759702687)), "bad_type:when"),
    (orjson.dumps(dict(GOOD, confirmed_by="pos://x")), "not_array:confirmed_by"),
    (orjson.dumps(dict(GOOD, confirmed_by=[1])), "bad_type:confirmed_by"),
    (orjson.dumps(dict(GOOD, data=[1])), "not_object:data"),
])
def test_rejection_reasons(raw, reason):
    assert decode(raw) == Rejected(reason)


def test_dlq_record_keeps_raw_bytes_as_text():
    rec = dlq_record("gw.spans", 2, 41, "not_json", b"\xff{oops")
    assert rec == {"source_topic": "gw.spans", "partition": 2, "offset": 41, "reason": "not_json",
                   "payload": "\ufffd{oops"}
