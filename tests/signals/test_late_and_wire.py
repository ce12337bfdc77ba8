"""Late records per source partition, and every record we emit matches its schema."""
from __future__ import annotations

import fastavro
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.inputs import encode_avro
from gatewatch.processors.partials import PartitionAggregator
from gatewatch.processors.signals import SignalConfig, SignalTask, run_pipeline
from gatewatch.schemas import avro_schema, json_schema

from .gen import T0
from .mixed import mixed_feed


def req(ts, status=200):
    return orjson.dumps({"service": "api", "status": status, "latency_ms": 5, "ts": ts})


def test_late_is_judged_per_partition_against_max_minus_lateness():
    cfg = SignalConfig.from_policy({"signals": {"lateness": "60s"}})
    a = PartitionAggregator("metrics", 0, cfg)
    b = PartitionAggregator("metrics", 1, cfg)
    assert a.add(0, None, req(T0 + 100_000), None) is None
    assert a.add(1, None, req(T0 + 40_000), None) is None          # exactly at the watermark
    r = a.add(2, None, req(T0 + 39_999), None)
    assert r.reason == "late" and "watermark" in r.detail
    assert b.add(0, None, req(T0), None) is None                    # other partition: own stream time
    p = a.flush()
    assert p["watermark_ms"] == T0 + 40_000 and p["rejected"] == 1 and p["records"] == 3
    assert sum(x["n"] for x in p["buckets"]) == 2                   # the late one is not counted
    task = SignalTask(0, cfg)
    task.expect(["metrics:0"])
    assert task.apply(p) == []                     # watermark still before the first step end
    a.add(3, None, req(T0 + 300_000), None)
    batches = task.apply(a.flush())
    ends = [batch[0]["ts"] for batch in batches]
    # from the step after the earliest sample (on time, though it came second) to the watermark
    assert ends[0] == "2026-01-01T00:00:50.000Z" and ends[-1] == "2026-01-01T00:04:00.000Z"
    assert len(ends) == 20
    burn5 = [s for batch in batches for s in batch if s["name"] == "burn_rate_5m"]
    assert [s["samples"] for s in burn5] == [1] * 6 + [2] * 14


def test_aggregator_resumes_from_its_last_partial():
    a = PartitionAggregator("metrics", 0)
    a.add(0, None, req(T0 + 500_000), None)
    p = a.flush()
    resumed = PartitionAggregator.from_partial(p)
    assert resumed.add(1, None, req(T0), None).reason == "late"


def test_emitted_records_match_their_schemas():
    import jsonschema
    records = mixed_feed(3, 1200).records
    cfg = SignalConfig()
    batches, rejections = run_pipeline(records, cfg, flush_every=50)
    sig_avro = avro_schema("signal")
    sig_json = jsonschema.Draft202012Validator(json_schema("signal"))
    for batch in batches[:20] + batches[-20:]:
        for s in batch:
            assert fastavro.validation.validate(s, sig_avro)
            sig_json.validate(s)
            wire = dict(s, domain="requests", source="metrics:0", batch_n=len(batch))
            assert fastavro.validation.validate(wire, sig_avro)
            sig_json.validate(wire)
    dlq_json = jsonschema.Draft202012Validator(json_schema("dlq_record"))
    for r in rejections:
        assert fastavro.validation.validate(r, avro_schema("dlq_record"))
        dlq_json.validate(r)
    agg = PartitionAggregator("cdc", 0, cfg)
    for rec in records:
        if rec[0] == "cdc":
            agg.add(*rec[2:])
    partial = agg.flush()
    assert fastavro.validation.validate(partial, avro_schema("partial"))
    jsonschema.validate(partial, json_schema("partial"))


def test_input_examples_match_their_json_schemas():
    import jsonschema
    jsonschema.validate({"service": "a", "status": 200, "latency_ms": 3.5, "ts": "2026-01-01T00:00:00Z"},
                        json_schema("request_sample"))
    jsonschema.validate({"type": "gauge", "service": "a", "name": "invariant", "value": 0, "ts": T0},
                        json_schema("gauge_sample"))
    jsonschema.validate({"name": "INP", "value": 180, "rating": "good", "delta": 180, "id": "v4-1",
                         "navigationType": "navigate", "route": "/", "timestamp": T0}, json_schema("web_vitals"))
    env = {"op": "c", "ts_ms": T0, "before": None, "after": {"id": 1},
           "source": {"db": "shop", "table": "orders", "ts_ms": T0, "snapshot": "false"}}
    jsonschema.validate(env, json_schema("debezium_envelope"))
    jsonschema.validate({"schema": {}, "payload": env}, json_schema("debezium_envelope"))
    assert encode_avro("debezium_envelope", env)[0] == 0


