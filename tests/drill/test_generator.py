"""Generator extensions used by the drills: cdc.lag_s, per-cohort gauges, rum.metrics / rum.cohorts."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.scenarios import Scenario, check_expect, expectations, matches

BASE = {"services": [{"name": "svc", "routes": ["/a"]}],
        "cohorts": {"baseline": {"rps": 2}, "canary": {"rps": 1}}}


def recs(spec, **kw):
    return list(Scenario(spec, start_ms=0, **kw).records())


def test_cdc_lag_override_sets_source_lag():
    spec = {**BASE, "cdc": {"tables": ["db.t"], "rate": 5, "lag_s": 1},
            "phases": [{"at": "30s", "set": {"cdc.lag_s": 300}}]}
    for topic, _k, v in recs(spec, duration="60s"):
        if topic != "cdc":
            continue
        p = v.get("payload", v)
        lag = p["ts_ms"] - p["source"]["ts_ms"]
        if p["ts_ms"] >= 31_000:
            assert 150_000 <= lag <= 450_000
        elif p["ts_ms"] < 29_000:
            assert lag < 2_000


def test_gauge_override_per_cohort():
    spec = {**BASE, "gauges": {"every": "10s", "values": {"invariant": 0, "x_gauge": 0.5}},
            "phases": [{"at": "20s", "set": {"gauges.canary.invariant": 1, "gauges.x_gauge": 2}}]}
    seen = {}
    for topic, _k, v in recs(spec, duration="40s"):
        if v.get("type") == "gauge":
            seen[(v["ts"][-13:-5], v["cohort"], v["name"])] = v["value"]
    assert seen[("00:00:30", "canary", "invariant")] == 1
    assert seen[("00:00:30", "baseline", "invariant")] == 0
    assert seen[("00:00:10", "canary", "invariant")] == 0
    assert seen[("00:00:30", "baseline", "x_gauge")] == 2


def test_rum_metrics_and_cohorts_restrict_beacons():
    spec = {**BASE, "rum": {"rate": 5, "metrics": ["inp_ms"], "cohorts": ["canary"],
                            "routes": {"/": {"inp_ms": 100, "lcp_ms": 2000}}}}
    beacons = [v for t, _k, v in recs(spec, duration="20s") if t == "rum"]
    assert beacons and {b["name"] for b in beacons} == {"INP"} and {b["cohort"] for b in beacons} == {"canary"}


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), at=st.integers(0, 60))
def test_same_seed_same_records(seed, at):
    spec = {**BASE, "gauges": {"values": {"invariant": 0}}, "cdc": {"tables": ["db.t"], "rate": 1},
            "phases": [{"at": f"{at}s", "set": {"cohorts.canary.error_rate": 0.5, "cdc.lag_s": 30}}]}
    assert recs(spec, seed=seed, duration="70s") == recs(spec, seed=seed, duration="70s")


def test_check_expect_matching_and_fault_time():
    spec = {"phases": [{"at": "5m"}],
            "expect": {"actions": [{"kind": "hook", "rule": "hook:a"},
                                   {"rule": "hook:b", "fault_at": "1m"}],
                       "absent": [{"kind": "abort"}]}}
    acts = [{"kind": "hook", "action": "freeze", "rule": {"id": "hook:a", "text": "x > 1"}, "scope": "s",
             "id": "1", "ts": "1970-01-01T00:07:00.000Z",
             "signals": [{"name": "x", "state": "breach", "value": 2, "threshold": 1}]}]
    exp = expectations(spec)
    assert exp["actions"][0]["fault_at_ms"] == 300_000 and exp["actions"][1]["fault_at_ms"] == 60_000
    assert matches({"kind": "hook", "action": "freeze"}, acts[0]) and not matches({"kind": "abort"}, acts[0])
    c = check_expect(spec, acts, 0)
    assert not c["ok"]
    assert c["expected"][0]["ok"] and c["expected"][0]["detect_s"] == 120
    assert c["expected"][0]["first"]["values"][0]["value"] == 2
    assert not c["expected"][1]["ok"] and c["absent"][0]["ok"]
    acts.append({**acts[0], "kind": "abort", "rule": {"id": "hook:b"}, "id": "2"})
    assert not check_expect(spec, acts, 0)["absent"][0]["ok"]
