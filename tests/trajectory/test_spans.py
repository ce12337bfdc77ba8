"""canonical_contract_v1: typed rejection reasons (seed 002 §25.1)."""
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.spans import Rejected, Span, decode, dlq_record

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


def test_dlq_record_keeps_raw_bytes_exactly():
    import base64
    rec = dlq_record("gw.spans", 2, 41, "not_json", b"\xff{oops")
    assert rec == {"source_topic": "gw.spans", "partition": 2, "offset": 41, "reason": "not_json",
                   "detail": "", "payload": None, "payload_b64": base64.b64encode(b"\xff{oops").decode()}
    text = dlq_record("gw.spans", 2, 42, "missing_field:who", b'{"id":"s1"}')
    assert text["payload"] == '{"id":"s1"}' and "payload_b64" not in text


def test_when_out_of_range_is_bad_time():
    for when in ("9999-12-31T23:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z"):
        assert decode(orjson.dumps(dict(GOOD, when=when))) == Rejected("bad_time:when")


_json = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=30),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=8)
_field = st.one_of(_json, st.sampled_from(["x", "heartbeat-1", "2025-10-01T00:00:00Z", "2025-10-01T06:00:00+02:00",
                                           "9999-12-31T23:59:59Z", "completed", ""]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["id", "tenant", "who", "did", "this", "when", "confirmed_by",
                                                 "status", "data"]), _field, min_size=4), max_size=15))
def test_the_cycle_never_raises_on_arbitrary_json(docs):
    from gatewatch.processors.quality import CyclePolicy, SpanCycle
    c = SpanCycle(CyclePolicy())
    for d in docs:
        events, reason = c.process(orjson.dumps(d))
        assert reason is None or isinstance(reason, str)
    orjson.dumps(c.to_state())


def test_avro_spans_decode_like_json():
    from gatewatch.processors.spans import encode_avro
    doc = dict(GOOD, data={"gross": 19.9, "items": 3})
    a, j = decode(encode_avro(doc)), decode(orjson.dumps(doc))
    assert isinstance(a, Span) and a.when_ms == j.when_ms and a.doc == j.doc
    assert decode(b"\x00\x00\x00") == Rejected("bad_avro")
    assert decode(b"\x00\x00\x00\x00\x01abc") == Rejected("unknown_schema_id")
    assert decode(encode_avro(doc)[:12]) == Rejected("bad_avro")
    assert decode(encode_avro(dict(doc, when="nope"))) == Rejected("bad_time:when")
