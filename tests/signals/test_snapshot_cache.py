"""A signals task's snapshot reuses the JSON of histograms that did not change since the last one
(common.hists_json, common.WindowViews): its bytes equal those of a serialization from scratch
after every partial, whatever the flush points, and across a save/restore."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.signals import SignalConfig, SignalTask
from gatewatch.processors.signals.common import WindowViews

from .mixed import mixed_feed
from .partial_feed import feed_partials

CFG = SignalConfig.from_policy({"rum": {"routes": [{"route": "/", "inp_p75_ms": 180, "cls_p75": 0.08}]}},
                               "policyhash")


def from_scratch(task: SignalTask) -> bytes:
    """The task's snapshot bytes with every cached JSON form set aside (then put back)."""
    saved = []
    for keys in task.keys.values():
        for key in keys.values():
            for name, value in list(vars(key).items()):
                if isinstance(value, WindowViews) or (name.endswith("_json") and isinstance(value, dict)):
                    saved.append((key, name, value))
                    setattr(key, name, WindowViews() if isinstance(value, WindowViews) else {})
    try:
        return orjson.dumps(task.to_state())
    finally:
        for key, name, value in saved:
            setattr(key, name, value)


def _cached_forms(task: SignalTask) -> int:
    return sum(len(v) for keys in task.keys.values() for st_ in keys.values()
               for name, v in vars(st_).items() if name.endswith("_json") and isinstance(v, dict))


@settings(max_examples=6, deadline=None)
@given(data_seed=st.integers(0, 10_000), flush_every=st.integers(5, 300), restore_every=st.integers(2, 9))
def test_snapshot_bytes_equal_a_serialization_from_scratch(data_seed, flush_every, restore_every):
    records = mixed_feed(data_seed, 1500).records
    task = SignalTask(0, CFG)
    task.expect(f"{r[0]}:{r[1]}" for r in records)
    applied, reused = 0, 0

    def apply(partial):
        nonlocal task, applied, reused
        task.apply(orjson.loads(orjson.dumps(partial)))
        applied += 1
        snap = orjson.dumps(task.to_state())  # fills the caches ...
        reused = max(reused, _cached_forms(task))
        assert snap == from_scratch(task)
        assert orjson.dumps(task.to_state()) == snap  # ... and a second snapshot reuses them
        if applied % restore_every == 0:  # a restart: the restored task starts without caches
            task = SignalTask.from_state(orjson.loads(snap), CFG)
            assert orjson.dumps(task.to_state()) == snap

    feed_partials(records, CFG, flush_every, apply)
    assert reused > 0  # the caches were exercised


def test_cached_bucket_json_holds_about_its_own_size():
    """The cache keeps each bucket's bytes, not orjson's whole output buffer (4-128 KB each, which a
    live worker's thousands of cached buckets turned into tens of MB of RSS)."""
    import tracemalloc

    from gatewatch.processors.digest import LogHistogram
    from gatewatch.processors.signals.common import hists_json
    hists = {}
    for b in range(200):
        h = hists[b * 10_000] = LogHistogram()
        for i in range(1, 300):
            h.add(i * 0.37 + b)
    size = sum(len(orjson.dumps(h.to_json())) for h in hists.values())
    tracemalloc.start()
    try:
        cache: dict = {}
        hists_json(hists, cache)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < 2 * size + 64 * len(hists)
