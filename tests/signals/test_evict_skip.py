"""A signals task evicts only when its emission point moved (SignalTask._evict): after every partial,
its state equals that of a task that evicts after every partial (what it did before)."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.scenarios import Scenario
from gatewatch.processors.signals import SignalConfig, SignalTask

from .partial_feed import feed_partials

# 20 bootstrap resamples, not the default 200: these tests compare two ways of running the same task
# (here and in test_handed_over_partials), and the resample count changes neither; at 200 the RUM
# bootstrap was half their CPU (py-spy). Its own properties are in test_rum_bootstrap.py.
CFG = SignalConfig.from_policy({"rum": {"routes": [{"route": "/", "inp_p75_ms": 180, "cls_p75": 0.08}]},
                                "signals": {"bootstrap_resamples": 20}},
                               "policyhash")


class AlwaysEvicting(SignalTask):
    def _evict(self) -> None:
        self._evicted_until = object()  # never equal: every call evicts
        super()._evict()


def scenario_records(seed: int) -> list[tuple]:
    """Two hours of two services with canary surges, web vitals, CDC and gauges: long enough for
    every window to slide past its first buckets and for idle keys to go."""
    spec = {"name": "evict", "seed": seed, "services": [{"name": s, "routes": ["/a"]} for s in ("api", "auth")],
            "cohorts": {"baseline": {"rps": 1, "error_rate": 0.01, "latency_ms": {"median": 90, "p95": 300}},
                        "canary": {"rps": 0.5, "error_rate": 0.01, "latency_ms": {"median": 90, "p95": 300}}},
            "rum": {"service": "api", "rate": 0.2, "routes": {"/": {"inp_ms": 150, "lcp_ms": 1900, "cls": 0.05}}},
            "cdc": {"tables": ["shop.orders"], "rate": 0.2, "lag_s": 1},
            "gauges": {"every": "30s", "values": {"invariant": 0}},
            "phases": [{"at": "20m", "until": "40m", "set": {"cohorts.canary.error_rate": 0.3}}]}
    offsets: dict = {}
    out = []
    for logical, key, value in Scenario(spec, start_ms=1_760_000_000_000, duration="2h").records():
        off = offsets[logical] = offsets.get(logical, -1) + 1
        out.append((logical, 0, off, key.encode(), orjson.dumps(value), None))
    return out


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), flush_every=st.integers(200, 1500))
def test_state_after_every_partial_equals_evicting_every_time(seed, flush_every):
    records = scenario_records(seed)
    tasks = (SignalTask(0, CFG), AlwaysEvicting(0, CFG))
    for t in tasks:
        t.expect(f"{r[0]}:{r[1]}" for r in records)

    def apply(partial):
        outs = [t.apply(orjson.loads(orjson.dumps(partial))) for t in tasks]
        assert outs[0] == outs[1]
        assert orjson.dumps(tasks[0].to_state()) == orjson.dumps(tasks[1].to_state())

    feed_partials(records, CFG, flush_every, apply)
