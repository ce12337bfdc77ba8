"""A mixed stream over three topics: requests, gauges, RUM, CDC, heartbeats, bad and late records."""
from __future__ import annotations

import random

from .gen import T0, Feed


def mixed_feed(seed: int, n: int = 2000) -> Feed:
    rng = random.Random(seed)
    feed = Feed()
    shape_v2 = rng.random() < 0.5
    for i in range(n):
        ts = T0 + i * 150 - rng.randint(0, 60_000)
        r = rng.random()
        if i == 3:  # far behind the first sample, before its step: still on time
            ts = T0 - 100_000
        if r < 0.45:
            feed.put("metrics", 0, {"service": rng.choice(["api", "auth"]), "cohort": rng.choice(["stable", "canary"]),
                                    "status": rng.choice([200, 200, 200, 404, 500, 503]),
                                    "latency_ms": rng.lognormvariate(4, 1), "ts": ts})
        elif r < 0.5:
            feed.put("metrics", 0, {"type": "gauge", "service": "api", "name": "invariant",
                                    "value": rng.randint(0, 1), "ts": ts})
        elif r < 0.7:
            feed.put("rum", rng.randint(0, 1), {"name": rng.choice(["INP", "LCP", "CLS", "TTFB", "FCP"]),
                                                "value": rng.choice([0, rng.lognormvariate(5, 0.5), rng.random() / 5]),
                                                "rating": "good", "delta": 1, "id": f"v4-{i}", "navigationType": "navigate",
                                                "route": rng.choice(["/", "/market/:id"]),
                                                "cohort": rng.choice(["stable", "canary", "baseline"]), "timestamp": ts})
        elif r < 0.9:
            op = rng.choice("cccuudr")
            after = {"id": i, "total": 1.5, "note": "x"}
            if shape_v2 and i > n // 2:
                after = rng.choice([{"id": i, "total": "1.5"}, {"id": i, "total": 1, "extra": True, "note": "y"}])
            env = {"op": op, "ts_ms": ts, "after": after, "before": None,
                   "source": {"db": "shop", "table": rng.choice(["orders", "users"]), "ts_ms": ts - rng.randint(0, 5000),
                              "snapshot": "true" if op == "r" else "false"}}
            feed.put("cdc", 0, {"schema": {}, "payload": env} if rng.random() < 0.5 else env)
        elif r < 0.93:
            feed.put("cdc", 0, {"ts_ms": ts})
        elif r < 0.96:
            feed.put("metrics", 0, {"service": "api", "status": 200, "latency_ms": 1, "ts": ts - 400_000})  # late
        else:
            feed.put(rng.choice(["metrics", "rum", "cdc"]), 0, rng.choice([b"{", b"[]", b"{}", b"\xff", None]))
    return feed
