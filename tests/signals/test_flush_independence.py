"""The signals do not depend on where partials are cut, on re-delivered partials, or on a
state save/restore (a crash) between partials: the streaming runtime == replay invariant."""
from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.partials import PartitionAggregator
from gatewatch.processors.signals import SignalConfig, SignalTask, run_pipeline

from .mixed import mixed_feed

CFG = SignalConfig.from_policy({"rum": {"routes": [{"route": "/", "inp_p75_ms": 180, "cls_p75": 0.08}]}},
                               "policyhash")


def canon(batches):
    return orjson.dumps(batches)


def chaotic_run(records, cfg, seed, aborts=True):
    """Like the runtime on tansu, with random flush points, re-delivered partials, state round
    trips, and aborted transactions whose partials the signal stage still sees: the ingest
    side then restarts from its last commit and re-reads (re-cutting the range differently)."""
    from collections import deque
    rng = random.Random(seed)
    aggs, history, out = {}, {}, []
    committed, buffered, ends = {}, {}, {}
    queue = deque(records)
    task = [SignalTask(0, cfg)]
    task[0].expect(f"{r[0]}:{r[1]}" for r in records)

    def apply(tp, p):
        p = orjson.loads(orjson.dumps(p))  # through the wire
        history.setdefault(tp, []).append(p)
        out.extend(task[0].apply(p))
        if rng.random() < 0.3:  # re-delivery of an older partial
            old = rng.choice(history[tp])
            assert task[0].apply(old) == []
        if rng.random() < 0.3:  # crash + restore of the signal state
            task[0] = SignalTask.from_state(orjson.loads(orjson.dumps(task[0].to_state())), cfg)

    def flush(tp, abort=False, last=False):
        p = aggs[tp].flush(caught_up=last)
        if p is None and last:
            p = aggs[tp].progress(ends[tp], True)
        if p is not None:
            apply(tp, p)
        if abort:  # the transaction is aborted but its partial was seen: re-read from the commit
            aggs[tp] = PartitionAggregator.from_state(committed[tp], cfg)
            queue.extendleft(reversed(buffered[tp]))
        else:
            committed[tp] = aggs[tp].to_state()
        buffered[tp] = []

    while queue:
        rec = queue.popleft()
        topic, part, off, key, value, kts = rec
        tp = (topic, part)
        if tp not in aggs:
            aggs[tp] = PartitionAggregator(topic, part, cfg)
            committed[tp], buffered[tp] = aggs[tp].to_state(), []
        aggs[tp].add(off, key, value, kts)
        ends[tp] = max(ends.get(tp, 0), off + 1)
        buffered[tp].append(rec)
        if rng.random() < 0.05:  # aggregator state round trip with pending buckets
            aggs[tp] = PartitionAggregator.from_state(orjson.loads(orjson.dumps(aggs[tp].to_state())), cfg)
        r = rng.random()
        if r < 0.02:
            flush(tp)
        elif aborts and r < 0.025:
            flush(tp, abort=True)
    for tp in sorted(aggs):
        flush(tp, last=True)
    return out, task[0].counters


@settings(max_examples=8, deadline=None)
@given(data_seed=st.integers(0, 10_000), chaos_seed=st.integers(0, 10_000),
       flush_every=st.integers(1, 400))
def test_output_independent_of_flush_boundaries_redelivery_and_restarts(data_seed, chaos_seed, flush_every):
    records = mixed_feed(data_seed, 1500).records
    ref, rej_ref = run_pipeline(records, CFG, flush_every=10**9)
    got, rej = run_pipeline(records, CFG, flush_every=flush_every)
    assert canon(got) == canon(ref)
    assert rej == rej_ref
    chaotic, counters = chaotic_run(records, CFG, chaos_seed)
    assert counters["conflicts"] == 0, counters
    assert canon(chaotic) == canon(ref)


def test_mixed_stream_covers_every_domain_and_is_deterministic():
    records = mixed_feed(42).records
    a, rej = run_pipeline(records, CFG, flush_every=64)
    b, _ = run_pipeline(records, CFG, flush_every=64)
    assert canon(a) == canon(b)
    names = {s["name"] for batch in a for s in batch}
    assert {"burn_rate_5m", "invariant", "rum_inp_p75_ms_delta", "rum_cls_p75", "cdc_lag_p95_s",
            "cdc_silence_s", "schema_drift"} <= names
    reasons = {r["reason"] for r in rej}
    assert "late" in reasons and "not_json" in reasons
    # one batch per (ts, domain, scope)
    keys = [(batch[0]["ts"], batch[0]["name"][:3], batch[0]["scope"]) for batch in a]
    assert all(len({(s["ts"], s["scope"]) for s in batch}) == 1 for batch in a)
    assert len(keys) == len(a)


