"""OTLP metrics as the OpenTelemetry Collector's kafka exporter writes them (its metrics topic, default
`otlp_metrics`): an ExportMetricsServiceRequest, `otlp_proto` or `otlp_json`, told apart by content.

Data points become Points (processors.inputs.points): Histogram (explicit bounds), ExponentialHistogram,
Sum (monotonic: a counter, cumulative or delta temporality; non-monotonic: a gauge) and Gauge.
The HTTP server request duration (semantic conventions: `http.server.request.duration` in s, or the
older `http.server.duration` in ms, with `http.response.status_code` / `http.status_code`) is the
"requests" role: request counts, errors (status >= 500) and latency, as per-request samples give.
Service = resource `service.name` (else the record key; else that resource is rejected), cohort and
release from the `otlp.cohort_attribute` (resource or point attribute) through `otlp.cohorts`.
Other metrics feed the declared signals that name them; the rest is skipped and counted.

A series is the OTel data model's timeseries: metric name, point attributes, and the producer (the
resource's attributes and the instrumentation scope), so the replicas of one service stay apart.
A resource that cannot be read is rejected alone: the record's other resources count, and the
record goes to gw.dlq as `resource:<reason>` (partly counted: not to be re-fed). A point without a
value (the NO_RECORDED_VALUE flag, Prometheus' staleness) or an HTTP status is skipped and counted;
a request point without a status but with `error.type` failed (status 500, as for traces).
"""
from __future__ import annotations

import hashlib
import math

import orjson

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
from gatewatch.processors.inputs.points import Point, series_id
from gatewatch.processors.inputs.samples import MAX_TS_MS, Bad, Rejection

REQUEST_METRICS = {"http.server.request.duration": 1000.0, "http.server.duration": 1.0}  # -> ms
TIME_UNITS_MS = {"s": 1000.0, "ms": 1.0, "us": 0.001, "ns": 0.000001}  # UCUM, as OTel writes units
NO_RECORDED_VALUE = 1  # DataPointFlags: the point marks a gap (the Prometheus staleness marker)
_STATUS_ATTRS = ("http.response.status_code", "http.status_code")
_TEMPORALITY = {"AGGREGATION_TEMPORALITY_UNSPECIFIED": 0, "AGGREGATION_TEMPORALITY_DELTA": 1,
                "AGGREGATION_TEMPORALITY_CUMULATIVE": 2}
CUMULATIVE = 2


def _ms(ns: int, f: str) -> int:
    ms = ns // 1_000_000
    if not 0 < ms < MAX_TS_MS:
        raise Bad(f"bad_time:{f}", "outside 1970..9000")
    return ms


def _count(v, f: str) -> int:
    n = nanos(v, f)  # uint64 counts: JSON strings or numbers
    if n < 0:
        raise Bad(f"bad_value:{f}", str(n))
    return n


class _Metric:
    """What every point of one metric shares: its producer, and the roles it feeds ("requests", or
    the declared signals its points' attributes match, each with the factor to the signal's unit)."""
    __slots__ = ("name", "role", "unit", "unit_ms", "service", "rattrs", "producer", "opts", "out", "skipped")

    def __init__(self, name, role, unit, unit_ms, service, rattrs, producer, opts, out, skipped):
        self.name, self.role, self.unit, self.unit_ms = name, role, unit, unit_ms
        self.service, self.rattrs, self.producer = service, rattrs, producer
        self.opts, self.out, self.skipped = opts, out, skipped

    def emit(self, attrs: dict, kind: str, cumulative: bool, start_ns: int, t_ns: int, value: float,
             flags: int = 0, **hist) -> None:
        if flags & NO_RECORDED_VALUE or math.isnan(value):
            self.skipped["no_value"] += 1
            return
        if math.isinf(value):
            self.skipped["not_finite"] += 1
            return
        if self.role == "requests":
            status = _status(attrs)
            if status is None:
                self.skipped["no_http_status"] += 1
                return
            self.out.append(self._point("requests", attrs, kind, cumulative, start_ns, t_ns, value, status,
                                        self.unit_ms, hist))
            return
        labels = {k: str(v) for k, v in attrs.items() if v is not None}
        for d in self.opts.declared_metrics.get(self.name, ()):
            if d.matches(labels):
                factor = TIME_UNITS_MS[self.unit] / TIME_UNITS_MS[d.unit] \
                    if self.unit in TIME_UNITS_MS and d.unit in TIME_UNITS_MS else 1.0
                self.out.append(self._point(d.name, attrs, kind, cumulative, start_ns, t_ns,
                                            value if kind == "histogram" else value * factor, None, factor, hist))

    def _point(self, role, attrs, kind, cumulative, start_ns, t_ns, value, status, factor, hist) -> Point:
        cohort, release = cohort_of({**self.rattrs, **attrs}, self.opts)
        labels = {k: str(v) for k, v in attrs.items() if v is not None}
        start = _ms(start_ns, "startTimeUnixNano") if start_ns else None
        if "bounds" in hist:
            hist = dict(hist, bounds=tuple(b * factor for b in hist["bounds"]))
        elif "scale" in hist:
            hist = dict(hist, unit=factor)
        # a cumulative series counts from its start time: two processes with the same resource
        # (no service.instance.id) are two series, and a restart starts a new one
        series = f"{series_id(self.name, labels)}@{self.producer}" + (f"#{start}" if cumulative and start else "")
        return Point(self.service, cohort, release, role, series, kind, cumulative, start,
                     _ms(t_ns, "timeUnixNano"), status, value, **hist, origin=f"{self.producer}@{start}")


