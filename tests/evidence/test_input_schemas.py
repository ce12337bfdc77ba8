"""The schema each input record came in, per (service, input, schema, histogram)."""
from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.input_schemas import SchemaKey, schema_report, schemas_of
from gatewatch.processors.span_coverage import spans_of_export


def _otlp_metric(body: dict) -> bytes:
    return orjson.dumps({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "pay"}}]},
        "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
        "scopeMetrics": [{"metrics": [{"name": "http.server.request.duration", **body}]}]}]})


def test_each_input_shape_names_its_schema():
    req = orjson.dumps({"service": "checkout", "status": 200, "latency_ms": 3, "ts": "2026-01-01T00:00:00Z"})
    assert schemas_of("metrics", req) == [SchemaKey("checkout", "metrics", "request_sample", "per-request samples")]
    gauge = orjson.dumps({"type": "gauge", "name": "invariant", "value": 0})
    assert schemas_of("metrics", gauge, b"checkout")[0].schema == "gauge_sample"
    prom = orjson.dumps({"name": "http_request_duration_seconds_bucket", "value": "3",
                         "labels": {"job": "api", "le": "0.5"}})
    assert schemas_of("metrics", prom) == [SchemaKey("api", "metrics", "prometheus adapter sample",
                                                     "prometheus classic (le buckets)")]
    assert schemas_of("otlp_metrics", _otlp_metric({"histogram": {"dataPoints": [{}]}}))[0].histogram == "explicit"
    exp = schemas_of("otlp_metrics", _otlp_metric({"exponentialHistogram": {"dataPoints": [{"scale": 3}]}}))[0]
    assert exp == SchemaKey("pay", "otlp_metrics", "otlp https://opentelemetry.io/schemas/1.26.0", "exponential scale=3")
    assert schemas_of("metrics", b"\x00\x00\x00\x00\x02rest")[0].schema == "avro id 2"
    assert schemas_of("rum", b"{{")[0].schema == "unreadable"


def test_proto_metrics_match_json():
    from google.protobuf.json_format import Parse
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    js = _otlp_metric({"exponentialHistogram": {"dataPoints": [{"scale": -2}]}})
    raw = Parse(js, ExportMetricsServiceRequest()).SerializeToString()
    assert schemas_of("otlp_metrics", raw) == schemas_of("otlp_metrics", js)


def test_report_totals_and_histogram_list():
    counts = Counter({SchemaKey("a", "metrics", "request_sample", "per-request samples"): 3,
                      SchemaKey("a", "metrics", "gauge_sample", "-"): 2})
    rep = schema_report(counts, {"request_sample": "sha256:abc"})
    assert rep["records"] == 5 and rep["histogram_schemas"] == ["per-request samples"]
    assert [r["version"] for r in rep["rows"]] == ["", "sha256:abc"]


@settings(deadline=None)  # the first example imports the OTLP protobuf modules: seconds on a loaded machine
@given(st.sampled_from(["metrics", "rum", "cdc", "otlp", "otlp_metrics", "x"]), st.binary(max_size=200))
def test_random_bytes_are_counted_never_raised(topic, raw):
    assert all(isinstance(k, SchemaKey) for k in schemas_of(topic, raw))
    assert isinstance(spans_of_export(raw), (list, str))


def _two_resources(kinds: list[dict]) -> bytes:
    return orjson.dumps({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
        "scopeMetrics": [{"metrics": [{"name": f"m{i}", **k} for i, k in enumerate(kinds)]}]} for svc in ("a", "b")]})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.sampled_from([{"histogram": {"dataPoints": [{}]}}, {"sum": {"dataPoints": [{}]}}]),
                         min_size=1, max_size=4), min_size=1, max_size=5), st.integers(0, 3))
def test_records_count_input_records_as_the_input_files_do(tmp_path_factory, otlp_records, plain):
    """An OTLP record with several resources and metrics is one input record (review finding 12):
    `records` agrees with input.files[].records, and verify checks it does."""
    import pytest

    from gatewatch.sinks.worm import evidence_files as ef
    from gatewatch.streams.app.evidence_inputs import input_docs
    path = tmp_path_factory.mktemp("in") / "inputs.ndjson"
    envs = [{"topic": "otlp_metrics", "key": "a", "payload": _two_resources(k).decode()} for k in otlp_records]
    envs += [{"topic": "gw.metrics", "key": "c", "payload": '{"type": "gauge", "name": "x", "value": 1}'}] * plain
    envs += [{"topic": "gw.elsewhere", "key": "c", "payload": "{}"}]  # not an input topic: read, not judged
    path.write_bytes(b"".join(orjson.dumps({"partition": 0, "offset": i, **e}) + b"\n" for i, e in enumerate(envs)))
    _cov, sch = input_docs([str(path)], {"checkout*": ["x"]}, 0.95)
    assert sch["records"] == len(otlp_records) + plain
    assert sch["input"]["files"][0]["records"] - sch["input"]["skipped"]["not_an_input_topic"] == sch["records"]
    assert all(r["records"] <= sch["records"] for r in sch["rows"])
    assert ef.check_schemas(sch).startswith(f"input schemas: {len(sch['rows'])} (service, input, schema) rows over "
                                            f"{len(otlp_records) + plain} records")
    with pytest.raises(ef.BundleError, match="record total"):
        ef.check_schemas({**sch, "records": sch["records"] + 1})
