"""Request and gauge signals against an exact reference computed here from the raw samples."""
from __future__ import annotations

import random
from collections import defaultdict

import numpy as np

from gatewatch.processors.signals import SignalConfig, run_pipeline
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.processors.windows import BURN_WINDOWS_MS

from .gen import T0, Feed, requests


def by_key(samples):
    keys = defaultdict(list)
    for s in samples:
        keys[(s["service"], s["cohort"])].append(s)
    out = {}
    for k, ss in keys.items():
        ss.sort(key=lambda s: s["ts"])
        out[k] = (np.array([s["ts"] for s in ss]), np.array([s["status"] >= 500 for s in ss]),
                  np.array([s["latency_ms"] for s in ss]))
    return out


def window(ref, end, width):
    ts, err, lat = ref
    lo, hi = np.searchsorted(ts, end - width, "left"), np.searchsorted(ts, end, "left")
    return err[lo:hi], lat[lo:hi]


def close(a, b, rel=1e-9):
    return a == b or abs(a - b) <= rel * max(abs(a), abs(b))


def test_request_signals_match_reference():
    feed = Feed()
    samples = requests(feed, 30_000, seed=3, services=("api", "web"), err=0.03)
    cfg = SignalConfig.from_policy({"slo": {"availability": {"target": 99.5, "by_service": {"web": 99.0}},
                                            "latency_p95_ms": {"window": "2m"}}}, "h")
    batches, rejections = run_pipeline(feed.records, cfg, flush_every=997)
    assert rejections == []
    ref = by_key(samples)
    checked = defaultdict(int)
    ends = defaultdict(set)
    for batch in batches:
        assert len({(s["scope"], s["ts"]) for s in batch}) == 1
        for s in batch:
            end = parse_time_ms(s["ts"])
            key = (s["scope"], s["cohort"])
            ends[key].add(end)
            w = s["window_s"] * 1000
            err, lat = window(ref[key], end, w)
            n = len(err)
            assert s["samples"] == n, s
            name = s["name"]
            if n == 0:
                assert s["value"] is None
                continue
            if name.startswith("burn_rate_"):
                assert w == BURN_WINDOWS_MS[name[len("burn_rate_"):]]
                target = 99.0 if s["scope"] == "web" else 99.5
                assert close(s["value"], err.sum() / n / (1 - target / 100)), s
            elif name == "err5xx_rate":
                assert close(s["value"], err.sum() / n)
            elif name == "request_rate":
                assert close(s["value"], n / (w / 1000))
            elif name in ("latency_p95_ms", "latency_p99_ms"):
                assert w == 120_000
                if n >= 1000:
                    exact = np.percentile(lat, 95 if "95" in name else 99)
                    assert abs(s["value"] - exact) <= 0.01 * exact, (s, exact)
                    checked["pct"] += 1
            checked[name] += 1
    assert checked["pct"] > 50 and checked["burn_rate_5m"] > 50
    # every step from the earliest sample's step to the final watermark, for every key
    wm = max(s["ts"] for s in samples) - 120_000
    first = min(s["ts"] for s in samples)
    expected = set(range(first - first % 10_000 + 10_000, wm - wm % 10_000 + 1, 10_000))
    for key, got in ends.items():
        key_first = ref[key][0][0]
        assert got == {e for e in expected if e > key_first}, key


def test_long_windows_are_exact_and_on_five_minute_ends():
    """3+ days of sparse traffic, 60 s step: burn_rate_1d/3d exact at every 5-min aligned end."""
    feed = Feed()
    rng = random.Random(5)
    samples = []
    for i in range(10_000):
        ts = T0 + i * 28_000 + rng.randint(0, 20_000)
        s = {"service": "api", "cohort": "stable", "status": 500 if rng.random() < 0.01 else 200,
             "latency_ms": 10.0, "ts": ts}
        feed.put("metrics", 0, s)
        samples.append(s)
    cfg = SignalConfig.from_policy({"signals": {"step": "60s"}}, "h")
    batches, _ = run_pipeline(feed.records, cfg, flush_every=4096)
    ref = by_key(samples)[("api", "stable")]
    seen = defaultdict(int)
    for batch in batches:
        for s in batch:
            if s["name"] not in ("burn_rate_1d", "burn_rate_3d", "burn_rate_6h"):
                continue
            end = parse_time_ms(s["ts"])
            if s["name"] != "burn_rate_6h":
                assert end % 300_000 == 0, s
            err, _ = window(ref, end, s["window_s"] * 1000)
            assert s["samples"] == len(err)
            assert close(s["value"], err.sum() / len(err) / (1 - 0.999))
            seen[s["name"]] += 1
    span_steps = (10_000 * 28_000) // 60_000
    assert seen["burn_rate_6h"] > span_steps - 10
    assert seen["burn_rate_3d"] > span_steps // 5 - 10 and seen["burn_rate_1d"] == seen["burn_rate_3d"]


