"""Decode, validate and normalize every input format into samples, or a typed rejection.

`decode(topic, key, value, kafka_ts_ms)` never raises on bad input: it returns a list of
samples (possibly empty: a Debezium tombstone) or a `Rejection` whose `.reason` is one of

    empty, not_json, not_object, unknown_topic, unknown_format, bad_avro, unknown_schema_id,
    missing_field:<f>, bad_type:<f>, bad_value:<f>, bad_time:<f>
    (and `late`, given by processors.partials, which knows the watermark)

Wire formats (DESIGN.md "Topics"):
- JSON (orjson): an object, or an array of objects (a batched beacon / batch of samples).
- Avro: the Confluent wire format, magic byte 0x00 + 4-byte big-endian schema id + the
  schemaless fastavro body. A JSON document never starts with byte 0, so the first byte tells
  the two apart without a header. We run without a schema registry: the ids are gatewatch's own,
  `AVRO_SCHEMA_IDS` below (1 request_sample, 2 gauge_sample, 3 web_vitals, 4 debezium_envelope),
  with the schemas in schemas/<name>.avsc.

Topics (logical names) and what they accept:
- "metrics": request sample {"service","route"?,"cohort"?,"status","latency_ms","ts"} or gauge
  sample {"type":"gauge","service","name","value","ts"}. `service` falls back to the record key
  (the topic is keyed by service); cohort defaults to "stable".
- "rum": the object the web-vitals library hands its callbacks ({"name":"INP","value",
  "rating","delta","id","navigationType"}) plus "route" (or "page"/"path"), "cohort",
  "service"/"app" (the scope; default "web") and "timestamp"/"ts".
- "cdc": Debezium change-event envelopes with or without the {"schema","payload"} wrapper;
  op c/u/d/r/t; event time = payload ts_ms; lag = ts_ms - source.ts_ms; snapshot reads
  (op r, or source.snapshot true/"true"/"last"/"first"/...) are marked and kept out of lag.
  A record with only ts_ms (a Debezium heartbeat) advances stream time. A null value (the
  tombstone Debezium writes after a delete) decodes to no samples.

Timestamps: RFC 3339 or epoch s/ms/µs/ns (processors.timefmt), within 1970..9000 (else
bad_time:<f>); absent -> the Kafka record timestamp; absent both -> missing_field:ts.
"""
from __future__ import annotations

import re
import struct
from typing import NamedTuple

import orjson

from processors.timefmt import TimeFormatError, parse_time_ms

DEFAULT_COHORT = "stable"
DEFAULT_RUM_SCOPE = "web"
RUM_NAMES = {"INP": "inp", "LCP": "lcp", "CLS": "cls", "FCP": "fcp", "TTFB": "ttfb"}
CDC_OPS = frozenset("cudrt")
AVRO_SCHEMA_IDS = {1: "request_sample", 2: "gauge_sample", 3: "web_vitals", 4: "debezium_envelope"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")
_NOT_SNAPSHOT = (None, False, "false", "")


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


class Gauge(NamedTuple):
    service: str
    cohort: str
    name: str
    value: float
    ts_ms: int


class Vital(NamedTuple):
    scope: str
    route: str
    cohort: str
    metric: str      # inp | lcp | cls | fcp | ttfb
    value: float
    ts_ms: int


class Change(NamedTuple):
    table: str                    # "db.table"
    scope: str                    # table unless the record names a scope
    op: str                       # c u d r t
    ts_ms: int                    # event time: the envelope's ts_ms
    lag_ms: int | None            # ts_ms - source.ts_ms; None for snapshot reads
    shape: tuple | None           # ((field, type), ...) sorted, of after (or before); None for t


class Heartbeat(NamedTuple):
    ts_ms: int


Sample = Request | Gauge | Vital | Change | Heartbeat


class _Bad(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.rejection = Rejection(reason, detail)


def decode(topic: str, key: bytes | None, value: bytes | None, kafka_ts_ms: int | None):
    """Record -> list of samples | Rejection. Never raises."""
    handler = _HANDLERS.get(topic)
    if handler is None:
        return Rejection("unknown_topic", str(topic)[:100])
    if value is None or len(value) == 0:
        if topic == "cdc":
            return []  # Debezium tombstone
        return Rejection("empty", "record value is empty")
    try:
        if value[0] == 0:
            docs = [_decode_avro(value)]
        else:
            try:
                doc = orjson.loads(value)
            except orjson.JSONDecodeError as e:
                return Rejection("not_json", str(e)[:200])
            if type(doc) is dict:  # the common case, without the list detour
                out = []
                handler(doc, key, kafka_ts_ms, out)
                return out
            docs = doc if isinstance(doc, list) else [doc]
        out = []
        for d in docs:
            if not isinstance(d, dict):
                return Rejection("not_object", type(d).__name__)
            handler(d, key, kafka_ts_ms, out)
        return out
    except _Bad as b:
        return b.rejection
    except Exception as e:  # bad input must never crash a worker
        return Rejection("unknown_format", f"{type(e).__name__}: {e}"[:200])


def _decode_avro(value: bytes) -> dict:
    import io

    import fastavro

    from schemas import avro_schema
    if len(value) < 5:
        raise _Bad("bad_avro", "shorter than the 5-byte Confluent header")
    (schema_id,) = struct.unpack(">I", value[1:5])
    name = AVRO_SCHEMA_IDS.get(schema_id)
    if name is None:
        raise _Bad("unknown_schema_id", str(schema_id))
    try:
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), avro_schema(name))
    except Exception as e:
        raise _Bad("bad_avro", f"{name}: {type(e).__name__}: {e}"[:200]) from None