def _status(attrs: dict) -> int | None:
    """A request point's HTTP status; 500 when it has none but `error.type` (it failed before a
    response: semantic conventions), None when it has neither."""
    raw = next((attrs[a] for a in _STATUS_ATTRS if attrs.get(a) is not None), None)
    if raw is None:
        return 500 if attrs.get("error.type") is not None else None
    return http_status(raw)


def producer_id(rattrs: dict, scope_name: str, scope_version: str) -> str:
    """The producer part of a series' identity: its resource attributes and instrumentation scope
    (the same for otlp_json and otlp_proto: otlp_common reads values to the same Python types)."""
    attrs = {k: str(v) if type(v) is int and not -2**63 <= v < 2**64 else v for k, v in rattrs.items()}
    body = orjson.dumps([attrs, scope_name, scope_version], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(body, digest_size=8).hexdigest()


def _metric(name: str, unit: str, service: str, rattrs: dict, producer: str, opts, skipped, out) -> _Metric:
    """A request metric or a declared one (the walkers skip the rest before asking for a service)."""
    if name in REQUEST_METRICS:
        unit_ms = TIME_UNITS_MS.get(unit, REQUEST_METRICS[name])
        return _Metric(name, "requests", unit, unit_ms, service, rattrs, producer, opts, out, skipped)
    return _Metric(name, None, unit, 1.0, service, rattrs, producer, opts, out, skipped)


def _explicit(m: _Metric, attrs, cumulative, start, t, count, bounds, counts, flags) -> None:
    if flags & NO_RECORDED_VALUE:  # a gap marker: its other fields mean nothing
        m.skipped["no_value"] += 1
        return
    if not counts and not bounds:  # only a count (and sum) is known: its observations have no place
        counts = [count]
    if len(counts) != len(bounds) + 1:
        raise Bad("bad_value:bucketCounts", f"{len(counts)} counts for {len(bounds)} bounds")
    if any(not math.isfinite(b) for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise Bad("bad_value:explicitBounds", "not finite and strictly increasing")
    m.emit(attrs, "histogram", cumulative, start, t, float(count), flags, bounds=tuple(bounds), counts=tuple(counts))


def _exponential(m: _Metric, attrs, cumulative, start, t, count, scale, zero, offset, counts, flags) -> None:
    if flags & NO_RECORDED_VALUE:
        m.skipped["no_value"] += 1
        return
    if not -10 <= scale <= 20:
        raise Bad("bad_value:scale", str(scale))
    m.emit(attrs, "histogram", cumulative, start, t, float(count), flags, counts=tuple(counts), scale=scale,
           offset=offset, zero=zero)


def decode_otlp_metrics(value: bytes | None, opts, key: bytes | None, skipped) -> list | Rejection:
    """One exporter record -> Points (skipped data points counted in `skipped` by reason) | Rejection.
    A resource that cannot be read leaves the others' points, and a Rejection after them."""
    out: list = []
    bad = decode_export(value, "otlp_metrics", lambda doc: walk_json(doc, opts, key, out, skipped),
                        lambda raw: walk_proto(raw, opts, key, out, skipped))
    return bad if bad is not None else out


def _each_resource(resources: list, out: list, walk) -> None:
    """walk(resource) for each; a resource that raises Bad loses the points it added. Nothing left
    to count: the record's rejection; else a `resource:<reason>` Rejection ends `out`."""
    refused = []
    for i, rm in enumerate(resources):
        mark = len(out)
        try:
            walk(rm)
        except Bad as b:
            del out[mark:]
            refused.append((i, b.rejection))
    if not refused:
        return
    (i, first) = refused[0]
    if not out:  # nothing of the record counts: it is refused whole, as it would be alone
        raise Bad(first.reason, first.detail)
    out.append(Rejection(f"resource:{first.reason}", f"{len(refused)} of {len(resources)} resources refused, "
                         f"the others counted (do not re-feed); resource {i}: {first.detail}"[:400]))


def walk_json(doc, opts, key, out: list, skipped) -> None:
    if not isinstance(doc, dict):
        raise Bad("not_object", type(doc).__name__)
    if "resourceMetrics" not in doc:
        raise Bad("missing_field:resourceMetrics", "not an OTLP ExportMetricsServiceRequest")
    _each_resource(list_of(doc, "resourceMetrics"), out, lambda rm: _resource_json(rm, opts, key, out, skipped))


def _resource_json(rm, opts, key, out: list, skipped) -> None:
    if not isinstance(rm, dict):
        raise Bad("bad_type:resourceMetrics", type(rm).__name__)
    rattrs = attrs_json((rm.get("resource") or {}).get("attributes"), "resource")
    service = None
    for sm in list_of(rm, "scopeMetrics"):
        scope = sm.get("scope") if isinstance(sm, dict) else None
        scope = scope if isinstance(scope, dict) else {}
        producer = producer_id(rattrs, str(scope.get("name") or ""), str(scope.get("version") or ""))
        for metric in list_of(sm, "metrics"):
            if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
                raise Bad("bad_type:metrics", "expected {name, ...}")
            if metric["name"] not in REQUEST_METRICS and metric["name"] not in opts.declared_metrics:
                skipped["undeclared_metric"] += 1  # before the service: a resource with nothing we read
                continue
            service = service or service_of(rattrs, key)
            m = _metric(metric["name"], str(metric.get("unit") or ""), service, rattrs, producer, opts, skipped, out)
            _points_json(m, metric, skipped)


def _flags(p: dict) -> int:
    f = p.get("flags")
    return f if isinstance(f, int) and not isinstance(f, bool) else 0


def _points_json(m: _Metric, metric: dict, skipped) -> None:
    if not any(isinstance(metric.get(k), dict) for k in ("histogram", "exponentialHistogram", "sum", "gauge")):
        skipped[f"otlp_metric:{'summary' if 'summary' in metric else 'empty'}"] += 1
    for kind in ("histogram", "exponentialHistogram", "sum", "gauge"):
        body = metric.get(kind)
        if not isinstance(body, dict):
            continue
        cumulative = enum_of(body.get("aggregationTemporality"), _TEMPORALITY, "aggregationTemporality") == CUMULATIVE
        for p in list_of(body, "dataPoints"):
            attrs = attrs_json(p.get("attributes"), "dataPoint")
            start, t = nanos(p.get("startTimeUnixNano"), "startTimeUnixNano"), nanos(p.get("timeUnixNano"), "timeUnixNano")
            if kind == "histogram":
                _explicit(m, attrs, cumulative, start, t, _count(p.get("count"), "count"),
                          [float(b) for b in list_of(p, "explicitBounds")],
                          [_count(c, "bucketCounts") for c in list_of(p, "bucketCounts")], _flags(p))
            elif kind == "exponentialHistogram":
                pos = p.get("positive") or {}
                _exponential(m, attrs, cumulative, start, t, _count(p.get("count"), "count"),
                             int(p.get("scale") or 0), _count(p.get("zeroCount"), "zeroCount"),
                             int(pos.get("offset") or 0),
                             [_count(c, "bucketCounts") for c in list_of(pos, "bucketCounts")], _flags(p))
            else:
                v = p.get("asDouble", p.get("asInt"))
                value = float(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else math.nan
                counter = kind == "sum" and bool(body.get("isMonotonic"))
                m.emit(attrs, "counter" if counter else "gauge", counter and cumulative, start, t, value, _flags(p))


def walk_proto(value: bytes, opts, key, out: list, skipped) -> None:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    try:
        req = ExportMetricsServiceRequest.FromString(value)
    except DecodeError as e:
        raise Bad("bad_protobuf", str(e)[:200]) from None
    if not req.resource_metrics:
        raise Bad("bad_protobuf", "no resource_metrics")
    _each_resource(list(req.resource_metrics), out, lambda rm: _resource_proto(rm, opts, key, out, skipped))


def _resource_proto(rm, opts, key, out: list, skipped) -> None:
    rattrs = {kv.key: any_proto(kv.value) for kv in rm.resource.attributes}
    service = None
    for sm in rm.scope_metrics:
        producer = producer_id(rattrs, sm.scope.name, sm.scope.version)
        for metric in sm.metrics:
            if metric.name not in REQUEST_METRICS and metric.name not in opts.declared_metrics:
                skipped["undeclared_metric"] += 1
                continue
            service = service or service_of(rattrs, key)
            m = _metric(metric.name, metric.unit, service, rattrs, producer, opts, skipped, out)
            which = metric.WhichOneof("data")
            body = getattr(metric, which) if which else None
            if which == "summary" or body is None:
                skipped[f"otlp_metric:{which or 'empty'}"] += 1
                continue
            cumulative = getattr(body, "aggregation_temporality", 0) == CUMULATIVE
            for p in body.data_points:
                attrs = {kv.key: any_proto(kv.value) for kv in p.attributes}
                start, t = p.start_time_unix_nano, p.time_unix_nano
                if which == "histogram":
                    _explicit(m, attrs, cumulative, start, t, p.count, list(p.explicit_bounds),
                              list(p.bucket_counts), p.flags)
                elif which == "exponential_histogram":
                    _exponential(m, attrs, cumulative, start, t, p.count, p.scale, p.zero_count,
                                 p.positive.offset, list(p.positive.bucket_counts), p.flags)
                else:
                    has = p.WhichOneof("value")
                    value = p.as_double if has == "as_double" else float(p.as_int) if has == "as_int" else math.nan
                    counter = which == "sum" and body.is_monotonic
                    m.emit(attrs, "counter" if counter else "gauge", counter and cumulative, start, t, value, p.flags)