def test_event_time_far_past_the_record_timestamp_is_rejected():
    a = PartitionAggregator("metrics", 0, SignalConfig())
    assert a.add(0, None, req(T0), T0).__class__ is type(None)
    r = a.add(1, None, req(T0 + 86_400_001), T0)
    assert r.reason == "future"
    assert a.max_event_ms == T0                       # the watermark did not jump
    assert a.add(2, None, req(T0 + 86_400_000), T0) is None


def test_partly_late_batch_record_says_so():
    a = PartitionAggregator("rum", 0, SignalConfig())
    beacon = {"name": "INP", "value": 100, "route": "/"}
    assert a.add(0, None, orjson.dumps([dict(beacon, ts=T0 + 500_000)]), None) is None
    r = a.add(1, None, orjson.dumps([dict(beacon, ts=T0), dict(beacon, ts=T0 + 500_000)]), None)
    assert r.reason == "late_partial" and "1 of 2" in r.detail
    r = a.add(2, None, orjson.dumps([dict(beacon, ts=T0)]), None)
    assert r.reason == "late"
    p = a.flush()
    assert p["rejected"] == 1 and sum(LogHistogram.from_json(x["h"]).count for x in p["buckets"]) == 2


_docs = st.fixed_dictionaries({}, optional={
    "service": st.sampled_from(["a", "b", "", 3]), "status": st.one_of(st.integers(-1, 700), st.text(max_size=3)),
    "latency_ms": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10, 10**9)),
    "ts": st.one_of(st.integers(-10**15, 10**19), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "x"])),
    "type": st.sampled_from(["gauge", "request"]), "name": st.sampled_from(["INP", "CLS", "invariant", "q"]),
    "value": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.booleans()),
    "route": st.sampled_from(["/", "/x"]), "cohort": st.sampled_from(["canary", "stable", ""]),
    "op": st.sampled_from(list("cudrtx")), "ts_ms": st.integers(-10**15, 10**19),
    "source": st.fixed_dictionaries({"db": st.just("d"), "table": st.just("t"),
                                     "ts_ms": st.integers(-10**15, 10**19)}),
    "after": st.dictionaries(st.sampled_from(["id", "x"]), st.one_of(st.none(), st.integers(-2**63, 2**63 - 1), st.text(max_size=2)))})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["metrics", "rum", "cdc"]), _docs,
                          st.one_of(st.none(), st.integers(-10**15, 10**19))), max_size=40),
       st.integers(1, 7))
def test_any_records_never_raise_through_both_stages(recs, flush_every):
    records = [(t, 0, i, None, orjson.dumps(d), kts) for i, (t, d, kts) in enumerate(recs)]
    # a CDC table keeps emitting each step until 7 days (the default retention) without a row
    # event: an example whose times jump days ahead ran ~60k steps (20-60 s). An hour's retention
    # keeps the same code paths, its expiry included, at ~360 steps.
    cfg = SignalConfig(cdc_retention_ms=3_600_000)
    batches, rejections = run_pipeline(records, cfg, flush_every=flush_every)
    assert all(isinstance(r["reason"], str) for r in rejections)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(
    st.fixed_dictionaries({"service": st.sampled_from(["a", "b"]), "status": st.sampled_from([200, 503, 99, "500"]),
                           "latency_ms": st.one_of(st.floats(0, 1e4), st.integers(-1, 10**4)),
                           "ts": st.integers(T0 - 300_000, T0 + 300_000)},
                          optional={"cohort": st.sampled_from(["canary", "", None]), "route": st.sampled_from(["/", None, 1])}),
    st.one_of(st.none(), st.integers(T0 - 90_000_000, T0))), max_size=60))
def test_aggregator_fast_path_equals_general_path(recs):
    fast = PartitionAggregator("metrics", 0, SignalConfig())
    general = PartitionAggregator("metrics", 0, SignalConfig())
    general.fast_path = False
    for i, (doc, kts) in enumerate(recs):
        v = orjson.dumps(doc)
        assert fast.add(i, None, v, kts) == general.add(i, None, v, kts)
    assert fast.flush() == general.flush()
