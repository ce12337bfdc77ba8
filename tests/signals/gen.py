"""Generated telemetry for the signal tests: raw records plus the samples they carry."""
from __future__ import annotations

import random

import orjson

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Feed:
    """Builds (topic, partition, offset, key, value, kafka_ts) records with per-partition offsets."""

    def __init__(self):
        self.records: list[tuple] = []
        self._off: dict[tuple, int] = {}

    def put(self, topic: str, partition: int, value, key: bytes | None = None, kafka_ts=None):
        o = self._off.get((topic, partition), 0)
        self._off[(topic, partition)] = o + 1
        raw = value if isinstance(value, (bytes, type(None))) else orjson.dumps(value)
        self.records.append((topic, partition, o, key, raw, kafka_ts))


def requests(feed: Feed, n: int, seed: int, services=("api",), cohorts=("stable", "canary"),
             spacing_ms=20, jitter_ms=30_000, err=0.02, partition=0, start=T0):
    """n request samples, event times increasing with bounded disorder (< lateness)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = start + i * spacing_ms - rng.randint(0, jitter_ms)
        s = {"service": rng.choice(services), "cohort": rng.choice(cohorts),
             "status": 503 if rng.random() < err else 200,
             "latency_ms": round(rng.lognormvariate(4.5, 0.6), 3), "ts": ts}
        feed.put("metrics", partition, s, key=s["service"].encode())
        out.append(s)
    return out
