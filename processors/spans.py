"""Canonical span contract (seed 002 §3.1, §13.2, validator `canonical_contract_v1` of §25.1).

A span on gw.spans is a JSON object:

    {"id": "s_...", "tenant": "t_...", "who": "dan", "did": "sale.post", "this": "order:12345",
     "when": "2025-10-05T22:18:07Z", "confirmed_by": ["pos://register-7"], "status": "confirmed",
     "data": {...}}

Rules (each failure has one typed reason, the first that applies, in this order):
  not_json                 the bytes are not JSON
  not_object               the JSON is not an object
  missing_field:<f>        id, tenant, who, did, this or when is absent or null
  bad_type:<f>             one of those (or status) is not a string, or is an empty string
  bad_time:when            `when` is not an RFC 3339 timestamp with an offset, or is outside 1970..9000
  not_array:confirmed_by   confirmed_by is present (not null) and not an array
  bad_type:confirmed_by    an element of confirmed_by is not a string
  not_object:data          data is present (not null) and not an object

Extra fields are allowed and kept (the contract is `require`/`allow`, not closed).

Wire: JSON, or Avro in the Confluent framing (byte 0, 4-byte big-endian schema id 5, then the
schemaless body of schemas/canonical_span.avsc); Avro adds the reasons bad_avro and
unknown_schema_id. A JSON document never starts with byte 0.
Pure: no I/O, no clock.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms

REQUIRED = ("id", "tenant", "who", "did", "this", "when")
OPTIONAL_STRINGS = ("status",)
# gatewatch's own Avro schema id for canonical_span (the others are processors/inputs/avro.py's AVRO_SCHEMA_IDS).
AVRO_SCHEMA_ID = 5
MAX_WHEN_MS = 221_845_392_000_000  # 9000-01-01T00:00:00Z; spans before 1970 or after 9000 are bad_time


class Span(NamedTuple):
    """A validated span: the decoded object and its event time in epoch ms."""
    doc: dict
    when_ms: int

    @property
    def id(self) -> str:
        return self.doc["id"]

    @property
    def tenant(self) -> str:
        return self.doc["tenant"]


class Rejected(NamedTuple):
    reason: str


def validate(obj: Any) -> Span | Rejected:
    """Check a decoded value against canonical_contract_v1."""
    if not isinstance(obj, dict):
        return Rejected("not_object")
    get = obj.get
    status = get("status")
    fast = all(type(v) is str and v for v in (get("id"), get("tenant"), get("who"), get("did"), get("this"),
                                              get("when"))) and (status is None or (type(status) is str and status))
    if not fast:  # find the first failing rule, in the documented order
        return _first_field_failure(obj) or _check_rest(obj)
    return _check_rest(obj)


def _first_field_failure(obj: dict) -> Rejected | None:
    for f in REQUIRED:
        if obj.get(f) is None:
            return Rejected(f"missing_field:{f}")
    for f in REQUIRED + OPTIONAL_STRINGS:
        v = obj.get(f)
        if f in REQUIRED or v is not None:
            if not isinstance(v, str) or not v:
                return Rejected(f"bad_type:{f}")
    return None


def _check_rest(obj: dict) -> Span | Rejected:
    when = obj["when"]
    # RFC 3339 only: parse_time_ms would also take an epoch number written as a string.
    if when.lstrip("-").replace(".", "", 1).isdigit():
        return Rejected("bad_time:when")
    try:
        when_ms = parse_time_ms(when)
    except (TimeFormatError, ValueError, OverflowError):
        return Rejected("bad_time:when")
    if not 0 <= when_ms < MAX_WHEN_MS:  # deadlines (when + timeouts) must stay formattable
        return Rejected("bad_time:when")
    cb = obj.get("confirmed_by")
    if cb is not None:
        if not isinstance(cb, list):
            return Rejected("not_array:confirmed_by")
        if not all(isinstance(x, str) for x in cb):
            return Rejected("bad_type:confirmed_by")
    data = obj.get("data")
    if data is not None and not isinstance(data, dict):
        return Rejected("not_object:data")
    return Span(obj, when_ms)


def decode(raw: bytes | str | None) -> Span | Rejected:
    """Bytes off the wire -> Span or Rejected (never raises). JSON, or Confluent-framed Avro."""
    if raw is None:
        return Rejected("not_json")
    if raw[:1] == b"\x00":
        return _decode_avro(raw)
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Rejected("not_json")
    return validate(obj)


def _decode_avro(raw: bytes) -> Span | Rejected:
    """Magic byte 0 + 4-byte big-endian schema id + schemaless body (as gatewatch.processors.inputs does)."""
    import io

    import fastavro

    from gatewatch.schemas import avro_schema
    if len(raw) < 5:
        return Rejected("bad_avro")
    if int.from_bytes(raw[1:5], "big") != AVRO_SCHEMA_ID:
        return Rejected("unknown_schema_id")
    try:
        obj = fastavro.schemaless_reader(io.BytesIO(raw[5:]), avro_schema("canonical_span"))
    except Exception:  # noqa: BLE001 - any malformed body is one typed rejection
        return Rejected("bad_avro")
    return validate(obj)


def encode_avro(doc: dict) -> bytes:
    """Confluent-framed Avro bytes of a span (producers and tests)."""
    import io

    import fastavro

    from gatewatch.schemas import avro_schema
    buf = io.BytesIO()
    buf.write(b"\x00" + AVRO_SCHEMA_ID.to_bytes(4, "big"))
    fastavro.schemaless_writer(buf, avro_schema("canonical_span"), doc)
    return buf.getvalue()


def dlq_record(source_topic: str, partition: int, offset: int, reason: str, raw: bytes | str | None) -> dict:
    """The gw.dlq value for a rejected record (key = source topic): the one shape of gatewatch.processors.dlq."""
    from gatewatch.processors.dlq import dlq_record as make
    return make(source_topic, partition, offset, reason, raw.encode() if isinstance(raw, str) else
                (None if raw is None else bytes(raw)))
