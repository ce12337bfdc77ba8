"""OTLP traces -> request samples: what the OpenTelemetry Collector's Kafka exporter writes.

`decode_otlp(value, options, key=None)` takes one Kafka record value holding an
`ExportTraceServiceRequest` and returns `OtlpBatch(samples, ignored)` or a `Rejection`
(gatewatch.processors.inputs). Pure: no I/O, no clock.

Encodings, told apart by content (the exporter sends no header we could rely on):
- `otlp_json`: the Collector's JSON marshaler (first byte `{`): camelCase fields, lowercase hex
  ids, 64-bit integers as decimal strings (plain numbers are accepted too), enums as numbers
  (their names, e.g. "SPAN_KIND_SERVER", are accepted too), `status` possibly `{}`.
- `otlp_proto`: the protobuf encoding (anything else), parsed with the `opentelemetry-proto`
  package.

Every SERVER span (kind 2) with an HTTP status becomes one `Request` sample:
- service = resource attribute `service.name` (else the record key; else the batch is rejected),
- route = span attribute `http.route` ("" when absent),
- status = `http.response.status_code` (or the older `http.status_code`); when the span status
  code is ERROR and the HTTP status is below 500 the sample's status is 500, because gatewatch's
  error definition is "status >= 500" and the instrumentation said this request failed,
- latency_ms = (end - start) ns / 1e6, event time ts_ms = end ns // 1e6 (floor),
- cohort = options.cohorts[resource attribute options.cohort_attribute] (default attribute
  `service.version`), options.default_cohort ("stable") when unset or unmapped.
Spans that are not SERVER spans, and SERVER spans without an HTTP status (gRPC, messaging), are
counted in `ignored` ({"not_server": n, "no_http_status": m}) and otherwise skipped. A batch that
is not OTLP, or has a SERVER span with bad values, is rejected as a whole (it goes to the DLQ).

`OtlpAggregator` (and, for every input topic, `InputAggregator`) is gatewatch.processors.partials'
PartitionAggregator with the policy's input options: it decodes each record once with them and
keeps the ignored-span counts for the worker to export.
"""
from __future__ import annotations

from collections import Counter
from typing import NamedTuple

from gatewatch.processors.inputs import (
    MAX_TS_MS,
    Bad,
    InputOptions,
    Rejection,
    Request,
)
from gatewatch.processors.inputs.otlp_common import (
    any_proto,
    attrs_json,
    cohort_of,
    decode_export,
    enum_of,
    http_status,
    list_of,
    nanos,
    service_of,
)
from gatewatch.processors.inputs.otlp_metrics import decode_otlp_metrics
from gatewatch.processors.partials import PartitionAggregator

OTLP_TOPIC = "otlp"                # the logical name; the Kafka topic is configurable
DEFAULT_KAFKA_TOPIC = "otlp_spans"  # the Collector kafka exporter's default traces topic
OTLP_METRICS_TOPIC = "otlp_metrics"  # logical name of the Collector's metrics topic
DEFAULT_METRICS_KAFKA_TOPIC = "otlp_metrics"  # the Collector kafka exporter's default metrics topic
SPAN_KIND_SERVER = 2
STATUS_CODE_ERROR = 2
_KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
               "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_STATUS_ATTRS = ("http.response.status_code", "http.status_code")


class OtlpBatch(NamedTuple):
    samples: list
    ignored: dict   # reason -> span count


def decode_otlp(value: bytes | None, options: InputOptions | None = None,
                key: bytes | None = None) -> OtlpBatch | Rejection:
    """One exporter record -> OtlpBatch | Rejection. Never raises."""
    opts = options or InputOptions()
    ignored: Counter = Counter()
    out: list = []
    bad = decode_export(value, "otlp", lambda doc: _walk_json(doc, opts, key, out, ignored),
                        lambda raw: _walk_proto(raw, opts, key, out, ignored))
    return bad if bad is not None else OtlpBatch(out, dict(sorted(ignored.items())))


# ---- one span -> one sample ----------------------------------------------------------------

def _sample(service: str, cohort: tuple, attrs: dict, start_ns: int, end_ns: int,
            status_code: int, ignored: Counter, out: list) -> None:
    http = None
    for a in _STATUS_ATTRS:
        if attrs.get(a) is not None:
            http = attrs[a]
            break
    if http is None:
        ignored["no_http_status"] += 1
        return
    status = http_status(http)
    if status_code == STATUS_CODE_ERROR and status < 500:
        status = 500
    if start_ns <= 0 or end_ns <= 0:
        raise Bad("missing_field:startTimeUnixNano" if start_ns <= 0 else "missing_field:endTimeUnixNano")
    if end_ns < start_ns:
        raise Bad("bad_value:endTimeUnixNano", "before startTimeUnixNano")
    ts_ms = end_ns // 1_000_000
    if ts_ms >= MAX_TS_MS:
        raise Bad("bad_time:endTimeUnixNano", "outside 1970..9000")
    route = attrs.get("http.route")
    out.append(Request(service, cohort[0], route if isinstance(route, str) else "", status,
                       (end_ns - start_ns) / 1_000_000, ts_ms, cohort[1]))