def encode_avro(name: str, record: dict) -> bytes:
    """The Confluent-framed Avro bytes for a record (producers and tests)."""
    import io

    import fastavro

    from schemas import avro_schema
    sid = {v: k for k, v in AVRO_SCHEMA_IDS.items()}[name]
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", sid))
    fastavro.schemaless_writer(buf, avro_schema(name), record)
    return buf.getvalue()


# ---- field helpers ---------------------------------------------------------------------

def _str(d: dict, f: str, default=None) -> str:
    v = d.get(f)
    if v is None:
        if default is None:
            raise _Bad(f"missing_field:{f}")
        return default
    if not isinstance(v, str):
        raise _Bad(f"bad_type:{f}", type(v).__name__)
    if not v:
        raise _Bad(f"bad_value:{f}", "empty")
    return v


def _num(d: dict, f: str) -> float:
    v = d.get(f)
    if v is None:
        raise _Bad(f"missing_field:{f}")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad(f"bad_type:{f}", type(v).__name__)
    if v != v or v in (float("inf"), float("-inf")):
        raise _Bad(f"bad_value:{f}", repr(v))
    return v


MIN_TS_MS = 0                      # 1970-01-01
MAX_TS_MS = 221_845_392_000_000    # 9000-01-01: every event time must stay formattable


def _time(d: dict, fields: tuple, kafka_ts_ms: int | None) -> int:
    for f in fields:
        v = d.get(f)
        if v is not None:
            try:
                ms = parse_time_ms(v)
            except (TimeFormatError, ValueError, OverflowError) as e:
                raise _Bad(f"bad_time:{f}", str(e)[:200]) from None
            if not MIN_TS_MS <= ms < MAX_TS_MS:
                raise _Bad(f"bad_time:{f}", "outside 1970..9000")
            return ms
    if kafka_ts_ms is None or not MIN_TS_MS <= kafka_ts_ms < MAX_TS_MS:
        raise _Bad(f"missing_field:{fields[0]}", "and no usable Kafka record timestamp")
    return int(kafka_ts_ms)


def _key_str(key: bytes | None) -> str | None:
    if not key:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---- per-topic normalizers -------------------------------------------------------------

_INF = float("inf")


def fast_request(d: dict) -> tuple | None:
    """(service, cohort, route, status, latency_ms, ts_ms) of the common well-formed request
    sample (epoch-ms ts), or None: then the general path decides, with the same result for
    these inputs (property-tested). The ingest hot path calls this without building samples."""
    status = d.get("status")
    lat = d.get("latency_ms")
    ts = d.get("ts")
    svc = d.get("service")
    if (type(status) is int and 100 <= status <= 599 and (type(lat) is float or type(lat) is int)
            and 0 <= lat < _INF and type(ts) is int and 100_000_000_000 <= ts < 100_000_000_000_000
            and type(svc) is str and svc and "type" not in d):
        cohort = d.get("cohort")
        route = d.get("route")
        if (cohort is None or (type(cohort) is str and cohort)) and (route is None or type(route) is str):
            return (svc, cohort or DEFAULT_COHORT, route or "", status, lat, ts)
    return None


