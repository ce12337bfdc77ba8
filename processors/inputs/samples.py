"""What every input decoder produces: typed samples or a Rejection, and the field helpers they share."""
from __future__ import annotations

from typing import NamedTuple

from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms

DEFAULT_COHORT = "stable"
DEFAULT_RUM_SCOPE = "web"
MIN_TS_MS = 0                      # 1970-01-01
MAX_TS_MS = 221_845_392_000_000    # 9000-01-01: every event time must stay formattable


class Rejection(NamedTuple):
    reason: str
    detail: str = ""


# ---- samples: one small immutable tuple per normalized observation -------------------------

class Request(NamedTuple):
    service: str
    cohort: str
    route: str
    status: int
    latency_ms: float
    ts_ms: int
    release: str = ""   # the version this sample measures ("" = unknown): a gate per release


class Gauge(NamedTuple):
    service: str
    cohort: str
    name: str
    value: float
    ts_ms: int
    release: str = ""


class Vital(NamedTuple):
    scope: str
    route: str
    cohort: str
    metric: str      # inp | lcp | cls | fcp | ttfb
    value: float
    ts_ms: int
    release: str = ""


class Change(NamedTuple):
    table: str                    # "db.table"
    scope: str                    # table unless the record names a scope
    op: str                       # c u d r t, or s: a schema-change event (DDL)
    ts_ms: int                    # event time: the envelope's ts_ms
    lag_ms: int | None            # ts_ms - source.ts_ms; None for snapshot reads
    shape: tuple | None           # ((field, type), ...) sorted, of after (or before); None for t


class Heartbeat(NamedTuple):
    ts_ms: int


class PrometheusMapping(NamedTuple):
    """Policy `prometheus:`: which labels and metrics of prometheus-kafka-adapter samples mean what
    (defaults: the common client libraries' names)."""
    service_label: str = "job"
    route_label: str = "handler"
    status_label: str = "code"
    version_label: str = "service_version"
    request_counter: str = "http_requests_total"
    request_histogram: str = "http_request_duration_seconds"
    duration_to_ms: float = 1000.0   # the request histogram's unit: seconds

    @classmethod
    def from_policy(cls, section) -> "PrometheusMapping":
        if section is None:
            return cls()
        if not isinstance(section, dict):
            raise ValueError("prometheus must be a mapping of label and metric names")
        unknown = sorted(set(section) - set(cls._fields) - {"duration_unit"})
        if unknown:
            raise ValueError(f"prometheus: unknown key {unknown[0]!r} (known: {', '.join(cls._fields[:6])}, "
                             "duration_unit)")
        kw = {k: str(v) for k, v in section.items() if k in cls._fields[:6]}
        unit = section.get("duration_unit", "s")
        if unit not in ("s", "ms"):
            raise ValueError("prometheus.duration_unit must be s or ms")
        return cls(**kw, duration_to_ms=1000.0 if unit == "s" else 1.0)


class InputOptions(NamedTuple):
    """Policy-driven decoding options (`InputOptions.from_policy(doc)`):
    rum: {route_templates: [...]}, otlp: {cohort_attribute, cohorts: {value: cohort}, default_cohort},
    prometheus: {...} (PrometheusMapping), and the metrics declared signals read (processors.declared)."""
    route_templates: tuple = ()
    otlp_cohort_attribute: str = "service.version"
    otlp_cohorts: dict = {}
    otlp_default_cohort: str = DEFAULT_COHORT
    prometheus: PrometheusMapping = PrometheusMapping()
    declared_metrics: dict = {}   # metric name -> (Declared, ...) (processors.declared.by_metric)
    cdc_services: tuple = ()      # cdc.services: ((table glob, service), ...), first match wins

    @classmethod
    def from_policy(cls, doc: dict | None) -> "InputOptions":
        from gatewatch.processors.declared import by_metric, parse_declared
        doc = doc or {}
        rum = doc.get("rum") or {}
        otlp = doc.get("otlp") or {}
        templates = rum.get("route_templates") or ()
        if isinstance(templates, str) or not all(isinstance(t, str) and t.startswith("/") for t in templates):
            raise ValueError("rum.route_templates must be a list of paths starting with /")
        cohorts = otlp.get("cohorts") or {}
        if not isinstance(cohorts, dict):
            raise ValueError("otlp.cohorts must map attribute values to cohorts")
        services = (doc.get("cdc") or {}).get("services") or {}
        if not isinstance(services, dict) or not all(isinstance(v, str) and v for v in services.values()):
            raise ValueError("cdc.services must map table globs (db.table) to service names")
        return cls(tuple(templates), str(otlp.get("cohort_attribute") or "service.version"),
                   {str(k): str(v) for k, v in cohorts.items()},
                   str(otlp.get("default_cohort") or DEFAULT_COHORT),
                   PrometheusMapping.from_policy(doc.get("prometheus")), by_metric(parse_declared(doc)),
                   tuple((str(k), v) for k, v in services.items()))


class Predecoded(NamedTuple):
    """A record already decoded (samples or Rejection) by a caller holding InputOptions
    (gatewatch.processors.otlp.InputAggregator): decode() hands it back as is."""
    result: object


class Bad(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.rejection = Rejection(reason, detail)


# ---- field helpers ---------------------------------------------------------------------

def field_str(d: dict, f: str, default=None) -> str:
    v = d.get(f)
    if v is None:
        if default is None:
            raise Bad(f"missing_field:{f}")
        return default
    if not isinstance(v, str):
        raise Bad(f"bad_type:{f}", type(v).__name__)
    if not v:
        raise Bad(f"bad_value:{f}", "empty")
    return v


def field_num(d: dict, f: str) -> float:
    v = d.get(f)
    if v is None:
        raise Bad(f"missing_field:{f}")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Bad(f"bad_type:{f}", type(v).__name__)
    if v != v or v in (float("inf"), float("-inf")):
        raise Bad(f"bad_value:{f}", repr(v))
    return v


def field_time(d: dict, fields: tuple, kafka_ts_ms: int | None) -> int:
    for f in fields:
        v = d.get(f)
        if v is not None:
            try:
                ms = parse_time_ms(v)
            except (TimeFormatError, ValueError, OverflowError) as e:
                raise Bad(f"bad_time:{f}", str(e)[:200]) from None
            if not MIN_TS_MS <= ms < MAX_TS_MS:
                raise Bad(f"bad_time:{f}", "outside 1970..9000")
            return ms
    if kafka_ts_ms is None or not MIN_TS_MS < kafka_ts_ms < MAX_TS_MS:  # 0 / -1: the producer set none
        raise Bad(f"missing_field:{fields[0]}", "and no usable Kafka record timestamp")
    return int(kafka_ts_ms)


def field_release(d: dict) -> str:
    """The optional `release` field: the version the sample measures ("" when absent)."""
    v = d.get("release")
    if v is None:
        return ""
    if not isinstance(v, str):
        raise Bad("bad_type:release", type(v).__name__)
    if not v or len(v) > 128:
        raise Bad("bad_value:release", "empty" if not v else "longer than 128 characters")
    return v


def key_str(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None
