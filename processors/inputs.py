"""Decode, validate and normalize every input format into samples, or a typed rejection.

`decode(topic, key, value, kafka_ts_ms, options=None)` never raises on bad input: it returns a
list of samples (possibly empty: a Debezium tombstone) or a `Rejection` whose `.reason` is one of

    empty, not_json, not_object, unknown_topic, unknown_format, bad_avro, unknown_schema_id,
    missing_field:<f>, bad_type:<f>, bad_value:<f>, bad_time:<f>
    (and `late`, given by gatewatch.processors.partials, which knows the watermark)

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
  "service"/"app" (the scope; default "web") and "timestamp"/"ts". The library README's batch
  body (a JSON array of Metric objects) gives one sample each. Without a route, the route is
  derived from the page URL ("navigationURL", else "url"/"pageURL"/"href", else
  attribution.url/navigationURL) through the policy's `rum.route_templates` (InputOptions):
  "/market/:id" matches "/market/42" (":name" = one path segment, "*" = the rest); the first
  matching template wins; a path no template matches is UNMATCHED_ROUTE (bounded cardinality);
  without templates the bare path is the route.
- "cdc": Debezium change-event envelopes with or without the {"schema","payload"} wrapper;
  op c/u/d/r/t; event time = payload ts_ms; lag = ts_ms - source.ts_ms; snapshot reads
  (op r, or source.snapshot true/"true"/"last"/"first"/...) are marked and kept out of lag.
  A record with only ts_ms (a Debezium heartbeat) advances stream time. A tombstone (the null
  value Debezium writes after a delete, or the legacy {"schema":null,"payload":null}) decodes to
  no samples (the aggregator counts it as skipped, never as a rejection).
  Schema-change topic events ({"databaseName","ddl","tableChanges":[{"type":ALTER|CREATE|DROP,
  "id","table":{"columns":[{"name","typeName","length",...}]}}]}) give one Change per table
  change (op "s", no lag: not a change event) whose shape is the DDL's columns with their JSON
  types as Debezium's JSON converter writes them (types whose JSON form depends on connector
  settings, e.g. DECIMAL or TIMESTAMP, are "null" = not judged). schema_drift then sees a
  dropped column or a changed type as incompatible; a dropped table has the empty shape.

`options` (InputOptions.from_policy(doc)) carries the policy's decoding tables: RUM route
templates and the OTLP cohort table. OTLP traces are decoded by gatewatch.processors.otlp, whose
InputAggregator applies the options and counts skipped tombstones and spans.

Timestamps: RFC 3339 or epoch s/ms/µs/ns (gatewatch.processors.timefmt), within 1970..9000 (else
bad_time:<f>); absent -> the Kafka record timestamp; absent both -> missing_field:ts.
"""
from __future__ import annotations

import re
import struct
from typing import Annotated, Any, NamedTuple

import msgspec
import orjson

from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms

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
    op: str                       # c u d r t, or s: a schema-change event (DDL)
    ts_ms: int                    # event time: the envelope's ts_ms
    lag_ms: int | None            # ts_ms - source.ts_ms; None for snapshot reads
    shape: tuple | None           # ((field, type), ...) sorted, of after (or before); None for t


class Heartbeat(NamedTuple):
    ts_ms: int


Sample = Request | Gauge | Vital | Change | Heartbeat


class InputOptions(NamedTuple):
    """Policy-driven decoding options (`InputOptions.from_policy(doc)`):
    rum: {route_templates: [...]}, otlp: {cohort_attribute, cohorts: {value: cohort}, default_cohort}."""
    route_templates: tuple = ()
    otlp_cohort_attribute: str = "service.version"
    otlp_cohorts: dict = {}
    otlp_default_cohort: str = DEFAULT_COHORT

    @classmethod
    def from_policy(cls, doc: dict | None) -> "InputOptions":
        doc = doc or {}
        rum = doc.get("rum") or {}
        otlp = doc.get("otlp") or {}
        templates = rum.get("route_templates") or ()
        if isinstance(templates, str) or not all(isinstance(t, str) and t.startswith("/") for t in templates):
            raise ValueError("rum.route_templates must be a list of paths starting with /")
        cohorts = otlp.get("cohorts") or {}
        if not isinstance(cohorts, dict):
            raise ValueError("otlp.cohorts must map attribute values to cohorts")
        return cls(tuple(templates), str(otlp.get("cohort_attribute") or "service.version"),
                   {str(k): str(v) for k, v in cohorts.items()},
                   str(otlp.get("default_cohort") or DEFAULT_COHORT))


