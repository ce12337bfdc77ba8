"""Micro-benchmark of the pure ingest path, as ratios against orjson decode alone (same run).

    python -m tests.signals.bench_processors [N]

Prints events/s of: orjson.loads (baseline), inputs.decode, PartitionAggregator.add (+flush),
and run_pipeline (aggregate + signal stage), each as a ratio of the baseline.
"""
from __future__ import annotations

import sys
import time

import orjson

from gatewatch.processors.inputs import decode
from gatewatch.processors.partials import PartitionAggregator
from gatewatch.processors.signals import SignalConfig, run_pipeline

from .gen import Feed, requests


def rate(fn, n) -> float:
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        fn()
        best = max(best, n / (time.perf_counter() - t))
    return best


def main(n: int = 200_000) -> None:
    feed = Feed()
    requests(feed, n, seed=1, services=("api", "web", "auth"), spacing_ms=2)
    values = [r[4] for r in feed.records]
    cfg = SignalConfig()

    def loads():
        for v in values:
            orjson.loads(v)

    def dec():
        for v in values:
            decode("metrics", None, v, None)

    def agg():
        a = PartitionAggregator("metrics", 0, cfg)
        for i, v in enumerate(values):
            a.add(i, None, v, None)
            if i % 2000 == 1999:
                a.flush()
        a.flush()

    base = rate(loads, n)
    print(f"orjson.loads           {base:12,.0f} ev/s  1.00x")
    for name, fn in (("inputs.decode", dec), ("aggregator add+flush", agg),
                     ("run_pipeline (replay)", lambda: run_pipeline(feed.records, cfg, 2000))):
        r = rate(fn, n)
        print(f"{name:22s} {r:12,.0f} ev/s  {r / base:.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