def test_gauges_last_value_and_count():
    feed = Feed()
    rng = random.Random(11)
    gs = []
    for i in range(3000):
        ts = T0 + i * 400 - rng.randint(0, 5000)
        g = {"type": "gauge", "service": "pool", "name": rng.choice(["invariant", "obs_uptime"]),
             "value": rng.randint(0, 3), "ts": ts}
        feed.put("metrics", 1, g)
        gs.append((i, g))
    batches, _ = run_pipeline(feed.records, SignalConfig(), flush_every=101)
    n = 0
    for batch in batches:
        for s in batch:
            end = parse_time_ms(s["ts"])
            inside = [(g["ts"], i, g["value"]) for i, g in gs
                      if g["name"] == s["name"] and end - 300_000 <= g["ts"] < end]
            assert s["samples"] == len(inside)
            assert s["value"] == (max(inside)[2] if inside else None)
            n += 1
    assert n > 100


def test_rate_window_not_made_of_coarse_buckets():
    feed = Feed()
    samples = requests(feed, 6000, seed=8, services=("api",), cohorts=("stable",), err=0.1, spacing_ms=60)
    cfg = SignalConfig.from_policy({"signals": {"rate_window": "70s"}})
    batches, _ = run_pipeline(feed.records, cfg, flush_every=300)
    ref = by_key(samples)[("api", "stable")]
    rates = [s for b in batches for s in b if s["name"] in ("err5xx_rate", "request_rate")]
    assert rates
    for s in rates:
        assert s["window_s"] == 70
        err, _ = window(ref, parse_time_ms(s["ts"]), 70_000)
        assert s["samples"] == len(err)
        expected = err.sum() / len(err) if s["name"] == "err5xx_rate" else len(err) / 70
        assert close(s["value"], expected)


def test_idle_gauge_reports_null_then_is_dropped():
    feed = Feed()
    for i in range(10):
        feed.put("metrics", 0, {"type": "gauge", "service": "pool", "name": "invariant", "value": 0, "ts": T0 + i * 1000})
    for i in range(150):  # other traffic keeps stream time moving for 2.5 h
        feed.put("metrics", 0, {"service": "api", "status": 200, "latency_ms": 1, "ts": T0 + i * 60_000})
    batches, _ = run_pipeline(feed.records, SignalConfig(), flush_every=16)
    inv = [s for b in batches for s in b if s["name"] == "invariant"]
    ends = [parse_time_ms(s["ts"]) for s in inv]
    assert ends == list(range(T0 + 10_000, T0 + 10_000 + 3_900_000 - 9_000, 10_000))[:len(ends)]
    last_data = T0 + 9_000
    assert all(s["value"] == 0 for s, e in zip(inv, ends) if e <= last_data + 300_000)
    assert all(s["value"] is None and s["samples"] == 0 for s, e in zip(inv, ends) if e > last_data + 300_000)
    assert max(ends) - last_data <= 300_000 + 3_600_000
    assert max(ends) > last_data + 3_600_000


def test_batches_say_their_domain_even_for_free_gauge_names():
    from gatewatch.processors.signals import batch_domain
    feed = Feed()
    for i in range(40):
        feed.put("metrics", 0, {"type": "gauge", "service": "api", "name": "queue_depth", "value": i, "ts": T0 + i * 10_000})
        feed.put("metrics", 0, {"service": "api", "status": 200, "latency_ms": 3, "ts": T0 + i * 10_000})
    batches, _ = run_pipeline(feed.records, SignalConfig(), flush_every=9)
    domains = {batch_domain(b) for b in batches}
    assert domains == {"gauges", "requests"}
    assert all(b.domain == batch_domain(list(b)) for b in batches)
    assert {s["name"] for b in batches if b.domain == "gauges" for s in b} == {"queue_depth"}