class Predecoded(NamedTuple):
    """A record already decoded (samples or Rejection) by a caller holding InputOptions
    (gatewatch.processors.otlp.InputAggregator): decode() hands it back as is."""
    result: object


class _Bad(Exception):
    def __init__(self, reason: str, detail: str = ""):
        self.rejection = Rejection(reason, detail)


def decode(topic: str, key: bytes | None, value: bytes | None, kafka_ts_ms: int | None,
           options: InputOptions | None = None):
    """Record -> list of samples | Rejection. Never raises."""
    if type(value) is Predecoded:
        return value.result
    handler = _HANDLERS.get(topic)
    if handler is None:
        return Rejection("unknown_topic", str(topic)[:100])
    if value is None or len(value) == 0:
        if topic == "cdc":
            return []  # Debezium tombstone
        return Rejection("empty", "record value is empty")
    opts = options or _NO_OPTIONS
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
                handler(doc, key, kafka_ts_ms, out, opts)
                return out
            docs = doc if isinstance(doc, list) else [doc]
        out = []
        for d in docs:
            if not isinstance(d, dict):
                return Rejection("not_object", type(d).__name__)
            handler(d, key, kafka_ts_ms, out, opts)
        return out
    except _Bad as b:
        return b.rejection
    except Exception as e:  # bad input must never crash a worker
        return Rejection("unknown_format", f"{type(e).__name__}: {e}"[:200])


def _decode_avro(value: bytes) -> dict:
    import io

    import fastavro

    from gatewatch.schemas import avro_schema
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

    from gatewatch.schemas import avro_schema
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
_DAY_MS: dict[str, int] = {}  # "YYYY-MM-DD" -> epoch ms of its midnight (bounded below)


def fast_rfc3339_ms(s: str) -> int | None:
    """Epoch ms of the exact shape 'YYYY-MM-DDTHH:MM:SS.mmmZ' (what format_ts and most clients
    write), or None: then the general parser decides. Same result as parse_time_ms (tested)."""
    if (len(s) != 24 or s[23] != "Z" or s[10] != "T" or s[13] != ":" or s[16] != ":" or s[19] != "."
            or not s.isascii()):
        return None
    clock = s[11:13] + s[14:16] + s[17:19] + s[20:23]
    if not clock.isdigit():
        return None
    h, m, sec = int(clock[0:2]), int(clock[2:4]), int(clock[4:6])
    if h > 23 or m > 59 or sec > 59:
        return None
    day = _DAY_MS.get(s[:10])
    if day is None:
        try:
            day = parse_time_ms(s[:10] + "T00:00:00Z")
        except TimeFormatError:
            return None
        if len(_DAY_MS) < 4096:
            _DAY_MS[s[:10]] = day
    return day + ((h * 60 + m) * 60 + sec) * 1000 + int(clock[6:9])


