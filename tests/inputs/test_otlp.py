"""OTLP ExportTraceServiceRequest (Collector kafka exporter, JSON and protobuf) -> request samples."""
from pathlib import Path

import orjson
import pytest

from gatewatch.processors.inputs import InputOptions, Rejection, Request, decode
from gatewatch.processors.otlp import InputAggregator, OtlpBatch, decode_otlp
from tests.inputs import otlp_gen

FIXTURES = Path(__file__).parent / "fixtures"
OPTS = InputOptions(otlp_cohorts=otlp_gen.COHORTS)


def test_upstream_fixtures_parse_and_count_non_http_spans():
    # opentelemetry-proto examples/trace.json: one SERVER span without HTTP attributes
    b = decode_otlp((FIXTURES / "otlp_proto_examples_trace.json").read_bytes())
    assert b == OtlpBatch([], {"no_http_status": 1})
    # the Collector's ptrace JSON marshaler test data: a CLIENT span and a kind-less one, `status: {}`
    b = decode_otlp((FIXTURES / "collector_ptrace_json_test_tracesJSON.json").read_bytes())
    assert b == OtlpBatch([], {"not_server": 2})


def test_upstream_fixture_as_protobuf_too():
    from google.protobuf.json_format import Parse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    doc = orjson.loads((FIXTURES / "collector_ptrace_json_test_tracesJSON.json").read_bytes())
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                for k in ("traceId", "spanId", "parentSpanId"):
                    sp.pop(k, None)
                for ln in sp.get("links", []):
                    ln.pop("traceId"), ln.pop("spanId")
    pb = Parse(orjson.dumps(doc), ExportTraceServiceRequest()).SerializeToString()
    assert decode_otlp(pb) == OtlpBatch([], {"not_server": 2})


def _span(**kw):
    attrs = [{"key": k, "value": v} for k, v in kw.pop("attrs", {}).items()]
    sp = {"kind": 2, "startTimeUnixNano": "1800000000000000000", "endTimeUnixNano": "1800000000250500000",
          "attributes": attrs, "status": {}}
    sp.update(kw)
    return sp


def _req(spans, res=None):
    res = res if res is not None else [{"key": "service.name", "value": {"stringValue": "api"}}]
    return orjson.dumps({"resourceSpans": [{"resource": {"attributes": res}, "scopeSpans": [{"spans": spans}]}]})


def test_server_span_becomes_a_request_sample():
    v = _req([_span(attrs={"http.route": {"stringValue": "/x/{id}"},
                           "http.response.status_code": {"intValue": "404"}})])
    assert decode_otlp(v) == OtlpBatch([Request("api", "stable", "/x/{id}", 404, 250.5, 1_800_000_000_250)], {})


def test_error_status_maps_to_500_and_names_are_accepted():
    v = _req([_span(kind="SPAN_KIND_SERVER", status={"code": "STATUS_CODE_ERROR"},
                    attrs={"http.status_code": {"intValue": 200}}),
              _span(status={"code": 2}, attrs={"http.status_code": {"intValue": "503"}})])
    assert [s.status for s in decode_otlp(v).samples] == [500, 503]


def test_cohort_from_resource_attribute_through_the_table():
    res = [{"key": "service.name", "value": {"stringValue": "api"}},
           {"key": "service.version", "value": {"stringValue": "1.5.0"}}]
    v = _req([_span(attrs={"http.response.status_code": {"intValue": "200"}})], res)
    assert decode_otlp(v, OPTS).samples[0].cohort == "canary"
    assert decode_otlp(v).samples[0].cohort == "stable"
    other = InputOptions(otlp_cohort_attribute="deployment.environment", otlp_cohorts={"1.5.0": "canary"})
    assert decode_otlp(v, other).samples[0].cohort == "stable"


def test_service_falls_back_to_key_else_rejected():
    v = _req([_span(attrs={"http.response.status_code": {"intValue": "200"}})], res=[])
    assert decode_otlp(v, key=b"k").samples[0].service == "k"
    assert decode_otlp(v).reason == "missing_field:service.name"


@pytest.mark.parametrize("value,reason", [
    (b"", "empty"), (b"{nope", "not_json"), (b"[1]", "bad_protobuf"), (b'{"resourceSpans":[1]}', "bad_type:resourceSpans"),
    (b"\x7a\x01x", "bad_protobuf"), (b'{"a":1}', "missing_field:resourceSpans"),
    (b"\x0a\x05\x0a\x03", "bad_protobuf"), (b'{"resourceSpans":3}', "bad_type:resourceSpans"),
])
def test_malformed_batches_are_rejected(value, reason):
    r = decode_otlp(value)
    assert isinstance(r, Rejection) and r.reason == reason


def test_bad_server_span_values_reject_the_batch():
    bad_status = _req([_span(attrs={"http.response.status_code": {"intValue": "999"}})])
    assert decode_otlp(bad_status).reason == "bad_value:http.response.status_code"
    backwards = _req([_span(startTimeUnixNano="1800000000999000000",
                            attrs={"http.response.status_code": {"intValue": "200"}})])
    assert decode_otlp(backwards).reason == "bad_value:endTimeUnixNano"


def test_generated_stream_json_proto_and_requests_agree():
    for i, batch in enumerate(otlp_gen.batches(40)):
        want = decode("metrics", None, otlp_gen.requests_json(batch), None)
        j = decode_otlp(otlp_gen.otlp_json(batch, i), OPTS)
        p = decode_otlp(otlp_gen.otlp_proto(batch, i), OPTS)
        assert j == p
        assert j.samples == want


def test_aggregator_counts_ignored_spans_and_rejects_to_caller():
    agg = InputAggregator("otlp", 0, options=OPTS)
    batch = otlp_gen.batches(1)[0]
    assert agg.add(0, None, otlp_gen.otlp_json(batch), None) is None
    skipped = agg.take_skipped()
    n_not_server = sum(s["kind"] != 2 for s in batch)
    assert skipped["otlp_span:not_server"] == n_not_server
    assert agg.add(1, None, b"{bad", None).reason == "not_json"
    assert agg.flush()["rejected"] == 1


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(
                         st.sampled_from(["resourceSpans", "resource", "attributes", "scopeSpans", "spans", "kind",
                                          "status", "code", "key", "value", "intValue", "startTimeUnixNano",
                                          "endTimeUnixNano"]), c, max_size=4), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), _json.map(orjson.dumps)))
def test_decode_never_raises(value):
    r = decode_otlp(value)
    assert isinstance(r, (OtlpBatch, Rejection))
