"""Input decoding: every real producer format in, samples or a typed rejection out, never an exception."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.inputs import (
    Change,
    Gauge,
    Heartbeat,
    Rejection,
    Request,
    Vital,
    decode,
    dlq_record,
    encode_avro,
)

TS = 1_767_225_600_000


def j(obj) -> bytes:
    return orjson.dumps(obj)


def test_request_sample_formats():
    [s] = decode("metrics", b"api", j({"service": "api", "status": 503, "latency_ms": 12.5,
                                         "ts": "2026-01-01T00:00:00.250Z", "route": "/x"}), None)
    assert s == Request("api", "stable", "/x", 503, 12.5, TS + 250)
    [s] = decode("metrics", b"api", j({"status": "200", "latency_ms": 1, "ts": TS // 1000,
                                        "cohort": "canary"}), None)
    assert s.service == "api" and s.status == 200 and s.ts_ms == TS and s.cohort == "canary"
    [s] = decode("metrics", None, j({"service": "a", "status": 200, "latency_ms": 1}), TS)
    assert s.ts_ms == TS  # no timestamp: the Kafka record timestamp


def test_gauge_sample():
    [g] = decode("metrics", None, j({"type": "gauge", "service": "pool", "name": "invariant",
                                      "value": 2, "ts": TS}), None)
    assert g == Gauge("pool", "stable", "invariant", 2, TS)
    [g] = decode("metrics", None, j({"service": "obs", "name": "obs_uptime", "value": 0.999,
                                      "ts": "2026-01-01T00:00:00Z"}), None)
    assert g.name == "obs_uptime" and g.value == 0.999


def test_web_vitals_callback_object():
    beacon = {"name": "INP", "value": 184.0, "rating": "good", "delta": 184.0,
              "id": "v4-1700000000000-123", "navigationType": "navigate", "entries": [],
              "route": "/market/:id", "cohort": "canary", "timestamp": TS}
    [v] = decode("rum", b"/market/:id", j(beacon), None)
    assert v == Vital("web", "/market/:id", "canary", "inp", 184.0, TS)
    batch = [dict(beacon, name=m, value=0.05 if m == "CLS" else 900) for m in
             ("LCP", "CLS", "FCP", "TTFB")]
    for b in batch:
        del b["timestamp"]
    vs = decode("rum", b"/", j(batch), TS + 5)
    assert [v.metric for v in vs] == ["lcp", "cls", "fcp", "ttfb"]
    assert all(v.ts_ms == TS + 5 for v in vs)  # the Kafka record timestamp
    [v] = decode("rum", None, j({"name": "LCP", "value": 1, "page": "/p", "app": "shop", "ts": TS}), None)
    assert v.scope == "shop" and v.route == "/p"


def _envelope(op="u", snapshot=None, after=None, src_ts=TS - 1500, ts=TS):
    source = {"version": "2.5.0.Final", "connector": "postgresql", "name": "dbserver1",
              "ts_ms": src_ts, "db": "shop", "schema": "public", "table": "orders"}
    if snapshot is not None:
        source["snapshot"] = snapshot
    return {"before": None, "after": after if after is not None else {"id": 1, "total": 9.5},
            "source": source, "op": op, "ts_ms": ts, "transaction": None}


def test_debezium_with_and_without_wrapper():
    bare = _envelope()
    wrapped = {"schema": {"type": "struct", "fields": [], "name": "dbserver1.public.orders.Envelope"},
               "payload": bare}
    a = decode("cdc", b"shop.orders", j(bare), None)
    b = decode("cdc", b"shop.orders", j(wrapped), None)
    assert a == b == [Change("shop.orders", "shop.orders", "u", TS, 1500,
                             (("id", "number"), ("total", "number")))]


def test_debezium_snapshot_reads_have_no_lag():
    for op, snap in (("r", "true"), ("r", None), ("c", True), ("c", "last"), ("c", "first")):
        [c] = decode("cdc", None, j(_envelope(op=op, snapshot=snap)), None)
        assert c.lag_ms is None
    [c] = decode("cdc", None, j(_envelope(op="c", snapshot="false")), None)
    assert c.lag_ms == 1500


def test_debezium_delete_truncate_tombstone_heartbeat():
    env = _envelope(op="d")
    env["before"], env["after"] = {"id": 1}, None
    [c] = decode("cdc", None, j(env), None)
    assert c.shape == (("id", "number"),) and c.op == "d"
    env = _envelope(op="t")
    env["after"] = None
    [c] = decode("cdc", None, j(env), None)
    assert c.shape is None and c.lag_ms == 1500
    assert decode("cdc", b"shop.orders", None, None) == []
    assert decode("cdc", None, j({"schema": {}, "payload": None}), None) == []
    assert decode("cdc", None, j({"ts_ms": TS}), None) == [Heartbeat(TS)]


def test_avro_wire_format_round_trip():
    rec = {"service": "api", "status": 500, "latency_ms": 4.0, "ts": TS, "route": None, "cohort": "canary"}
    [s] = decode("metrics", None, encode_avro("request_sample", rec), None)
    assert s == Request("api", "canary", "", 500, 4.0, TS)
    [v] = decode("rum", None, encode_avro("web_vitals", {"name": "TTFB", "value": 80.0, "route": "/",
                                                          "timestamp": TS}), None)
    assert v.metric == "ttfb"
    env = _envelope()
    env.pop("transaction")
    [c] = decode("cdc", None, encode_avro("debezium_envelope", env), None)
    assert c.lag_ms == 1500



def test_avro_samples_carry_their_release_and_the_earlier_layouts_still_decode():
    """ids 6, 7 and 8 are request_sample, web_vitals and gauge_sample with `release`; ids 1, 3
    and 2, their layouts from before it, decode as they always did (a producer keeps the id it was built with)."""
    import fastavro

    from gatewatch.processors.inputs import AVRO_SCHEMA_IDS
    from gatewatch.schemas import avro_schema
    rec = {"service": "api", "status": 500, "latency_ms": 4.0, "ts": TS, "route": None, "cohort": "canary"}
    new = encode_avro("request_sample", dict(rec, release="2.4.1"))
    assert new[1:5] == (6).to_bytes(4, "big")
    assert decode("metrics", None, new, None) == [Request("api", "canary", "", 500, 4.0, TS, "2.4.1")]
    old = encode_avro("request_sample", rec, schema_id=1)
    assert decode("metrics", None, old, None) == [Request("api", "canary", "", 500, 4.0, TS)]
    vital = {"name": "TTFB", "value": 80.0, "route": "/", "timestamp": TS, "cohort": "canary"}
    [v] = decode("rum", None, encode_avro("web_vitals", dict(vital, release="9.0")), None)
    [w] = decode("rum", None, encode_avro("web_vitals", vital, schema_id=3), None)
    assert (v.release, w.release, v.metric, w.metric) == ("9.0", "", "ttfb", "ttfb")
    # the earlier layouts are the schemas as they were: same fields, in the same order
    assert [f["name"] for f in avro_schema("request_sample", ("release",))["fields"]] == \
        ["service", "route", "cohort", "status", "latency_ms", "ts"]
    assert [f["name"] for f in avro_schema("web_vitals", ("release",))["fields"]] == \
        [f["name"] for f in avro_schema("web_vitals")["fields"]][:-1]
    with pytest.raises(ValueError):
        encode_avro("request_sample", rec, schema_id=3)
    # an old body read with the new layout would fail: the id is what keeps them apart
    body = old[5:]
    with pytest.raises(Exception):
        fastavro.schemaless_reader(__import__("io").BytesIO(body), avro_schema("request_sample"))
    gauge = {"type": "gauge", "service": "api", "name": "invariant", "value": 1.0, "ts": TS, "cohort": "canary"}
    [g] = decode("metrics", None, encode_avro("gauge_sample", dict(gauge, release="3.1")), None)
    [h] = decode("metrics", None, encode_avro("gauge_sample", gauge, schema_id=2), None)
    assert (g.release, h.release, g.value, h.value) == ("3.1", "", 1.0, 1.0)
    assert sorted(AVRO_SCHEMA_IDS) == [1, 2, 3, 4, 6, 7, 8]

BAD = [
    ("metrics", b"{nope", "not_json"),
    ("metrics", b"[1]", "not_object"),
    ("metrics", b"", "empty"),
    ("metrics", j({"service": "a", "latency_ms": 1, "ts": TS}), "missing_field:status"),
    ("metrics", j({"service": "a", "status": True, "latency_ms": 1, "ts": TS}), "bad_type:status"),
    ("metrics", j({"service": "a", "status": 200, "latency_ms": "x", "ts": TS}), "bad_type:latency_ms"),
    ("metrics", j({"service": "a", "status": 200, "latency_ms": -1, "ts": TS}), "bad_value:latency_ms"),
    ("metrics", j({"service": "a", "status": 200, "latency_ms": 1, "ts": "yesterday"}), "bad_time:ts"),
    ("metrics", j({"service": "a", "status": 200, "latency_ms": 1}), "missing_field:ts"),
    ("metrics", j({"status": 200, "latency_ms": 1, "ts": TS}), "missing_field:service"),
    ("metrics", j({"type": "histogram", "service": "a"}), "unknown_format"),
    ("rum", j({"name": "FID", "value": 3, "route": "/", "ts": TS}), "bad_value:name"),
    ("rum", j({"name": "INP", "value": 3, "ts": TS}), "missing_field:route"),
    ("rum", j({"name": "INP", "route": "/", "ts": TS}), "missing_field:value"),
    ("cdc", j({"op": "x", "ts_ms": TS, "source": {}}), "bad_value:op"),
    ("cdc", j({"op": "c", "ts_ms": TS}), "missing_field:source"),
    ("cdc", j({"op": "c", "ts_ms": TS, "source": {"db": "a", "ts_ms": 1}}), "missing_field:source.table"),
    ("cdc", j({"op": "c", "source": {"db": "a", "table": "b", "ts_ms": 1}}), "missing_field:ts_ms"),
    ("nope", b"{}", "unknown_topic"),
    ("metrics", b"\x00\x00\x00\x00\x63abc", "unknown_schema_id"),
    ("metrics", b"\x00\x00", "bad_avro"),
]


def test_bad_records_get_typed_reasons():
    for topic, value, reason in BAD:
        r = decode(topic, None, value, None)
        assert isinstance(r, Rejection), (value, r)
        assert r.reason == reason, (value, r)


def test_dlq_record_keeps_bytes_and_offset():
    rec = dlq_record("metrics", 2, 41, b"api", b"\xff\x00", 7, Rejection("not_json", "x"))
    assert rec["offset"] == 41 and rec["payload_b64"] == "/wA=" and rec["payload"] is None
    assert rec["reason"] == "not_json" and rec["detail"] == "x"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.sampled_from(
        ["service", "status", "latency_ms", "ts", "name", "value", "route", "op", "ts_ms", "source",
         "payload", "schema", "after", "before", "db", "table", "type", "cohort", "snapshot"]), c, max_size=6),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(topic=st.sampled_from(["metrics", "rum", "cdc"]), doc=json_values, raw=st.binary(max_size=40),
       use_raw=st.booleans())
def test_decode_never_raises(topic, doc, raw, use_raw):
    try:
        value = raw if use_raw else orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError):
        value = raw
    r = decode(topic, b"k", value, None)
    assert isinstance(r, (list, Rejection))
    if isinstance(r, Rejection):
        assert r.reason and isinstance(r.detail, str)


@settings(max_examples=300, deadline=None)
@given(status=st.one_of(st.integers(0, 700), st.booleans(), st.text(max_size=3)),
       lat=st.one_of(st.floats(allow_nan=False), st.integers(-5, 10**6), st.none()),
       ts=st.one_of(st.integers(-10, 10**15), st.floats(0, 1e13, allow_nan=False)),
       svc=st.one_of(st.text(max_size=3), st.none()), cohort=st.one_of(st.none(), st.text(max_size=3)),
       route=st.one_of(st.none(), st.text(max_size=3), st.integers(-9, 9)))
def test_request_fast_path_equals_general_path(status, lat, ts, svc, cohort, route):
    d = {"status": status, "latency_ms": lat, "service": svc, "cohort": cohort, "route": route}
    fast = decode("metrics", b"k", orjson.dumps({**d, "ts": ts}), None)
    general = decode("metrics", b"k", orjson.dumps({**d, "time": ts}), None)
    if isinstance(general, Rejection):
        assert isinstance(fast, Rejection) and fast.reason.split(":")[0] == general.reason.split(":")[0]
    else:
        assert fast == general
