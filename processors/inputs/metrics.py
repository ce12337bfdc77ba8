"""gw.metrics: request samples, gauge samples (JSON or Avro, with the msgspec fast path) and Prometheus
samples as prometheus-kafka-adapter writes them (processors.inputs.prometheus)."""
from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

from gatewatch.processors.declared import roles_for
from gatewatch.processors.inputs.points import Point, series_id
from gatewatch.processors.inputs.prometheus import decode_prometheus, is_adapter_sample
from gatewatch.processors.inputs.samples import (
    DEFAULT_COHORT,
    Bad,
    Gauge,
    InputOptions,
    Request,
    field_num,
    field_release,
    field_str,
    field_time,
    key_str,
)
from gatewatch.processors.inputs.timestamps import fast_rfc3339_ms
from gatewatch.processors.names import valid_name as _valid_name

_NO_OPTIONS = InputOptions()
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_INF = float("inf")


def fast_request(d: dict) -> tuple | None:
    """(service, cohort, route, status, latency_ms, ts_ms, release) of the common well-formed request
    sample (epoch-ms or canonical RFC 3339 ts), or None: then the general path decides, with the same result for
    these inputs (property-tested). The ingest hot path calls this without building samples."""
    status = d.get("status")
    lat = d.get("latency_ms")
    ts = d.get("ts")
    if type(ts) is str:
        ts = fast_rfc3339_ms(ts)
    svc = d.get("service")
    if (type(status) is int and 100 <= status <= 599 and (type(lat) is float or type(lat) is int)
            and 0 <= lat < _INF and type(ts) is int and 100_000_000_000 <= ts < 100_000_000_000_000
            and type(svc) is str and svc and "type" not in d and _valid_name(svc)):
        cohort = d.get("cohort")
        route = d.get("route")
        rel = d.get("release")
        if (cohort is None or (type(cohort) is str and cohort)) and (route is None or type(route) is str) \
                and (rel is None or (type(rel) is str and 0 < len(rel) <= 128)):
            return (svc, cohort or DEFAULT_COHORT, route or "", status, lat, ts, rel or "")
    return None


class RequestWire(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The common well-formed request sample, typed for msgspec's C decoder (the batch hot path,
    processors.request_batch). On these fields msgspec is at least as strict as orjson +
    fast_request (no bool for int, no float status, no lone surrogates), except the service's name
    grammar, which that loop checks once per distinct service (a regex here ran for every record
    and was half the decoding time). Unknown fields are refused
    because msgspec skips them without checking UTF-8 or number range, which orjson does. Whatever
    it refuses, or anything with a "type" field, takes the general path, which decides (same result
    where both accept: tested). gc=False: its fields are JSON values, never a cycle."""
    service: str
    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    latency_ms: Annotated[float, msgspec.Meta(ge=0)]
    ts: str | int
    cohort: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    route: str | None = None
    release: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] | None = None
    type: Any = msgspec.UNSET


decode_request_wire = msgspec.json.Decoder(RequestWire).decode
# TypeError: a None value (tombstone); ValueError: invalid UTF-8 in a string (UnicodeDecodeError);
# RecursionError: nesting deeper than msgspec's limit (orjson's says not_json).
WIRE_ERRORS = (msgspec.DecodeError, TypeError, ValueError, RecursionError)
UNSET = msgspec.UNSET


def field_service(d: dict, key) -> str:
    """The service name (field, else the record key), in the name grammar (processors.names):
    anything else is dead-lettered with reason bad_name (it would become a signed action's scope)."""
    svc = field_str(d, "service", key_str(key))
    if not _valid_name(svc):
        from gatewatch.processors.names import why_not
        raise Bad("bad_name", f"service: {why_not(svc)}")
    return svc


def decode_metrics(d: dict, key, kafka_ts_ms, out: list, opts=None) -> None:
    t = fast_request(d)
    if t is not None:
        out.append(Request(*t))
        return
    kind = d.get("type")
    if kind is None and is_adapter_sample(d):  # prometheus-kafka-adapter's JSON
        decode_prometheus(d, key, kafka_ts_ms, out, opts or _NO_OPTIONS)
        return
    if kind == "gauge" or (kind is None and "status" not in d and "name" in d and "value" in d):
        name = field_str(d, "name")
        if not _NAME_RE.match(name):
            raise Bad("bad_value:name", name[:100])
        v = d.get("value")
        if isinstance(v, bool):
            v = int(v)
        else:
            v = field_num(d, "value")
        g = Gauge(field_service(d, key), field_str(d, "cohort", DEFAULT_COHORT),
                  name, v, field_time(d, ("ts", "timestamp", "time"), kafka_ts_ms), field_release(d))
        roles = roles_for(opts.declared_metrics, name, {}) if opts is not None else ()
        if not roles:
            out.append(g)
        for role in roles:  # a declared signal's metric: it feeds that signal instead
            out.append(Point(g.service, g.cohort, g.release, role, series_id(name, {}), "gauge", False, None,
                             g.ts_ms, None, float(v)))
        return
    if kind not in (None, "request"):
        raise Bad("unknown_format", f"type={kind!r}"[:100])
    status = d.get("status")
    if status is None:
        raise Bad("missing_field:status")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int):
        raise Bad("bad_type:status", type(status).__name__)
    if not 100 <= status <= 599:
        raise Bad("bad_value:status", str(status))
    lat = field_num(d, "latency_ms")
    if lat < 0:
        raise Bad("bad_value:latency_ms", repr(lat))
    route = d.get("route")
    if route is not None and not isinstance(route, str):
        raise Bad("bad_type:route", type(route).__name__)
    out.append(Request(field_service(d, key), field_str(d, "cohort", DEFAULT_COHORT),
                       route or "", status, lat, field_time(d, ("ts", "timestamp", "time"), kafka_ts_ms),
                       field_release(d)))
