"""OTLP metrics as the OpenTelemetry Collector's kafka exporter writes them (its metrics topic, default
`otlp_metrics`): an ExportMetricsServiceRequest, `otlp_proto` or `otlp_json`, told apart by content.

Data points become Points (processors.inputs.points): Histogram (explicit bounds), ExponentialHistogram,
Sum (monotonic: a counter, cumulative or delta temporality; non-monotonic: a gauge) and Gauge.
The HTTP server request duration (semantic conventions: `http.server.request.duration` in s, or the
older `http.server.duration` in ms, with `http.response.status_code` / `http.status_code`) is the
"requests" role: request counts, errors (status >= 500) and latency, as per-request samples give.
Service = resource `service.name` (else the record key; else the record is rejected), cohort and
release from the `otlp.cohort_attribute` (resource or point attribute) through `otlp.cohorts`.
Other metrics feed the declared signals that name them; the rest is skipped and counted.
"""
from __future__ import annotations

import math

from gatewatch.processors.declared import roles_for
from gatewatch.processors.inputs.otlp_common import (
    any_proto,
    attrs_json,
    cohort_of,
    decode_export,
    enum_of,
    list_of,
    nanos,
    service_of,
)
from gatewatch.processors.inputs.points import Point, series_id
from gatewatch.processors.inputs.samples import MAX_TS_MS, Bad, Rejection

REQUEST_METRICS = {"http.server.request.duration": 1000.0, "http.server.duration": 1.0}  # -> ms
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
    """What every point of one metric shares. role None: a declared signal's metric, whose points feed
    the declared signals their attributes match (processors.declared.roles_for)."""
    __slots__ = ("name", "role", "unit_ms", "service", "rattrs", "opts", "out")

    def __init__(self, name, role, unit_ms, service, rattrs, opts, out):
        self.name, self.role, self.unit_ms = name, role, unit_ms
        self.service, self.rattrs, self.opts, self.out = service, rattrs, opts, out

    def emit(self, attrs: dict, kind: str, cumulative: bool, start_ns: int, t_ns: int, value: float, **hist) -> None:
        if self.role == "requests":
            self.out.append(self._point("requests", attrs, kind, cumulative, start_ns, t_ns, value, hist))
            return
        labels = {k: str(v) for k, v in attrs.items() if v is not None}
        for role in roles_for(self.opts.declared_metrics, self.name, labels):
            self.out.append(self._point(role, attrs, kind, cumulative, start_ns, t_ns, value, hist))

    def _point(self, role, attrs, kind, cumulative, start_ns, t_ns, value, hist) -> Point:
        cohort, release = cohort_of({**self.rattrs, **attrs}, self.opts)
        status = None
        if role == "requests":
            raw = next((attrs[a] for a in _STATUS_ATTRS if attrs.get(a) is not None), None)
            try:
                status = int(raw)
            except (TypeError, ValueError):
                raise Bad("bad_value:http.response.status_code", repr(raw)[:40]) from None
            if isinstance(raw, bool) or not 100 <= status <= 599:
                raise Bad("bad_value:http.response.status_code", repr(raw)[:40])
        labels = {k: str(v) for k, v in attrs.items() if v is not None}
        start = _ms(start_ns, "startTimeUnixNano") if start_ns else None
        origin = f'{self.rattrs.get("service.instance.id") or ""}@{start}'  # one SDK process
        return Point(self.service, cohort, release, role, series_id(self.name, labels), kind, cumulative,
                     start, _ms(t_ns, "timeUnixNano"), status, value, **hist, origin=origin)


def _metric(name: str, unit: str, service: str, rattrs: dict, opts, skipped, out) -> _Metric | None:
    if name in REQUEST_METRICS:
        return _Metric(name, "requests", 1000.0 if unit == "s" else 1.0 if unit == "ms" else REQUEST_METRICS[name],
                       service, rattrs, opts, out)
    if name not in opts.declared_metrics:
        skipped["undeclared_metric"] += 1
        return None
    return _Metric(name, None, 1.0, service, rattrs, opts, out)