# ---- otlp_json -----------------------------------------------------------------------------

def _walk_json(doc, opts: InputOptions, key, out: list, ignored: Counter) -> None:
    if not isinstance(doc, dict):
        raise Bad("not_object", type(doc).__name__)
    if "resourceSpans" not in doc:
        raise Bad("missing_field:resourceSpans", "not an OTLP ExportTraceServiceRequest")
    for rs in list_of(doc, "resourceSpans"):
        if not isinstance(rs, dict):
            raise Bad("bad_type:resourceSpans", type(rs).__name__)
        res = rs.get("resource") or {}
        if not isinstance(res, dict):
            raise Bad("bad_type:resource", type(res).__name__)
        rattrs = attrs_json(res.get("attributes"), "resource")
        service = cohort = None
        for ss in list_of(rs, "scopeSpans"):
            if not isinstance(ss, dict):
                raise Bad("bad_type:scopeSpans", type(ss).__name__)
            for sp in list_of(ss, "spans"):
                if not isinstance(sp, dict):
                    raise Bad("bad_type:spans", type(sp).__name__)
                if enum_of(sp.get("kind"), _KIND_NAMES, "kind") != SPAN_KIND_SERVER:
                    ignored["not_server"] += 1
                    continue
                if service is None:
                    service, cohort = service_of(rattrs, key), cohort_of(rattrs, opts)
                st = sp.get("status") or {}
                if not isinstance(st, dict):
                    raise Bad("bad_type:status", type(st).__name__)
                _sample(service, cohort, attrs_json(sp.get("attributes"), "span"),
                        nanos(sp.get("startTimeUnixNano"), "startTimeUnixNano"),
                        nanos(sp.get("endTimeUnixNano"), "endTimeUnixNano"),
                        enum_of(st.get("code"), _STATUS_NAMES, "status.code"), ignored, out)


# ---- otlp_proto ----------------------------------------------------------------------------

def _walk_proto(value: bytes, opts: InputOptions, key, out: list, ignored: Counter) -> None:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    try:
        req = ExportTraceServiceRequest.FromString(value)
    except DecodeError as e:
        raise Bad("bad_protobuf", str(e)[:200]) from None
    if not req.resource_spans:  # non-empty bytes of unknown fields only: not a trace export
        raise Bad("bad_protobuf", "no resource_spans")
    for rs in req.resource_spans:
        rattrs = {kv.key: any_proto(kv.value) for kv in rs.resource.attributes}
        service = cohort = None
        for ss in rs.scope_spans:
            for sp in ss.spans:
                if sp.kind != SPAN_KIND_SERVER:
                    ignored["not_server"] += 1
                    continue
                if service is None:
                    service, cohort = service_of(rattrs, key), cohort_of(rattrs, opts)
                _sample(service, cohort, {kv.key: any_proto(kv.value) for kv in sp.attributes},
                        sp.start_time_unix_nano, sp.end_time_unix_nano, sp.status.code, ignored, out)


# ---- aggregation with the policy's input options ---------------------------------------------

class InputAggregator(PartitionAggregator):
    """A PartitionAggregator that also reads the Collector's topics: OTLP traces (SERVER spans become
    request samples) and OTLP metrics (points of series, processors.inputs.otlp_metrics); spans and
    data points skipped without a rejection are counted in `skipped` by reason."""

    def _decode(self, key, value, kafka_ts_ms):
        if self.topic == OTLP_TOPIC:
            res = decode_otlp(value, self.options, key)
            if type(res) is OtlpBatch:
                for why, n in res.ignored.items():
                    self.skipped[f"otlp_span:{why}"] += n
                res = res.samples
            return res
        if self.topic == OTLP_METRICS_TOPIC:
            return decode_otlp_metrics(value, self.options, key, self.skipped)
        return super()._decode(key, value, kafka_ts_ms)

    def _skip_empty(self, value) -> None:
        if self.topic not in (OTLP_TOPIC, OTLP_METRICS_TOPIC):  # those count what they skipped by reason
            super()._skip_empty(value)
