"""The Avro wire format: the Confluent framing (magic byte 0, 4-byte schema id) with gatewatch's own
schema ids, since it runs without a schema registry."""
from __future__ import annotations

import io
import struct

import fastavro

from gatewatch.processors.inputs.samples import Bad
from gatewatch.schemas import avro_schema

AVRO_SCHEMA_IDS = {1: "request_sample", 2: "gauge_sample", 3: "web_vitals", 4: "debezium_envelope",
                   6: "request_sample", 7: "web_vitals", 8: "gauge_sample"}  # 5: processors.spans' canonical_span
# Ids of an earlier layout: the schema without the fields appended since (each with a null default).
# A producer keeps writing its id; a new field takes a new id, so no record is read with the wrong layout.
EARLIER_LAYOUTS = {1: ("release",), 2: ("release",), 3: ("release",)}
NEWEST_ID = {name: max(i for i, n in AVRO_SCHEMA_IDS.items() if n == name) for name in AVRO_SCHEMA_IDS.values()}


def decode_avro(value: bytes) -> dict:
    if len(value) < 5:
        raise Bad("bad_avro", "shorter than the 5-byte Confluent header")
    (schema_id,) = struct.unpack(">I", value[1:5])
    name = AVRO_SCHEMA_IDS.get(schema_id)
    if name is None:
        raise Bad("unknown_schema_id", str(schema_id))
    try:
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), avro_schema(name, EARLIER_LAYOUTS.get(schema_id, ())))
    except Exception as e:
        raise Bad("bad_avro", f"{name}: {type(e).__name__}: {e}"[:200]) from None


def encode_avro(name: str, record: dict, schema_id: int | None = None) -> bytes:
    """The Confluent-framed Avro bytes for a record (producers and tests), in the newest layout of
    `name` unless `schema_id` names an earlier one."""
    sid = NEWEST_ID[name] if schema_id is None else schema_id
    if AVRO_SCHEMA_IDS.get(sid) != name:
        raise ValueError(f"schema id {sid} is not {name}")
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", sid))
    fastavro.schemaless_writer(buf, avro_schema(name, EARLIER_LAYOUTS.get(sid, ())), record)
    return buf.getvalue()
