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

import orjson

from gatewatch.processors.inputs import (
    MAX_TS_MS,
    InputOptions,
    Predecoded,
    Rejection,
    Request,
    decode,
    is_tombstone,
)
from gatewatch.processors.names import valid_name, why_not
from gatewatch.processors.partials import PartitionAggregator

OTLP_TOPIC = "otlp"                # the logical name; the Kafka topic is configurable
DEFAULT_KAFKA_TOPIC = "otlp_spans"  # the Collector kafka exporter's default traces topic
SPAN_KIND_SERVER = 2
STATUS_CODE_ERROR = 2
_KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
               "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_STATUS_ATTRS = ("http.response.status_code", "http.status_code")


class OtlpBatch(NamedTuple):
    samples: list
    ignored: dict   # reason -> span count


class _Bad(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.rejection = Rejection(reason, detail)


def decode_otlp(value: bytes | None, options: InputOptions | None = None,
                key: bytes | None = None) -> OtlpBatch | Rejection:
    """One exporter record -> OtlpBatch | Rejection. Never raises."""
    opts = options or InputOptions()
    if not value:
        return Rejection("empty", "record value is empty")
    ignored: Counter = Counter()
    out: list = []
    try:
        if value[:1] == b"{":
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError as e:
                return Rejection("not_json", str(e)[:200])
            _walk_json(doc, opts, key, out, ignored)
        else:
            _walk_proto(value, opts, key, out, ignored)
    except _Bad as b:
        return b.rejection
    except Exception as e:  # bad input must never crash a worker
        return Rejection("unknown_format", f"otlp: {type(e).__name__}: {e}"[:200])
    return OtlpBatch(out, dict(sorted(ignored.items())))


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
    try:
        status = int(http)
    except (TypeError, ValueError):
        raise _Bad("bad_value:http.response.status_code", repr(http)[:40]) from None
    if isinstance(http, bool) or not 100 <= status <= 599:
        raise _Bad("bad_value:http.response.status_code", repr(http)[:40])
    if status_code == STATUS_CODE_ERROR and status < 500:
        status = 500
    if start_ns <= 0 or end_ns <= 0:
        raise _Bad("missing_field:startTimeUnixNano" if start_ns <= 0 else "missing_field:endTimeUnixNano")
    if end_ns < start_ns:
        raise _Bad("bad_value:endTimeUnixNano", "before startTimeUnixNano")
    ts_ms = end_ns // 1_000_000
    if ts_ms >= MAX_TS_MS:
        raise _Bad("bad_time:endTimeUnixNano", "outside 1970..9000")
    route = attrs.get("http.route")
    out.append(Request(service, cohort[0], route if isinstance(route, str) else "", status,
                       (end_ns - start_ns) / 1_000_000, ts_ms, cohort[1]))


def _service(attrs: dict, key: bytes | None) -> str:
    svc = attrs.get("service.name")
    if not (isinstance(svc, str) and svc) and key:
        try:
            svc = key.decode("utf-8")
        except UnicodeDecodeError:
            svc = None
    if not (isinstance(svc, str) and svc):
        raise _Bad("missing_field:service.name", "resource has no service.name and the record no key")
    if not valid_name(svc):  # it would become a signed action's scope (processors.names)
        raise _Bad("bad_name", f"service.name: {why_not(svc)}")
    return svc


def _cohort(attrs: dict, opts: InputOptions) -> tuple[str, str]:
    """(cohort, release): the cohort the table maps the attribute's value to, and that value as
    the release the spans measure (the signals stage keeps it for the canary's gate)."""
    v = attrs.get(opts.otlp_cohort_attribute)
    if v is None:
        return opts.otlp_default_cohort, ""
    v = str(v)
    return opts.otlp_cohorts.get(v, opts.otlp_default_cohort), v if len(v) <= 128 else ""


# ---- otlp_json -----------------------------------------------------------------------------

def _any_json(v):
    """An OTLP JSON AnyValue -> a Python scalar (None for arrays, maps, bytes: unused here)."""
    if not isinstance(v, dict):
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        iv = v["intValue"]
        return int(iv) if isinstance(iv, (int, str)) and not isinstance(iv, bool) else None
    if "boolValue" in v:
        return v["boolValue"]
    if "doubleValue" in v:
        return v["doubleValue"]
    return None


def _attrs_json(items, where: str) -> dict:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _Bad(f"bad_type:{where}.attributes", type(items).__name__)
    out = {}
    for kv in items:
        if not isinstance(kv, dict) or not isinstance(kv.get("key"), str):
            raise _Bad(f"bad_type:{where}.attributes", "expected {key, value}")
        out[kv["key"]] = _any_json(kv.get("value"))
    return out


def _list(d: dict, f: str) -> list:
    v = d.get(f)
    if v is None:
        return []
    if not isinstance(v, list):
        raise _Bad(f"bad_type:{f}", type(v).__name__)
    return v


def _enum(v, names: dict, f: str) -> int:
    if v is None:
        return 0
    if isinstance(v, str):
        if v in names:
            return names[v]
        raise _Bad(f"bad_value:{f}", v[:40])
    if isinstance(v, bool) or not isinstance(v, int):
        raise _Bad(f"bad_type:{f}", type(v).__name__)
    return v


def _nanos(v, f: str) -> int:
    if v is None:
        return 0
    if isinstance(v, str) and v.isdigit():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise _Bad(f"bad_type:{f}", repr(v)[:40])


def _walk_json(doc, opts: InputOptions, key, out: list, ignored: Counter) -> None:
    if not isinstance(doc, dict):
        raise _Bad("not_object", type(doc).__name__)
    if "resourceSpans" not in doc:
        raise _Bad("missing_field:resourceSpans", "not an OTLP ExportTraceServiceRequest")
    for rs in _list(doc, "resourceSpans"):
        if not isinstance(rs, dict):
            raise _Bad("bad_type:resourceSpans", type(rs).__name__)
        res = rs.get("resource") or {}
        if not isinstance(res, dict):
            raise _Bad("bad_type:resource", type(res).__name__)
        rattrs = _attrs_json(res.get("attributes"), "resource")
        service = cohort = None
        for ss in _list(rs, "scopeSpans"):
            if not isinstance(ss, dict):
                raise _Bad("bad_type:scopeSpans", type(ss).__name__)
            for sp in _list(ss, "spans"):
                if not isinstance(sp, dict):
                    raise _Bad("bad_type:spans", type(sp).__name__)
                if _enum(sp.get("kind"), _KIND_NAMES, "kind") != SPAN_KIND_SERVER:
                    ignored["not_server"] += 1
                    continue
                if service is None:
                    service, cohort = _service(rattrs, key), _cohort(rattrs, opts)
                st = sp.get("status") or {}
                if not isinstance(st, dict):
                    raise _Bad("bad_type:status", type(st).__name__)
                _sample(service, cohort, _attrs_json(sp.get("attributes"), "span"),
                        _nanos(sp.get("startTimeUnixNano"), "startTimeUnixNano"),
                        _nanos(sp.get("endTimeUnixNano"), "endTimeUnixNano"),
                        _enum(st.get("code"), _STATUS_NAMES, "status.code"), ignored, out)


# ---- otlp_proto ----------------------------------------------------------------------------

def _any_proto(v):
    which = v.WhichOneof("value")
    if which in ("string_value", "int_value", "bool_value", "double_value"):
        return getattr(v, which)
    return None


def _walk_proto(value: bytes, opts: InputOptions, key, out: list, ignored: Counter) -> None:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    try:
        req = ExportTraceServiceRequest.FromString(value)
    except DecodeError as e:
        raise _Bad("bad_protobuf", str(e)[:200]) from None
    if not req.resource_spans:  # non-empty bytes of unknown fields only: not a trace export
        raise _Bad("bad_protobuf", "no resource_spans")
    for rs in req.resource_spans:
        rattrs = {kv.key: _any_proto(kv.value) for kv in rs.resource.attributes}
        service = cohort = None
        for ss in rs.scope_spans:
            for sp in ss.spans:
                if sp.kind != SPAN_KIND_SERVER:
                    ignored["not_server"] += 1
                    continue
                if service is None:
                    service, cohort = _service(rattrs, key), _cohort(rattrs, opts)
                _sample(service, cohort, {kv.key: _any_proto(kv.value) for kv in sp.attributes},
                        sp.start_time_unix_nano, sp.end_time_unix_nano, sp.status.code, ignored, out)


# ---- aggregation with the policy's input options ---------------------------------------------

class InputAggregator(PartitionAggregator):
    """A PartitionAggregator that decodes with the policy's InputOptions (RUM route templates,
    OTLP cohorts) and keeps per-reason counts of what it skipped without a rejection
    (ignored spans, Debezium tombstones) until `take_skipped()`."""

    def __init__(self, topic: str, partition: int, config=None, options: InputOptions | None = None):
        super().__init__(topic, partition, config)
        self.options = options or InputOptions()
        self.skipped: Counter = Counter()

    def add(self, offset, key, value, kafka_ts_ms):
        if self.topic == "metrics":  # no options apply; keep the fast path
            return super().add(offset, key, value, kafka_ts_ms)
        if self.topic == OTLP_TOPIC:
            res = decode_otlp(value, self.options, key)
            if type(res) is OtlpBatch:
                for why, n in res.ignored.items():
                    self.skipped[f"otlp_span:{why}"] += n
                res = res.samples
        else:
            res = decode(self.topic, key, value, kafka_ts_ms, self.options)
            if type(res) is list and not res and is_tombstone(self.topic, value):
                self.skipped["cdc:tombstone"] += 1
        return super().add(offset, key, Predecoded(res), kafka_ts_ms)

    def take_skipped(self) -> Counter:
        out, self.skipped = self.skipped, Counter()
        return out


OtlpAggregator = InputAggregator
