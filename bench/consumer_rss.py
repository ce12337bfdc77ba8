"""A consumer's memory while a backlog waits behind slow processing, with librdkafka's prefetch
queue at its default size and bounded, as a ratio measured in the same run.

    python bench/consumer_rss.py [--records 300000] [--engine tansu|kafka] [--kbytes 16384]

A consumer that processes slower than it can fetch fills its local queue up to
queued.max.messages.kbytes (64 MiB by default, for the consumer's one queue). This is the question
the README's 1M-record run left open: ingest grew 45 -> 84 MB while decide stayed flat. Each
consumer runs in its own process, takes one record per 10 ms for --seconds and reports how far its
RSS rose above the level after its first record; the two settings alternate, twice each.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewatch.streams.runtime import topics  # noqa: E402
from gatewatch.streams.runtime.brokers import ENGINES, make_broker  # noqa: E402
from gatewatch.streams.runtime.kafka import consumer, create_topics, producer  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def child(bootstrap: str, topic: str, kbytes: int, seconds: float) -> None:
    """Consume slowly; print the RSS rise over the run and the records taken."""
    overrides = {"queued.max.messages.kbytes": kbytes} if kbytes else {}
    c = consumer(bootstrap, f"bench-rss-{uuid.uuid4().hex[:6]}", **overrides)
    c.subscribe([topic])
    base, peak, taken, end = None, 0.0, 0, None
    while end is None or time.monotonic() < end:
        m = c.poll(1.0)
        if m is None or m.error():
            continue
        orjson.loads(m.value())
        taken += 1
        if base is None:
            base, end = rss_mb(), time.monotonic() + seconds
        peak = max(peak, rss_mb())
        time.sleep(0.01)  # the slow stage downstream of the fetch
    c.close()
    print(orjson.dumps({"rise_mb": peak - base, "taken": taken}).decode())


def backlog(bootstrap: str, topic: str, n: int) -> None:
    p = producer(bootstrap)
    for i in range(n):
        value = orjson.dumps({"service": f"svc-{i % 6}", "route": "/a", "cohort": "baseline", "status": 200,
                              "latency_ms": 90.5 + i % 300, "ts": "2026-12-08T01:10:30.000Z",
                              "pad": "x" * 120})
        while True:
            try:
                p.produce(topic, key=f"svc-{i % 6}".encode(), value=value)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10_000 == 0:
            p.poll(0)
    if p.flush(120):
        sys.exit("bench: the backlog was not delivered in 120 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--engine", choices=ENGINES, default="tansu")
    ap.add_argument("--kbytes", type=int, default=16_384, help="the bounded queued.max.messages.kbytes")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--child", nargs=3, metavar=("BOOTSTRAP", "TOPIC", "KBYTES"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a.child[0], a.child[1], int(a.child[2]), a.seconds)
    with make_broker(a.engine) as broker:
        prefix = f"rss{uuid.uuid4().hex[:6]}."
        create_topics(broker.bootstrap, prefix, partitions=3)
        topic = topics.topic("metrics", prefix)
        backlog(broker.bootstrap, topic, a.records)
        rises: dict[str, list[float]] = {"default": [], "bounded": []}
        for _round in range(2):
            for name, kbytes in (("default", 0), ("bounded", a.kbytes)):
                out = subprocess.run([sys.executable, __file__, "--seconds", str(a.seconds),
                                      "--child", broker.bootstrap, topic, str(kbytes)],
                                     capture_output=True, text=True, timeout=300, env=os.environ)
                if out.returncode:
                    sys.exit(f"bench: the {name} consumer failed: {out.stderr.strip()[-500:]}")
                rises[name].append(orjson.loads(out.stdout.strip().splitlines()[-1])["rise_mb"])
    d, b = statistics.mean(rises["default"]), statistics.mean(rises["bounded"])
    print(f"engine {a.engine}, backlog {a.records:,} records on 3 partitions, one record taken per 10 ms "
          f"for {a.seconds:.0f} s")
    print(f"RSS rise, default prefetch queue (64 MiB)      : {d:6.1f} MB  (runs: {', '.join(f'{x:.1f}' for x in rises['default'])})")
    print(f"RSS rise, queued.max.messages.kbytes={a.kbytes:<8}: {b:6.1f} MB  (runs: {', '.join(f'{x:.1f}' for x in rises['bounded'])})"
          f"   {b / d if d else float('nan'):.2f}x the default")


if __name__ == "__main__":
    main()
