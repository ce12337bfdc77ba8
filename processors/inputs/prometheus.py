"""gw.metrics: Prometheus samples as prometheus-kafka-adapter writes them (its JSON, no key):

    {"timestamp": "2026-01-01T00:00:00Z", "value": "9876543210", "name": "http_requests_total",
     "labels": {"__name__": "http_requests_total", "job": "checkout", "code": "500", ...}}

One record per sample of one series; value is a string (Go's formatting: "NaN", "+Inf" too).
Mapping (policy `prometheus:`, defaults the common client libraries' names): service = label `job`,
route = `handler`, status = `code`, release = `service_version` (its cohort through the same table
as OTLP: otlp.cohorts). Series:
- the request counter (default http_requests_total) counts requests, errors = code >= 500;
- the request duration histogram (default http_request_duration_seconds, seconds) gives latency:
  its `_bucket{le}` series; its `_count` and `_sum` are not needed (counts come from the counter);
- any other metric that a declared signal names feeds it (a `_total` counter, a histogram's
  `_bucket`, anything else a gauge); the rest is skipped and counted (`undeclared_metric`).
A NaN value (Prometheus' stale marker) is skipped and counted (`stale_sample`).
"""
from __future__ import annotations

import math

from gatewatch.processors.declared import roles_for
from gatewatch.processors.inputs.points import Point, series_id
from gatewatch.processors.inputs.samples import DEFAULT_COHORT, Bad, field_time, key_str
from gatewatch.processors.names import valid_name, why_not

_SUFFIXES = ("_bucket", "_count", "_sum")


def is_adapter_sample(d: dict) -> bool:
    return isinstance(d.get("labels"), dict) and "value" in d and ("name" in d or "__name__" in d["labels"])


def _value(v) -> float:
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise Bad("bad_type:value", type(v).__name__)
    try:
        return float(v)  # "NaN", "+Inf", "-Inf" and plain numbers, as Go's strconv formats them
    except ValueError:
        raise Bad("bad_value:value", repr(v)[:40]) from None


def decode_prometheus(d: dict, key, kafka_ts_ms, out: list, opts) -> None:
    labels = {str(k): str(v) for k, v in d["labels"].items()}
    name = str(d.get("name") or labels.get("__name__") or "")
    if not name:
        raise Bad("missing_field:name")
    value = _value(d["value"])
    if math.isnan(value):
        out.append("stale_sample")  # the aggregator counts strings as skipped, not rejected
        return
    if not math.isfinite(value):
        raise Bad("bad_value:value", d["value"] if isinstance(d["value"], str) else repr(value))
    prom = opts.prometheus
    service = labels.get(prom.service_label) or key_str(key)
    if not service:
        raise Bad(f"missing_field:labels.{prom.service_label}", "no service label and no record key")
    if not valid_name(service):  # it would become a signed action's scope (processors.names)
        raise Bad("bad_name", f"labels.{prom.service_label}: {why_not(service)}")
    version = labels.get(prom.version_label, "")
    cohort = opts.otlp_cohorts.get(version, opts.otlp_default_cohort) if version else DEFAULT_COHORT
    if len(version) > 128:  # no release, as for OTLP (otlp_common.cohort_of): a release is at most 128 characters
        version = ""
    ts = field_time(d, ("timestamp",), kafka_ts_ms)
    labels.pop("__name__", None)
    base, kind = name, "gauge"
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            base = name[:-len(suffix)]
    if name == prom.request_counter:
        role, kind = "requests", "counter"
    elif base == prom.request_histogram and name.endswith("_bucket"):
        role, kind = "requests", "bucket"
    elif base == prom.request_histogram:
        out.append("histogram_count_or_sum")  # counts come from the request counter
        return
    else:
        roles = roles_for(opts.declared_metrics, name, labels) or roles_for(opts.declared_metrics, base, labels)
        if not roles:
            out.append("undeclared_metric")
            return
        kind = "bucket" if name.endswith("_bucket") else "counter" if name.endswith("_total") else "gauge"
        for role in roles:
            _point(out, role, kind, name, base, labels, service, cohort, version, ts, value, prom)
        return
    _point(out, role, kind, name, base, labels, service, cohort, version, ts, value, prom)


def _point(out, role, kind, name, base, labels, service, cohort, version, ts, value, prom) -> None:
    labels = dict(labels)
    status = None
    if role == "requests" and kind == "counter":
        code = labels.get(prom.status_label)
        if code is None or not code.isdigit():
            raise Bad(f"bad_value:labels.{prom.status_label}", repr(code)[:20])
        status = int(code)
    le = None
    family = ""
    if kind == "bucket":
        raw = labels.pop("le", None)
        if raw is None:
            raise Bad("missing_field:labels.le")
        le = _value(raw)
        family = series_id(base, labels)
        if role == "requests" and math.isfinite(le):
            le *= prom.duration_to_ms
    out.append(Point(service, cohort, version if version else "", role, series_id(name, {**labels, **(
        {"le": repr(le)} if le is not None else {})}), kind, kind != "gauge", None, ts, status, value, le=le,
        family=family, origin=f'{labels.get("job", "")}/{labels.get("instance", "")}'))
