"""The Avro wire format: the Confluent framing (magic byte 0, 4-byte schema id) with gatewatch's own
schema ids, since it runs without a schema registry."""
from __future__ import annotations

import io
import struct

import fastavro

from gatewatch.processors.inputs.samples import Bad
from gatewatch.schemas import avro_schema

AVRO_SCHEMA_IDS = {1: "request_sample", 2: "gauge_sample", 3: "web_vitals", 4: "debezium_envelope"}


def decode_avro(value: bytes) -> dict:
    if len(value) < 5:
        raise Bad("bad_avro", "shorter than the 5-byte Confluent header")
    (schema_id,) = struct.unpack(">I", value[1:5])
    name = AVRO_SCHEMA_IDS.get(schema_id)
    if name is None:
        raise Bad("unknown_schema_id", str(schema_id))
    try:
        return fastavro.schemaless_reader(io.BytesIO(value[5:]), avro_schema(name))
    except Exception as e:
        raise Bad("bad_avro", f"{name}: {type(e).__name__}: {e}"[:200]) from None


def encode_avro(name: str, record: dict) -> bytes:
    """The Confluent-framed Avro bytes for a record (producers and tests)."""
    sid = {v: k for k, v in AVRO_SCHEMA_IDS.items()}[name]
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", sid))
    fastavro.schemaless_writer(buf, avro_schema(name), record)
    return buf.getvalue()
