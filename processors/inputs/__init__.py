"""Decode, validate and normalize every input format into samples, or a typed rejection.

`decode(topic, key, value, kafka_ts_ms, options=None)` never raises on bad input: it returns a
list of samples (possibly empty: a Debezium tombstone) or a `Rejection` whose `.reason` is one of

    empty, not_json, not_object, unknown_topic, unknown_format, bad_avro, unknown_schema_id,
    missing_field:<f>, bad_type:<f>, bad_value:<f>, bad_time:<f>
    (and `late`, given by gatewatch.processors.partials, which knows the watermark)

Wire formats (README "Topics"):
- JSON (orjson): an object, or an array of objects (a batched beacon / batch of samples).
- Avro: the Confluent wire format, magic byte 0x00 + 4-byte big-endian schema id + the
  schemaless fastavro body. A JSON document never starts with byte 0, so the first byte tells
  the two apart without a header. We run without a schema registry: the ids are gatewatch's own,
  `AVRO_SCHEMA_IDS` in processors/inputs/avro.py (6 request_sample, 8 gauge_sample, 7 web_vitals,
  4 debezium_envelope; 1, 2 and 3: request_sample, gauge_sample and web_vitals as they were before
  `release`), with
  the schemas in schemas/<name>.avsc.

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

import orjson

from gatewatch.processors.dlq import dlq_record as _dlq_record
from gatewatch.processors.inputs.avro import AVRO_SCHEMA_IDS, decode_avro, encode_avro
from gatewatch.processors.inputs.debezium import CDC_OPS, decode_cdc, is_tombstone, row_shape
from gatewatch.processors.inputs.metrics import (
    UNSET,
    WIRE_ERRORS,
    RequestWire,
    decode_metrics,
    decode_request_wire,
    fast_request,
)
from gatewatch.processors.inputs.samples import (
    DEFAULT_COHORT,
    DEFAULT_RUM_SCOPE,
    MAX_TS_MS,
    MIN_TS_MS,
    Bad,
    Change,
    Gauge,
    Heartbeat,
    InputOptions,
    Predecoded,
    Rejection,
    Request,
    Vital,
)
from gatewatch.processors.inputs.timestamps import MILLIS_Z, SECOND_MS, cached_rfc3339_ms, fast_rfc3339_ms
from gatewatch.processors.inputs.vitals import RUM_NAMES, UNMATCHED_ROUTE, decode_rum, route_for_path

__all__ = ["AVRO_SCHEMA_IDS", "CDC_OPS", "DEFAULT_COHORT", "DEFAULT_RUM_SCOPE", "MAX_TS_MS", "MILLIS_Z", "MIN_TS_MS",
           "RUM_NAMES", "SECOND_MS", "UNMATCHED_ROUTE", "UNSET", "WIRE_ERRORS", "Change", "Gauge", "Heartbeat",
           "InputOptions", "Predecoded", "Rejection", "Request", "RequestWire", "Vital", "cached_rfc3339_ms",
           "decode", "decode_request_wire", "dlq_record", "encode_avro", "fast_request", "fast_rfc3339_ms",
           "is_tombstone", "route_for_path", "row_shape"]

_HANDLERS = {"metrics": decode_metrics, "rum": decode_rum, "cdc": decode_cdc}
_NO_OPTIONS = InputOptions()


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
            docs = [decode_avro(value)]
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
    except Bad as b:
        return b.rejection
    except Exception as e:  # bad input must never crash a worker
        return Rejection("unknown_format", f"{type(e).__name__}: {e}"[:200])


def dlq_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None,
               kafka_ts_ms: int | None, rejection: Rejection) -> dict:
    """The gw.dlq value for a rejected record: gatewatch.processors.dlq's record (the bytes, reason, source
    offset), so run_pipeline's rejections are exactly what the ingest worker publishes."""
    return _dlq_record(topic, partition, offset, rejection.reason, value, rejection.detail)
