"""Kafka helpers for executor tests: produce actions, read every receipt."""
from __future__ import annotations

import time
import uuid

import orjson
from confluent_kafka import TopicPartition

from gatewatch.processors.canonical import canonical_json
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import consumer, producer


def produce_actions(bootstrap: str, records: list) -> None:
    p = producer(bootstrap)
    for rec in records:
        raw = rec if isinstance(rec, bytes) else canonical_json(rec)
        key = b"junk" if isinstance(rec, bytes) else rec.get("scope", "").encode()
        p.produce(topics.topic("actions"), key=key, value=raw)
        p.poll(0)
    p.flush(10)


def read_receipts(bootstrap: str, until=None, timeout_s: float = 20.0, quiet_s: float = 1.0) -> list[dict]:
    """Every receipt on the topic (duplicates included), until `until(receipts)` holds (or, without it, quiet)."""
    name = topics.topic("receipts")
    c = consumer(bootstrap, f"read-{uuid.uuid4().hex[:6]}")
    parts = c.list_topics(name, timeout=10).topics[name].partitions
    c.assign([TopicPartition(name, p, 0) for p in parts])
    out, deadline, last = [], time.monotonic() + timeout_s, time.monotonic()
    try:
        while time.monotonic() < deadline:
            msgs = c.consume(1000, 0.1)
            for m in msgs:
                if m.error() is None:
                    out.append(orjson.loads(m.value()))
            if msgs:
                last = time.monotonic()
            if until(out) if until is not None else (out and time.monotonic() - last > quiet_s):
                break
    finally:
        c.close()
    return out