def test_overlapping_partial_is_refused_not_double_counted():
    records = mixed_feed(1, 400).records
    metrics = [r for r in records if r[0] == "metrics"]
    agg = PartitionAggregator("metrics", 0, CFG)
    for r in metrics[:100]:
        agg.add(*r[2:])
    p1 = agg.flush()
    task = SignalTask(0, CFG)
    task.apply(p1)
    agg2 = PartitionAggregator("metrics", 0, CFG)
    for r in metrics[50:150]:
        agg2.add(*r[2:])
    assert task.apply(agg2.flush()) == [] and task.counters["conflicts"] == 1
    assert task.apply(p1) == [] and task.counters["duplicates"] == 1


def test_gaps_of_hours_and_days_are_skipped_and_split_free():
    """Bursts separated by 2 h, 9 d and 40 d gaps, every domain, gauges idle past their
    retention, a CDC table silent past cdc_retention that comes back with a new shape."""
    from .gen import T0, Feed
    feed = Feed()
    day = 86_400_000
    for burst, start in enumerate((T0, T0 + 7_200_000, T0 + 9 * day, T0 + 49 * day)):
        for i in range(60):
            ts = start + i * 2000
            feed.put("metrics", 0, {"service": "api", "status": 500 if i % 7 == 0 else 200,
                                    "latency_ms": 10 + i, "ts": ts})
            if i % 10 == 0:
                feed.put("metrics", 0, {"type": "gauge", "service": "api", "name": "invariant",
                                        "value": burst, "ts": ts})
                feed.put("rum", 0, {"name": "LCP", "value": 2000 + i, "route": "/", "cohort": "canary", "ts": ts})
                after = {"id": i, "v": "x"} if burst < 2 else {"id": i}
                feed.put("cdc", 0, {"op": "u", "ts_ms": ts, "after": after,
                                    "source": {"db": "d", "table": "t", "ts_ms": ts - 100}})
    for topic in ("metrics", "rum", "cdc"):  # stream time moves on past the last burst
        feed.put(topic, 0, b"" if topic == "cdc" else b"x")
    feed.put("metrics", 0, {"service": "api", "status": 200, "latency_ms": 1, "ts": T0 + 49 * day + 400_000})
    feed.put("rum", 0, {"name": "LCP", "value": 1, "route": "/", "cohort": "canary", "ts": T0 + 49 * day + 400_000})
    feed.put("cdc", 0, {"ts_ms": T0 + 49 * day + 400_000})
    cfg = SignalConfig.from_policy({"signals": {"step": "60s", "rum_window": "5m"}}, "h")
    ref, _ = run_pipeline(feed.records, cfg, flush_every=10**9)
    for n in (1, 29):
        got, _ = run_pipeline(feed.records, cfg, flush_every=n)
        assert canon(got) == canon(ref)
    drift = [s for b in ref for s in b if s["name"] == "schema_drift" and s["value"]]
    assert drift  # the table kept its first-seen shape across the 9-day silence
    assert max(parse(s["ts"]) for b in ref for s in b) > T0 + 49 * day


def parse(ts):
    from gatewatch.processors.timefmt import parse_time_ms
    return parse_time_ms(ts)


def test_recut_after_a_visible_aborted_partial_is_reconciled_exactly():
    records = [r for r in mixed_feed(4, 1200).records if r[0] == "metrics"]
    ref, _ = run_pipeline(records, CFG, flush_every=10**9)

    def feed(agg, recs, last=False):
        for r in recs:
            agg.add(*r[2:])
        return agg.flush(caught_up=last)

    out = []
    ps = SignalTask(0, CFG)
    agg = PartitionAggregator("metrics", 0, CFG)
    out += ps.apply(feed(agg, records[:200]))
    committed = agg.to_state()
    out += ps.apply(feed(agg, records[200:400]))          # aborted, but seen
    agg = PartitionAggregator.from_state(committed, CFG)  # the worker restarts from its commit
    out += ps.apply(feed(agg, records[200:300]))          # shorter re-cut: a duplicate, splits
    out += ps.apply(feed(agg, records[300:500]))          # overlaps the aborted range: reconciled
    out += ps.apply(feed(agg, records[500:], last=True))
    c = ps.counters
    assert (c["duplicates"], c["reconciled"], c["conflicts"]) == (1, 1, 0)
    assert canon(out) == canon(ref)
