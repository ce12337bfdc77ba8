"""Span coverage: per service, the share of traces carrying every essential span name."""
from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from gatewatch.processors.scenario_traces import trace_records
from gatewatch.processors.span_coverage import CoverageMeter, SpanRef, coverage_report, spans_of_export

ESSENTIAL = {"checkout*": ["checkout.handle", "db.query"]}
NAMES = st.sampled_from(["checkout.handle", "db.query", "cache.get", "GET /api"])
TRACES = st.lists(st.tuples(st.sampled_from(["checkout", "checkout-eu", "web"]), st.sets(NAMES)), max_size=40)


def _export(trace_id: str, service: str, names: list[str], root: bool = True) -> bytes:
    spans = [{"traceId": trace_id, "spanId": f"{i:016x}", "name": n,
              **({"parentSpanId": "f" * 16} if i or not root else {})} for i, n in enumerate(names)]
    return orjson.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": service}}]}, "scopeSpans": [{"spans": spans}]}]})


def test_traces_are_judged_whole_across_records_and_attributed_to_their_root():
    m = CoverageMeter()
    m.add_record(_export("a" * 32, "checkout", ["GET /api", "checkout.handle"]))
    m.add_record(_export("a" * 32, "db", ["db.query"], root=False))  # the same trace's child service
    m.add_record(_export("b" * 32, "checkout", ["GET /api", "db.query"]))
    m.add_record(b"not otlp")
    rep = m.report(ESSENTIAL, 0.95)
    assert rep["services"]["checkout"] == {
        "traces": 2, "covered": 1, "coverage": 0.5, "essential": ["checkout.handle", "db.query"],
        "declared": True, "missing": {"checkout.handle": 1}, "status": "FAIL", "windows": []}
    assert "db" not in rep["services"]  # a child service's spans count for the root's trace
    assert rep["status"] == "FAIL" and rep["failing"] == ["checkout"] and rep["rejected_records"] == {"bad_protobuf": 1}


def test_undeclared_services_get_no_verdict():
    # services that are all UNDECLARED judged nothing: never an overall PASS (review finding 9)
    rep = coverage_report([("web", {"x"})], ESSENTIAL)
    assert rep["services"]["web"]["status"] == "UNDECLARED" and rep["status"] == "UNDECLARED"
    assert coverage_report([], ESSENTIAL)["status"] == "NO_DATA"
    both = coverage_report([("web", {"x"}), ("checkout", {"checkout.handle", "db.query"})], ESSENTIAL)
    assert both["status"] == "PASS"  # a declared service judged and passing


@given(TRACES)
def test_the_overall_status_is_pass_only_when_a_declared_service_was_judged(traces):
    rep = coverage_report(traces, ESSENTIAL, 0.5)
    statuses = [r["status"] for r in rep["services"].values()]
    if rep["status"] == "PASS":
        assert "PASS" in statuses and "FAIL" not in statuses
    assert (rep["status"] == "NO_DATA") == (not traces)


def test_proto_and_json_give_the_same_spans():
    from google.protobuf.json_format import Parse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    doc = orjson.loads(_export("0a" * 16, "checkout", ["GET /api", "db.query"]))
    for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # protobuf JSON: ids in base64
        import base64
        for k in ("traceId", "spanId", "parentSpanId"):
            if k in s:
                s[k] = base64.b64encode(bytes.fromhex(s[k])).decode()
    raw = Parse(orjson.dumps(doc), ExportTraceServiceRequest()).SerializeToString()
    assert spans_of_export(raw) == spans_of_export(_export("0a" * 16, "checkout", ["GET /api", "db.query"]))


@given(TRACES)
def test_coverage_is_a_share(traces):
    for r in coverage_report(traces, ESSENTIAL)["services"].values():
        assert 0.0 <= r["coverage"] <= 1.0 and r["covered"] <= r["traces"]


@given(TRACES, st.integers(0, 39), st.sampled_from(["checkout.handle", "db.query"]))
def test_adding_an_essential_span_never_lowers_coverage(traces, i, name):
    if not traces:
        return
    i %= len(traces)
    more = list(traces)
    more[i] = (traces[i][0], traces[i][1] | {name})
    before, after = coverage_report(traces, ESSENTIAL)["services"], coverage_report(more, ESSENTIAL)["services"]
    assert all(after[s]["coverage"] >= before[s]["coverage"] for s in before)


@given(TRACES)
def test_span_order_does_not_matter(traces):
    spans = [SpanRef(f"{t:032x}", svc, n, n == "GET /api") for t, (svc, names) in enumerate(traces) for n in sorted(names)]
    a, b = CoverageMeter(), CoverageMeter()
    a.add(spans)
    b.add(reversed(spans))
    assert a.report(ESSENTIAL) == b.report(ESSENTIAL)


def test_demo_traces_cover_about_the_drop_rate():
    m = CoverageMeter()
    for svc, doc in trace_records([{"name": "checkout", "routes": ["/a"]}], 0, 3_600_000, drop=0.01):
        m.add_record(orjson.dumps(doc), svc.encode())
    r = m.report({"checkout": ["checkout.handle", "db.query", "payment.authorize"]})["services"]["checkout"]
    assert r["traces"] == 3600 and 0.95 <= r["coverage"] < 1.0 and r["status"] == "PASS"


def test_windows_show_a_dip_the_total_hides():
    hour = 3_600_000
    traces = [("checkout", {"checkout.handle", "db.query"}, t * 60_000) for t in range(120)]
    traces[70] = ("checkout", {"db.query"}, 70 * 60_000)  # one bad trace in the second hour
    r = coverage_report(traces, ESSENTIAL, window_ms=hour)["services"]["checkout"]
    assert [(w["start"], w["traces"], w["covered"]) for w in r["windows"]] == [
        ("1970-01-01T00:00:00.000Z", 60, 60), ("1970-01-01T01:00:00.000Z", 60, 59)]
    assert sum(w["traces"] for w in r["windows"]) == r["traces"]


def test_a_trace_is_windowed_by_its_root_start():
    m = CoverageMeter()
    m.add([SpanRef("t", "checkout", "db.query", False, 10), SpanRef("t", "checkout", "GET /", True, 3_600_001)])
    assert m.report(ESSENTIAL)["services"]["checkout"]["windows"][0]["start"] == "1970-01-01T01:00:00.000Z"


@given(st.lists(st.tuples(st.sampled_from(["checkout", "web"]), st.sets(NAMES), st.integers(0, 10 * 3_600_000)),
                max_size=40))
def test_windows_partition_the_traces(traces):
    for r in coverage_report(traces, ESSENTIAL)["services"].values():
        assert sum(w["traces"] for w in r["windows"]) == r["traces"]
        assert sum(w["covered"] for w in r["windows"]) == r["covered"]
        assert all(0.0 <= w["coverage"] <= 1.0 for w in r["windows"])
