"""The error budget in gate records: carried when the gate cohort has error_budget_* signals, the
latest pair kept between their 5-minute steps, and nothing else in the record changes."""
from __future__ import annotations

import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy import Engine
from tests.policy.helpers import STEP, T0, make_policy, sig, step_batches

BUDGET_EVERY = 30  # steps: the signals stage emits the budget every 5 minutes
PENDING = {"rum_inp_p75_ms": "absent"}  # a required signal missing: the gate stays pending and reports


def _budget(i: int) -> list[dict]:
    ts = T0 + i * STEP
    consumed = 0.1 + i / 1000
    return [sig("error_budget_consumed", consumed, ts, window_s=2_419_200, samples=500 + i),
            sig("error_budget_remaining", 1.0 - consumed, ts, window_s=2_419_200, samples=500 + i),
            sig("error_budget_consumed", 0.9, ts, cohort="baseline", window_s=2_419_200)]  # context only


def _gate_records(with_budget: bool, steps=range(75)) -> tuple[list[dict], Engine]:
    eng = Engine(make_policy())
    recs = []
    for i in steps:
        batches = step_batches(i, overrides=PENDING)
        if with_budget and i % BUDGET_EVERY == 0:
            batches[[b[0]["name"] for b in batches].index("latency_p95_ms")] += _budget(i)  # requests domain
        for b in batches:
            eng.on_batch(b)
        recs += eng.take_gate_records()
    return recs, eng


def test_records_carry_the_latest_budget_and_are_otherwise_unchanged():
    plain, _ = _gate_records(False)
    with_budget, _ = _gate_records(True)
    assert plain and len(with_budget) == len(plain)
    assert not any("error_budget" in r for r in plain)
    stripped = [{k: v for k, v in r.items() if k != "error_budget"} for r in with_budget]
    assert canonical_json(stripped) == canonical_json(plain)  # same records, same bytes, but the field
    for r in with_budget:
        budget = r["error_budget"]
        step = _step_of(r["ts"]) // BUDGET_EVERY * BUDGET_EVERY
        assert budget["at"] == sig("x", 0, T0 + step * STEP)["ts"]  # the latest 5-minute step, gate cohort
        assert budget["consumed"] == 0.1 + step / 1000 and budget["remaining"] == 1.0 - budget["consumed"]
        assert budget["samples"] == 500 + step and budget["window_s"] == 2_419_200


def _step_of(ts: str) -> int:
    from gatewatch.processors.timefmt import parse_time_ms
    return (parse_time_ms(ts) - T0) // STEP


def test_the_budget_survives_a_snapshot():
    _, eng = _gate_records(True, range(40))
    again = Engine.from_state(make_policy(), orjson.loads(orjson.dumps(eng.to_state())))
    for e in (eng, again):
        for b in step_batches(40 + 200, overrides=PENDING):  # a later step without budget signals, past the refresh time
            e.on_batch(b)
    last = [e.take_gate_records()[-1] for e in (eng, again)]
    assert last[0]["error_budget"]["at"] == sig("x", 0, T0 + 30 * STEP)["ts"]
    assert canonical_json(last[0]) == canonical_json(last[1])
