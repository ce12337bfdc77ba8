"""Core Web Vitals p75 and deltas: exact counts, p75 within 1%, seeded bootstrap CI."""
from __future__ import annotations

import random

import numpy as np

from gatewatch.processors.signals import SignalConfig, run_pipeline
from gatewatch.processors.timefmt import parse_time_ms

from .gen import T0, Feed

ENV = {"rum": {"routes": [{"route": "/", "inp_p75_ms": 180, "lcp_p75_ms": 2200, "cls_p75": 0.08}]}}


def rum_feed(n=12_000, seed=2, cohorts=("stable", "canary"), slower=1.15):
    rng = random.Random(seed)
    feed, raw = Feed(), []
    for i in range(n):
        cohort = rng.choice(cohorts)
        v = rng.lognormvariate(5.2, 0.4) * (slower if cohort == "canary" else 1.0)
        ts = T0 + i * 40 - rng.randint(0, 20_000)
        feed.put("rum", 0, {"name": "INP", "value": v, "rating": "good", "delta": v, "id": f"v4-{i}",
                            "navigationType": "navigate", "route": "/", "cohort": cohort, "timestamp": ts},
                 key=b"/")
        raw.append((cohort, ts, v))
    return feed, raw


def window_values(raw, cohort, end, width):
    return np.array([v for c, t, v in raw if c == cohort and end - width <= t < end])


def signals(batches, name):
    return [s for b in batches for s in b if s["name"] == name]


def test_p75_and_delta_vs_baseline_cohort():
    feed, raw = rum_feed()
    cfg = SignalConfig.from_policy(ENV, "p1")
    batches, rej = run_pipeline(feed.records, cfg, flush_every=500)
    assert rej == []
    p75s = signals(batches, "rum_inp_p75_ms")
    assert p75s
    checked = 0
    for s in p75s[::7]:
        end = parse_time_ms(s["ts"])
        vals = window_values(raw, s["cohort"], end, 300_000)
        assert s["samples"] == len(vals) and s["subject"] == "/" and s["scope"] == "web"
        if len(vals) >= 1000:
            exact = np.percentile(vals, 75)
            assert abs(s["value"] - exact) <= 0.01 * exact
            checked += 1
    assert checked > 5
    deltas = [s for s in signals(batches, "rum_inp_p75_ms_delta") if s["cohort"] == "canary"]
    for s in deltas[::7]:
        end = parse_time_ms(s["ts"])
        cur, base = (window_values(raw, c, end, 300_000) for c in ("canary", "stable"))
        assert s["baseline_source"] == "cohort:stable" and s["baseline_samples"] == len(base)
        if len(cur) >= 1000 and len(base) >= 1000:
            exact = np.percentile(cur, 75) / np.percentile(base, 75) - 1
            assert abs(s["value"] - exact) <= 0.02 * (1 + exact)
            assert s["ci_low"] < s["value"] < s["ci_high"]
            # against a plain resampling bootstrap of the raw values: similar interval
            rng = np.random.default_rng(0)
            reps = [np.percentile(rng.choice(cur, len(cur)), 75) / np.percentile(rng.choice(base, len(base)), 75) - 1
                    for _ in range(300)]
            lo, hi = np.percentile(reps, [2.5, 97.5])
            assert abs((s["ci_high"] - s["ci_low"]) - (hi - lo)) <= 0.35 * (hi - lo)
            assert abs(s["ci_low"] - lo) <= 0.5 * (hi - lo) and abs(s["ci_high"] - hi) <= 0.5 * (hi - lo)
    # the stable cohort, with no "baseline" cohort, is compared with env.yml's route baseline
    stable = [s for s in signals(batches, "rum_inp_p75_ms_delta") if s["cohort"] == "stable"][-1]
    assert stable["baseline"] == 180 and stable["baseline_source"] == "env"
    assert abs(stable["value"] - (signals(batches, "rum_inp_p75_ms")[-1]["value"] / 180 - 1)) < 0.05


def test_ci_is_seeded_by_policy_hash_and_window():
    feed, _ = rum_feed(6000)
    a, _ = run_pipeline(feed.records, SignalConfig.from_policy(ENV, "p1"), flush_every=100)
    b, _ = run_pipeline(feed.records, SignalConfig.from_policy(ENV, "p1"), flush_every=333)
    c, _ = run_pipeline(feed.records, SignalConfig.from_policy(ENV, "p2"), flush_every=100)
    da, db, dc = (signals(x, "rum_inp_p75_ms_delta") for x in (a, b, c))
    assert da and da == db
    assert [s["value"] for s in da] == [s["value"] for s in dc]
    assert [s["ci_low"] for s in da] != [s["ci_low"] for s in dc]


def test_no_baseline_means_null_delta_and_cls_zero_baseline():
    feed = Feed()
    for i in range(50):
        feed.put("rum", 0, {"name": "CLS", "value": 0, "route": "/nobase", "cohort": "canary", "ts": T0 + i * 1000})
        feed.put("rum", 0, {"name": "CLS", "value": 0, "route": "/nobase", "cohort": "stable", "ts": T0 + i * 1000})
    feed.put("rum", 0, {"name": "CLS", "value": 0, "route": "/nobase", "ts": T0 + 400_000})
    batches, _ = run_pipeline(feed.records, SignalConfig.from_policy(ENV, "p"), flush_every=7)
    deltas = signals(batches, "rum_cls_p75_delta")
    assert deltas and all(s["value"] is None for s in deltas)
    p75 = signals(batches, "rum_cls_p75")
    assert {s["value"] for s in p75 if s["samples"]} == {0.0}
