"""What keeping a partition's order costs `gatewatch simulate`: the same scenario published with
librdkafka's defaults (5 requests in flight per connection, a retried batch may overtake the next)
and with one request in flight (streams.runtime.kafka.ordered_producer), alternating rounds on one
broker in one run. Printed: records per second of each and the ratio ordered / default.

    python bench/publish.py [--records 200000] [--rounds 3] [--engine tansu|kafka]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewatch.processors.scenarios import Scenario  # noqa: E402
from gatewatch.streams.app.simulate import load_scenario_spec, publish  # noqa: E402
from gatewatch.streams.runtime.brokers import ENGINES, make_broker  # noqa: E402
from gatewatch.streams.runtime.kafka import create_topics, ordered_producer, producer  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engine", choices=ENGINES, default="tansu")
    a = ap.parse_args()
    spec = load_scenario_spec("traffic_spike")
    sc = Scenario(spec, start_ms=int(time.time() * 1000) - 3_000_000, duration="50m")
    rates: dict[str, list[float]] = {"default": [], "ordered": []}
    with make_broker(a.engine) as b:
        create_topics(b.bootstrap)
        makers = {"default": lambda: producer(b.bootstrap, **{"linger.ms": 20}),
                  "ordered": lambda: ordered_producer(b.bootstrap, **{"linger.ms": 20})}
        for _ in range(a.rounds):
            for name, make in makers.items():
                stop = _Limit(a.records)
                t0 = time.perf_counter()
                n = publish(_Limited(sc, stop), make())
                rates[name].append(n / (time.perf_counter() - t0))
    d, o = statistics.median(rates["default"]), statistics.median(rates["ordered"])
    print(f"{a.engine}: default {d:,.0f} rec/s, ordered {o:,.0f} rec/s (medians of {a.rounds}); "
          f"ordered/default = {o / d:.2f}x")


class _Limit:
    def __init__(self, n: int):
        self.left = n


class _Limited:
    """The scenario cut to its first n records (publish reads .records() and .start_ms)."""

    def __init__(self, sc: Scenario, limit: _Limit):
        self.sc, self.limit, self.start_ms = sc, limit, sc.start_ms

    def records(self):
        for r in self.sc.records():
            if self.limit.left <= 0:
                return
            self.limit.left -= 1
            yield r


if __name__ == "__main__":
    main()
