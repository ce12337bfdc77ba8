"""The gw.dlq record: the rejected bytes, why, and where they came from. Lossless for binary payloads."""
from __future__ import annotations

import base64


def dlq_record(source_topic: str, partition: int, offset: int, reason: str, payload: bytes | None,
               detail: str = "") -> dict:
    rec = {"source_topic": source_topic, "partition": partition, "offset": offset, "reason": reason,
           "detail": detail, "payload": None}
    if payload is not None:
        try:
            rec["payload"] = payload.decode("utf-8")
        except UnicodeDecodeError:  # e.g. Avro: keep the exact bytes
            rec["payload_b64"] = base64.b64encode(payload).decode()
    return rec