def fast_request(d: dict) -> tuple | None:
    """(service, cohort, route, status, latency_ms, ts_ms) of the common well-formed request
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
            and type(svc) is str and svc and "type" not in d):
        cohort = d.get("cohort")
        route = d.get("route")
        if (cohort is None or (type(cohort) is str and cohort)) and (route is None or type(route) is str):
            return (svc, cohort or DEFAULT_COHORT, route or "", status, lat, ts)
    return None


class RequestWire(msgspec.Struct, forbid_unknown_fields=True):
    """The common well-formed request sample, typed for msgspec's C decoder (the batch hot path,
    PartitionAggregator.add_batch). On these fields msgspec is at least as strict as orjson +
    fast_request (no bool for int, no float status, no lone surrogates). Unknown fields are refused
    because msgspec skips them without checking UTF-8 or number range, which orjson does. Whatever
    it refuses, or anything with a "type" field, takes the general path, which decides (same result
    where both accept: tested)."""
    service: Annotated[str, msgspec.Meta(min_length=1)]
    status: Annotated[int, msgspec.Meta(ge=100, le=599)]
    latency_ms: Annotated[float, msgspec.Meta(ge=0)]
    ts: str | int
    cohort: Annotated[str, msgspec.Meta(min_length=1)] | None = None
    route: str | None = None
    type: Any = msgspec.UNSET


decode_request_wire = msgspec.json.Decoder(RequestWire).decode
# TypeError: a None value (tombstone); ValueError: invalid UTF-8 in a string (UnicodeDecodeError);
# RecursionError: nesting deeper than msgspec's limit (orjson's says not_json).
WIRE_ERRORS = (msgspec.DecodeError, TypeError, ValueError, RecursionError)
UNSET = msgspec.UNSET

_SECOND_MS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch ms (memo, bounded)
_MILLIS = {f"{i:03d}": i for i in range(1000)}
# For inlining in a hot loop: s is a time cached_rfc3339_ms has seen the second of iff
# SECOND_MS.get(s[:19]) and MILLIS_Z.get(s[19:]) are both found; the time is their sum.
SECOND_MS = _SECOND_MS
MILLIS_Z = {f".{i:03d}Z": i for i in range(1000)}


def cached_rfc3339_ms(s: str) -> int | None:
    """fast_rfc3339_ms with the second memoized: event times arrive roughly in order, so most
    records share their second with a neighbour. Same result as fast_rfc3339_ms (tested)."""
    if len(s) != 24 or s[19] != "." or s[23] != "Z":
        return None
    ms = _MILLIS.get(s[20:23])
    if ms is None:
        return None
    head = s[:19]
    sec = _SECOND_MS.get(head)
    if sec is None:
        sec = fast_rfc3339_ms(head + ".000Z")
        if sec is None:
            return None
        if len(_SECOND_MS) >= 65_536:
            _SECOND_MS.clear()
        _SECOND_MS[head] = sec
    return sec + ms


def _metrics(d: dict, key, kafka_ts_ms, out: list, opts=None) -> None:
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


UNMATCHED_ROUTE = "(unmatched)"
_URL_FIELDS = ("navigationURL", "url", "pageURL", "href")


def route_for_path(path: str, templates: tuple) -> str:
    """The route template a URL path belongs to (see the module docstring)."""
    path = "/" + path.strip("/")
    if not templates:
        return path
    segs = path.split("/")[1:] if path != "/" else []
    for t in templates:
        tsegs = t.strip("/").split("/") if t.strip("/") else []
        if tsegs and tsegs[-1] == "*":
            if len(segs) < len(tsegs) - 1:
                continue
            tsegs, rest_ok = tsegs[:-1], True
        else:
            if len(segs) != len(tsegs):
                continue
            rest_ok = False
        if all(ts.startswith(":") or ts == s for ts, s in zip(tsegs, segs)) and (rest_ok or len(segs) == len(tsegs)):
            return t
    return UNMATCHED_ROUTE


def _page_url(d: dict):
    for f in _URL_FIELDS:
        if d.get(f) is not None:
            return f, d[f]
    att = d.get("attribution")
    if isinstance(att, dict):
        for f in ("navigationURL", "url"):
            if att.get(f) is not None:
                return f"attribution.{f}", att[f]
    return None, None


def _route_from_url(f: str, url, templates: tuple) -> str:
    from urllib.parse import urlsplit
    if not isinstance(url, str) or not url:
        raise _Bad(f"bad_type:{f}" if not isinstance(url, str) else f"bad_value:{f}", "expected a URL")
    try:
        path = urlsplit(url).path
    except ValueError as e:
        raise _Bad(f"bad_value:{f}", str(e)[:100]) from None
    return route_for_path(path, templates)


def _rum(d: dict, key, kafka_ts_ms, out: list, opts=None) -> None:
    name = _str(d, "name")
    metric = RUM_NAMES.get(name.upper())
    if metric is None:
        raise _Bad("bad_value:name", f"{name[:40]} (expected one of {', '.join(RUM_NAMES)})")
    v = _num(d, "value")
    if v < 0:
        raise _Bad("bad_value:value", repr(v))
    route = d.get("route") or d.get("page") or d.get("path")
    if route is None:
        f, url = _page_url(d)
        if f is not None:
            route = _route_from_url(f, url, (opts or _NO_OPTIONS).route_templates)
        else:
            route = _key_str(key)
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


_DDL_TYPES = {
    "number": ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE",
               "DOUBLE PRECISION", "REAL", "YEAR", "SERIAL", "BIGSERIAL", "SMALLSERIAL", "INT2",
               "INT4", "INT8", "FLOAT4", "FLOAT8", "DATE", "TIME", "DATETIME"),
    "string": ("CHAR", "VARCHAR", "NCHAR", "NVARCHAR", "CHARACTER", "CHARACTER VARYING", "TEXT",
               "TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "NTEXT", "ENUM", "SET", "JSON", "JSONB", "UUID",
               "BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BYTEA",
               "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
    "boolean": ("BOOL", "BOOLEAN"),
}
_DDL_TYPE = {t: j for j, ts in _DDL_TYPES.items() for t in ts}


def _ddl_json_type(col: dict) -> str:
    """A DDL column type -> the JSON type of its value in a Debezium row image ("null" = either)."""
    name = str(col.get("typeName") or "").upper().replace(" UNSIGNED", "").replace(" ZEROFILL", "").strip()
    if name == "BIT":
        return "boolean" if col.get("length") in (None, 1) else "string"
    return _DDL_TYPE.get(name, "null")


def _table_id(tc: dict, database) -> tuple[str, str]:
    """("db", "table") of a tableChanges entry: its id is "db"."table" (or "db"."schema"."table")."""
    parts = [p.strip('"`[]') for p in str(tc.get("id") or "").split(".") if p]
    if not parts:
        raise _Bad("missing_field:tableChanges.id")
    db = parts[0] if len(parts) > 1 else database
    if not isinstance(db, str) or not db:
        raise _Bad("missing_field:databaseName")
    return db, parts[-1]


def _schema_change(d: dict, kafka_ts_ms, out: list) -> None:
    changes = d.get("tableChanges")
    if changes is None:
        changes = []
    if not isinstance(changes, list):
        raise _Bad("bad_type:tableChanges", type(changes).__name__)
    src = d.get("source") if isinstance(d.get("source"), dict) else {}
    ts = _time(d, ("ts_ms",), None) if d.get("ts_ms") is not None else _time(src, ("ts_ms",), kafka_ts_ms)
    database = d.get("databaseName") or src.get("db")
    for tc in changes:
        if not isinstance(tc, dict):
            raise _Bad("bad_type:tableChanges", type(tc).__name__)
        kind = str(tc.get("type") or "").upper()
        if kind not in ("CREATE", "ALTER", "DROP"):
            raise _Bad("bad_value:tableChanges.type", kind[:20])
        db, table = _table_id(tc, database)
        full = f"{db}.{table}"
        cols = ((tc.get("table") or {}).get("columns") or []) if kind != "DROP" else []
        if not isinstance(cols, list) or not all(isinstance(c, dict) and c.get("name") for c in cols):
            raise _Bad("bad_type:tableChanges.table.columns")
        shape = tuple(sorted((str(c["name"]), _ddl_json_type(c)) for c in cols))
        out.append(Change(full, full, "s", ts, None, shape))


def is_tombstone(topic: str, value: bytes | None) -> bool:
    """A Debezium tombstone: a null value or the legacy {"schema":null,"payload":null}."""
    if topic != "cdc":
        return False
    if not value:
        return True
    if len(value) > 64 or value[:1] != b"{":
        return False
    try:
        return orjson.loads(value) == {"schema": None, "payload": None}
    except orjson.JSONDecodeError:
        return False


def _cdc(d: dict, key, kafka_ts_ms, out: list, opts=None) -> None:
    if "payload" in d and ("schema" in d or isinstance(d.get("payload"), dict)):
        d = d["payload"]
        if d is None:
            return  # a wrapped tombstone
        if not isinstance(d, dict):
            raise _Bad("not_object", "payload")
    if "tableChanges" in d or "ddl" in d:
        _schema_change(d, kafka_ts_ms, out)
        return
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
_NO_OPTIONS = InputOptions()


def dlq_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
               kafka_ts_ms: int | None, rejection: Rejection) -> dict:
    """The gw.dlq value for a rejected record: gatewatch.processors.dlq's record (the bytes, reason, source
    offset), so run_pipeline's rejections are exactly what the ingest worker publishes."""
    from gatewatch.processors.dlq import dlq_record as make
    return make(topic, partition, offset, rejection.reason, value, rejection.detail)