def _metrics(d: dict, key, kafka_ts_ms, out: list) -> None:
    t = fast_request(d)
    if t is not None:
        out.append(Request(*t))
        return
    kind = d.get("type")
    if kind == "gauge" or (kind is None and "status" not in d and "name" in d and "value" in d):
        name = _str(d, "name")
        if not _NAME_RE.match(name):
            raise _Bad("bad_value:name", name[:100])
        v = d.get("value")
        if isinstance(v, bool):
            v = int(v)
        else:
            v = _num(d, "value")
        out.append(Gauge(_str(d, "service", _key_str(key)), _str(d, "cohort", DEFAULT_COHORT),
                         name, v, _time(d, ("ts", "timestamp", "time"), kafka_ts_ms)))
        return
    if kind not in (None, "request"):
        raise _Bad("unknown_format", f"type={kind!r}"[:100])
    status = d.get("status")
    if status is None:
        raise _Bad("missing_field:status")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int):
        raise _Bad("bad_type:status", type(status).__name__)
    if not 100 <= status <= 599:
        raise _Bad("bad_value:status", str(status))
    lat = _num(d, "latency_ms")
    if lat < 0:
        raise _Bad("bad_value:latency_ms", repr(lat))
    route = d.get("route")
    if route is not None and not isinstance(route, str):
        raise _Bad("bad_type:route", type(route).__name__)
    out.append(Request(_str(d, "service", _key_str(key)), _str(d, "cohort", DEFAULT_COHORT),
                       route or "", status, lat, _time(d, ("ts", "timestamp", "time"), kafka_ts_ms)))


def _rum(d: dict, key, kafka_ts_ms, out: list) -> None:
    name = _str(d, "name")
    metric = RUM_NAMES.get(name.upper())
    if metric is None:
        raise _Bad("bad_value:name", f"{name[:40]} (expected one of {', '.join(RUM_NAMES)})")
    v = _num(d, "value")
    if v < 0:
        raise _Bad("bad_value:value", repr(v))
    route = d.get("route") or d.get("page") or d.get("path") or _key_str(key)
    if route is None:
        raise _Bad("missing_field:route")
    if not isinstance(route, str):
        raise _Bad("bad_type:route", type(route).__name__)
    scope = d.get("service") or d.get("app") or DEFAULT_RUM_SCOPE
    if not isinstance(scope, str):
        raise _Bad("bad_type:service", type(scope).__name__)
    out.append(Vital(scope, route, _str(d, "cohort", DEFAULT_COHORT), metric, v,
                     _time(d, ("timestamp", "ts"), kafka_ts_ms)))


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"  # int vs float is not a schema change for a JSON producer
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def row_shape(row: dict) -> tuple:
    """The schema-drift shape of a row image: sorted (field, JSON type) pairs."""
    return tuple(sorted((str(k), _json_type(v)) for k, v in row.items()))


def _cdc(d: dict, key, kafka_ts_ms, out: list) -> None:
    if "payload" in d and ("schema" in d or isinstance(d.get("payload"), dict)):
        d = d["payload"]
        if d is None:
            return  # a wrapped tombstone
        if not isinstance(d, dict):
            raise _Bad("not_object", "payload")
    op = d.get("op")
    if op is None:
        if "ts_ms" in d and "source" not in d and "after" not in d and "before" not in d:
            out.append(Heartbeat(_time(d, ("ts_ms",), None)))
            return
        raise _Bad("missing_field:op")
    if op not in CDC_OPS:
        raise _Bad("bad_value:op", str(op)[:20])
    ts = _time(d, ("ts_ms",), None)
    src = d.get("source")
    if not isinstance(src, dict):
        raise _Bad("missing_field:source" if src is None else "bad_type:source")
    db = _str(src, "db") if "db" in src else None
    table = src.get("table")
    if not isinstance(table, str) or not table:
        raise _Bad("missing_field:source.table" if table is None else "bad_value:source.table")
    if db is None:
        raise _Bad("missing_field:source.db")
    src_ts = src.get("ts_ms")
    if isinstance(src_ts, bool) or not isinstance(src_ts, (int, float)):
        raise _Bad("missing_field:source.ts_ms" if src_ts is None else "bad_type:source.ts_ms")
    full = f"{db}.{table}"
    snapshot = op == "r" or src.get("snapshot") not in _NOT_SNAPSHOT
    row = d.get("after") if d.get("after") is not None else d.get("before")
    if row is not None and not isinstance(row, dict):
        raise _Bad("bad_type:after", type(row).__name__)
    scope = d.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise _Bad("bad_type:scope", type(scope).__name__)
    out.append(Change(full, scope or full, op, ts, None if snapshot else ts - int(src_ts),
                      row_shape(row) if row is not None else None))


_HANDLERS = {"metrics": _metrics, "rum": _rum, "cdc": _cdc}


def dlq_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
               kafka_ts_ms: int | None, rejection: Rejection) -> dict:
    """The gw.dlq value for a rejected record: processors.dlq's record (the bytes, reason, source
    offset), so run_pipeline's rejections are exactly what the ingest worker publishes."""
    from processors.dlq import dlq_record as make
    return make(topic, partition, offset, rejection.reason, value, rejection.detail)
