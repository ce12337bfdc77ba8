"""CDC signals: lag p95 (snapshot reads excluded), silence, schema drift."""
from __future__ import annotations

import random

import numpy as np

from gatewatch.processors.signals import SignalConfig, run_pipeline
from gatewatch.processors.timefmt import parse_time_ms

from .gen import T0, Feed


def env(op, ts, lag, after, table="orders", snapshot="false"):
    return {"op": op, "ts_ms": ts, "before": None, "after": after,
            "source": {"db": "shop", "table": table, "ts_ms": ts - lag, "snapshot": snapshot}}


def by_name(batches, name):
    return [s for b in batches for s in b if s["name"] == name]


def test_lag_p95_excludes_snapshots_and_silence_counts_from_last_change():
    rng = random.Random(9)
    feed, changes = Feed(), []
    for i in range(6000):
        ts = T0 + i * 50 - rng.randint(0, 10_000)
        if i % 5 == 0:
            feed.put("cdc", 0, env("r", ts, 999_999, {"id": i}, snapshot="true"))
        else:
            lag = rng.randint(100, 20_000)
            feed.put("cdc", 0, {"schema": {"type": "struct"}, "payload": env("u", ts, lag, {"id": i})})
            changes.append((ts, lag))
    last_change = max(t for t, _ in changes)
    for k in range(1, 100):  # then only heartbeats: stream time moves, the table is silent
        feed.put("cdc", 0, {"ts_ms": T0 + 300_000 + k * 10_000})
    batches, rej = run_pipeline(feed.records, SignalConfig(), flush_every=250)
    assert rej == []
    checked = 0
    for s in by_name(batches, "cdc_lag_p95_s"):
        end = parse_time_ms(s["ts"])
        lags = np.array([lag for t, lag in changes if end - 300_000 <= t < end])
        assert s["samples"] == len(lags) and s["subject"] == "shop.orders"
        if len(lags) >= 1000:
            exact = np.percentile(lags, 95) / 1000
            assert abs(s["value"] - exact) <= 0.01 * exact
            checked += 1
        elif not len(lags):
            assert s["value"] is None
    assert checked > 10
    silences = by_name(batches, "cdc_silence_s")
    for s in silences:
        end = parse_time_ms(s["ts"])
        assert s["value"] == (end - max(t for t, _ in changes if t < end)) / 1000
    assert silences[-1]["value"] > 600 and parse_time_ms(silences[-1]["ts"]) - last_change > 600_000


def test_schema_drift_counts_incompatible_shapes_only():
    feed = Feed()
    base = {"id": 1, "total": 2.5, "note": "x"}
    plan = [base] * 20 + [dict(base, extra=True)] * 10 + [{"id": 1, "total": 2.5}] * 10 \
        + [dict(base, total="2.5")] * 10 + [dict(base, note=None)] * 10
    for i, after in enumerate(plan):
        feed.put("cdc", 0, env("c", T0 + i * 1000, 10, after))
    feed.put("cdc", 0, {"ts_ms": T0 + 200_000})
    batches, _ = run_pipeline(feed.records, SignalConfig(), flush_every=3)
    drift = {parse_time_ms(s["ts"]): s for s in by_name(batches, "schema_drift")}
    at = lambda sec: drift[T0 + sec * 1000]  # noqa: E731
    assert at(30)["value"] == 0 and at(30)["samples"] == 30   # additions are compatible
    assert at(40)["value"] == 1                               # a removed field
    assert at(50)["value"] == 2                               # + a type change
    assert at(60)["value"] == 2 and at(60)["samples"] == 60   # a null is no change
    # a registered shape replaces the first-seen one
    cfg = SignalConfig.from_policy({"cdc": {"schemas": {"shop.orders": {"id": "int64", "total": "double",
                                                                          "note": "string", "extra": "boolean"}}}})
    batches, _ = run_pipeline(feed.records, cfg, flush_every=1000)
    drift = {parse_time_ms(s["ts"]): s for s in by_name(batches, "schema_drift")}
    assert drift[T0 + 20_000]["value"] == 1 and drift[T0 + 30_000]["value"] == 1


def test_silent_table_stops_being_reported_after_cdc_retention():
    feed = Feed()
    feed.put("cdc", 0, env("c", T0, 10, {"id": 1}))
    for k in range(1, 200):
        feed.put("cdc", 0, {"ts_ms": T0 + k * 10_000})
    cfg = SignalConfig.from_policy({"signals": {"cdc_retention": "10m"}})
    batches, _ = run_pipeline(feed.records, cfg, flush_every=5)
    sil = by_name(batches, "cdc_silence_s")
    assert sil[0]["value"] == 10.0 and sil[-1]["value"] <= 610
    assert sil[-1]["value"] >= 590
