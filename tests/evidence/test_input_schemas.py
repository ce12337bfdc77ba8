"""The schema each input record came in, per (service, input, schema, histogram)."""
from __future__ import annotations

from collections import Counter

import orjson
from hypothesis import given
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


@given(st.sampled_from(["metrics", "rum", "cdc", "otlp", "otlp_metrics", "x"]), st.binary(max_size=200))
def test_random_bytes_are_counted_never_raised(topic, raw):
    assert all(isinstance(k, SchemaKey) for k in schemas_of(topic, raw))
    assert isinstance(spans_of_export(raw), (list, str))