def _explicit(m: _Metric, attrs, cumulative, start, t, count, bounds, counts) -> None:
    if len(counts) != len(bounds) + 1:
        raise Bad("bad_value:bucketCounts", f"{len(counts)} counts for {len(bounds)} bounds")
    if any(not math.isfinite(b) for b in bounds) or list(bounds) != sorted(set(bounds)):
        raise Bad("bad_value:explicitBounds", "not finite and strictly increasing")
    m.emit(attrs, "histogram", cumulative, start, t, float(count),
           bounds=tuple(b * m.unit_ms for b in bounds), counts=tuple(counts))


def _exponential(m: _Metric, attrs, cumulative, start, t, count, scale, zero, offset, counts) -> None:
    if not -10 <= scale <= 20:
        raise Bad("bad_value:scale", str(scale))
    m.emit(attrs, "histogram", cumulative, start, t, float(count), counts=tuple(counts), scale=scale,
                   offset=offset, zero=zero)


def decode_otlp_metrics(value: bytes | None, opts, key: bytes | None, skipped) -> list | Rejection:
    """One exporter record -> Points (skipped data points counted in `skipped` by reason) | Rejection."""
    out: list = []
    bad = decode_export(value, "otlp_metrics", lambda doc: walk_json(doc, opts, key, out, skipped),
                        lambda raw: walk_proto(raw, opts, key, out, skipped))
    return bad if bad is not None else out


def walk_json(doc, opts, key, out: list, skipped) -> None:
    if not isinstance(doc, dict):
        raise Bad("not_object", type(doc).__name__)
    if "resourceMetrics" not in doc:
        raise Bad("missing_field:resourceMetrics", "not an OTLP ExportMetricsServiceRequest")
    for rm in list_of(doc, "resourceMetrics"):
        if not isinstance(rm, dict):
            raise Bad("bad_type:resourceMetrics", type(rm).__name__)
        rattrs = attrs_json((rm.get("resource") or {}).get("attributes"), "resource")
        service = service_of(rattrs, key)
        for sm in list_of(rm, "scopeMetrics"):
            for metric in list_of(sm, "metrics"):
                if not isinstance(metric, dict) or not isinstance(metric.get("name"), str):
                    raise Bad("bad_type:metrics", "expected {name, ...}")
                m = _metric(metric["name"], str(metric.get("unit") or ""), service, rattrs, opts, skipped, out)
                if m is not None:
                    _points_json(m, metric, skipped)


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
                          [_count(c, "bucketCounts") for c in list_of(p, "bucketCounts")])
            elif kind == "exponentialHistogram":
                pos = p.get("positive") or {}
                _exponential(m, attrs, cumulative, start, t, _count(p.get("count"), "count"),
                             int(p.get("scale") or 0), _count(p.get("zeroCount"), "zeroCount"),
                             int(pos.get("offset") or 0),
                             [_count(c, "bucketCounts") for c in list_of(pos, "bucketCounts")])
            else:
                v = p.get("asDouble", p.get("asInt"))
                value = float(v) if isinstance(v, (int, float, str)) and not isinstance(v, bool) else math.nan
                if math.isnan(value):
                    skipped["no_value"] += 1
                    continue
                counter = kind == "sum" and bool(body.get("isMonotonic"))
                m.emit(attrs, "counter" if counter else "gauge", counter and cumulative, start, t, value)


def walk_proto(value: bytes, opts, key, out: list, skipped) -> None:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    try:
        req = ExportMetricsServiceRequest.FromString(value)
    except DecodeError as e:
        raise Bad("bad_protobuf", str(e)[:200]) from None
    if not req.resource_metrics:
        raise Bad("bad_protobuf", "no resource_metrics")
    for rm in req.resource_metrics:
        rattrs = {kv.key: any_proto(kv.value) for kv in rm.resource.attributes}
        service = service_of(rattrs, key)
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                m = _metric(metric.name, metric.unit, service, rattrs, opts, skipped, out)
                if m is None:
                    continue
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
                                  list(p.bucket_counts))
                    elif which == "exponential_histogram":
                        _exponential(m, attrs, cumulative, start, t, p.count, p.scale, p.zero_count,
                                     p.positive.offset, list(p.positive.bucket_counts))
                    else:
                        value = p.as_double if p.WhichOneof("value") == "as_double" else float(p.as_int)
                        counter = which == "sum" and body.is_monotonic
                        m.emit(attrs, "counter" if counter else "gauge", counter and cumulative, start, t, value)
