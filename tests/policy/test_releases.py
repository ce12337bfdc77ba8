"""Gates per scope and release: two releases of one service in sequence; the second starts from the
first state; both stay queryable; promotion of release 2 is judged only on release 2's data; a
gate blocked on a missing signal says so (pending, the signal named) at the next step."""
from __future__ import annotations

import io
from collections import Counter

import orjson

from gatewatch.processors.policy import STATES, Engine
from gatewatch.processors.scenarios import Scenario
from gatewatch.streams.app.replay import Replayer, read_envelopes, sources_of
from gatewatch.streams.app.simulate import load_scenario_spec, write_envelopes
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.policy.helpers import STEP, T0, batch, make_policy

POLICY = load_policy_dir("configs/policies")
START = 1_790_000_000_000


def two_releases() -> list:
    """healthy_canary (canary 1.5.0, 80 min) then traffic_spike (canary 1.6.0), one stream."""
    buf, offsets = io.BytesIO(), Counter()
    write_envelopes(Scenario(load_scenario_spec("healthy_canary"), start_ms=START, duration="80m"), buf)
    first = io.BytesIO()
    write_envelopes(Scenario(load_scenario_spec("traffic_spike"), start_ms=START + 80 * 60_000), first)
    lines = []
    for line in buf.getvalue().splitlines() + first.getvalue().splitlines():
        e = orjson.loads(line)
        k = (e["topic"], e["partition"])
        e["offset"], offsets[k] = offsets[k], offsets[k] + 1
        lines.append(orjson.dumps(e))
    envs = list(read_envelopes(lines, Counter()))
    rp = Replayer(POLICY, None, 5000, sources=sources_of(envs))
    return rp.feed_many(envs) + rp.finish()


def test_two_releases_in_sequence_each_with_its_own_gate():
    out = two_releases()
    gates: dict[str, dict] = {}
    for t, k, v in out:
        if t == topics.topic("gates"):
            gates[k.decode()] = orjson.loads(v)  # the compacted topic keeps the last per key
    assert set(gates) == {"checkout@1.5.0", "checkout@1.6.0"}
    first, second = gates["checkout@1.5.0"], gates["checkout@1.6.0"]
    assert first["state"] == "CANARY_READY" and first["verdict"] == "pass" and first["reasons"] == []
    assert second["verdict"] == "fail" and {r["kind"] for r in second["reasons"]} == {"failed"}
    assert second["since"] > first["ts"] > first["since"]  # release 2 started its own gate, later
    actions = [orjson.loads(v) for t, _k, v in out if t == topics.topic("actions")]
    by_release = {r: [a for a in actions if a["release"] == r] for r in ("1.5.0", "1.6.0")}
    assert [a["gate"]["to"] for a in by_release["1.6.0"] if a["gate"]] == ["EXEC_FAST_OK"]  # from PLAN_OK
    assert {a["kind"] for a in by_release["1.6.0"]} >= {"abort"}
    assert not [a for a in by_release["1.5.0"] if a["kind"] == "abort"]  # 1.6.0's spike is not 1.5.0's
    assert {a["id"] for a in actions} == {a["id"] for g in gates.values() for a in g["actions"]}


def test_release_two_is_judged_on_its_own_data_only():
    """Release A breaches; release B, running beside it, is healthy: B's gate moves, A's fails."""
    eng = Engine(make_policy())
    acts = []
    for i in range(30):
        for d in ("requests", "gauges", "rum"):
            a = [dict(s, release="A") for s in batch(d, T0 + i * STEP, overrides={"invariant": 1})]
            b = [dict(s, release="B") for s in batch(d, T0 + i * STEP)]
            acts += eng.on_batch(a + b)
    assert eng.gate_state("svc-a", "B") == STATES[-1] and eng.gate_state("svc-a", "A") == STATES[0]
    assert {a["release"] for a in acts if a["kind"] == "abort"} == {"A"}
    records = eng.take_gate_records()
    last = {r["release"]: r for r in records}
    assert last["A"]["verdict"] == "fail" and last["B"]["verdict"] == "pass"
