import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.processors.canonical import canonical_json, content_id
from gatewatch.processors.policy import Engine, SignalError, permit_signer
from gatewatch.processors.signing import check_permit, key_id
from gatewatch.processors.timefmt import format_ts
from tests.policy.helpers import STEP, T0, batch, make_policy, sig, step_batches

KEY = SigningKey(bytes(range(32)))


def run(engine, steps, overrides_at=lambda i: None, scope="svc-a"):
    out = []
    for i in steps:
        for b in step_batches(i, scope, overrides_at(i)):
            out.extend(engine.on_batch(b))
    return out


def test_healthy_signals_walk_the_gate_and_promote():
    acts = run(Engine(make_policy()), range(20))
    assert [(a["kind"], a["gate"]["to"]) for a in acts] == [
        ("gate", "EXEC_FAST_OK"), ("gate", "EXEC_FULL_OK"), ("gate", "ORR_OK"), ("promote", "CANARY_READY")]
    promote = acts[-1]
    assert promote["action"] == "promote" and promote["rule"]["id"] == "gate:CANARY_READY"
    assert {s["name"] for s in promote["signals"]} == {"latency_p95_ms", "err5xx_rate", "burn_rate_4h",
                                                       "invariant", "rum_inp_p75_ms"}


def test_abort_fires_once_per_breach_and_rearms():
    bad = {"burn_rate_4h": 1.5}
    acts = run(Engine(make_policy()), range(12), lambda i: bad if i in (2, 3, 4, 8) else None)
    burns = [a for a in acts if a["rule"]["id"] == "burn"]
    assert [a["ts"] for a in burns] == [format_ts(T0 + 2 * STEP), format_ts(T0 + 8 * STEP)]
    a = burns[0]
    assert a["kind"] == "abort" and a["action"] == "rollback" and a["gate"] is None
    assert a["rule"] == {"id": "burn", "text": "burn_rate_4h >= 1", "severity": "page",
                         "on_missing": "hold", "min_samples": 1}
    assert a["signals"] == [{"name": "burn_rate_4h", "cohort": "canary", "subject": None, "value": 1.5,
                             "samples": 100, "window_s": 300, "threshold": 1.0, "op": ">=", "for": None, "breach_since": None,
                             "state": "breach"}]
    assert a["id"] == content_id({"policy_hash": a["policy_hash"], "scope": "svc-a", "rule": "burn",
                                  "ts": a["ts"], "action": "rollback"})


def test_for_duration_needs_every_step():
    pol = make_policy()
    hi = {"err5xx_rate": 0.01}
    # 20s streak: fires at the third consecutive breaching step
    acts = run(Engine(pol), range(8), lambda i: hi if i >= 3 else None)
    errs = [a for a in acts if a["rule"]["id"] == "err"]
    assert [a["ts"] for a in errs] == [format_ts(T0 + 5 * STEP)]
    assert errs[0]["signals"][0]["breach_since"] == format_ts(T0 + 3 * STEP)
    # an interruption restarts the streak
    acts = run(Engine(pol), range(8), lambda i: hi if i in (1, 2, 4, 5) else None)
    assert not [a for a in acts if a["rule"]["id"] == "err"]


def test_rum_any_subject_breaches_and_baseline_is_reported():
    acts = run(Engine(make_policy()), range(3), lambda i: {"rum_inp_p75_ms_delta": 0.5} if i == 1 else None)
    inp = next(a for a in acts if a["rule"]["id"] == "inp")
    assert inp["action"] == "rollback_fe"
    assert {s["subject"] for s in inp["signals"]} == {"/", "/market/:id"}
    assert inp["baseline"]["signals"][0]["cohort"] == "baseline"


def test_missing_hold_vs_abort():
    # hold: thin err signal neither fires nor lets the gate move
    acts = run(Engine(make_policy()), range(20), lambda i: {"err5xx_rate": ("thin", 0.5)})
    assert acts == []
    pol = make_policy("abort:\n  - {id: err, when: 'err5xx_rate >= 0.001 for 20s', action: rollback,"
                      " on_missing: abort, min_samples: 5}\n")
    acts = run(Engine(pol), range(6), lambda i: {"err5xx_rate": "absent"} if i >= 2 else None)
    errs = [a for a in acts if a["rule"]["id"] == "err"]
    assert len(errs) == 1 and errs[0]["signals"][0]["state"] == "missing"


def test_redelivery_is_ignored_and_ids_are_stable():
    eng = Engine(make_policy())
    first = run(eng, range(20))
    assert run(eng, range(20)) == []  # the same batches again: already decided
    again = run(Engine(make_policy()), range(20))
    assert canonical_json(first) == canonical_json(again)


def test_permits_are_signed_and_checkable():
    acts = run(Engine(make_policy(), permit_signer(KEY)), range(6), lambda i: {"invariant": 1} if i == 3 else None)
    inv = next(a for a in acts if a["rule"]["id"] == "inv")
    trusted = {key_id(KEY.verify_key): KEY.verify_key}
    assert check_permit(inv, trusted, T0) == "not_yet_valid"  # not before the decision's own time
    assert check_permit(inv, trusted, T0 + 3 * STEP) is None
    assert inv["permit"]["not_before"] == format_ts(T0 + 3 * STEP)
    assert inv["permit"]["expires"] == format_ts(T0 + 3 * STEP + 3_600_000)
    assert check_permit(inv, trusted, T0 + 3 * STEP + 3_600_001) == "expired"
    tampered = {**inv, "action": "freeze"}
    assert check_permit(tampered, trusted, T0 + 3 * STEP) is not None
    again = run(Engine(make_policy(), permit_signer(KEY)), range(6), lambda i: {"invariant": 1} if i == 3 else None)
    assert canonical_json(acts) == canonical_json(again)


def test_state_roundtrip_through_json_continues_identically():
    pol = make_policy()
    over = lambda i: {"err5xx_rate": 0.01} if 4 <= i <= 9 else None  # noqa: E731
    straight = run(Engine(pol), range(25), over)
    eng = Engine(pol)
    part = run(eng, range(6), over)
    state = orjson.loads(orjson.dumps(eng.to_state()))
    eng2 = Engine.from_state(pol, state)
    part += run(eng2, range(6, 25), over)
    assert canonical_json(part) == canonical_json(straight)


def test_policy_reload_keeps_gate_drops_changed_rules():
    pol = make_policy()
    eng = Engine(pol)
    run(eng, range(8))
    changed = make_policy("abort:\n  - {id: burn, when: 'burn_rate_4h >= 2', action: rollback}\n")
    eng2 = Engine.from_state(changed, eng.to_state())
    assert eng2.gate_state("svc-a") == eng.gate_state("svc-a") != "PLAN_OK"
    unit, unit2 = eng.scopes["svc-a"]["units"][""], eng2.scopes["svc-a"]["units"][""]
    assert "burn" not in unit2["rules"] and "inv" in unit2["rules"]
    assert unit["gate"]["clean_since"] is not None
    assert unit2["gate"]["clean_since"] is None  # evidence restarts under the new policy
    same = Engine.from_state(pol, eng.to_state())
    assert same.scopes["svc-a"]["units"][""]["gate"]["clean_since"] == unit["gate"]["clean_since"]


def test_scopes_are_independent():
    eng = Engine(make_policy())
    a = run(eng, range(20), scope="a")
    b = run(eng, range(20), lambda i: {"invariant": 3}, scope="b")
    assert eng.gate_state("a") == "CANARY_READY" and eng.gate_state("b") == "PLAN_OK"
    assert {x["scope"] for x in a} == {"a"} and [x["rule"]["id"] for x in b] == ["inv"]


@pytest.mark.parametrize("bad", [
    {"name": "nope", "scope": "s", "ts": "2026-01-01T00:00:00Z"},
    {"name": "invariant", "scope": "", "ts": "2026-01-01T00:00:00Z"},
    {"name": "invariant", "scope": "s", "ts": "yesterday"},
    {"name": "invariant", "scope": "s", "ts": "2026-01-01T00:00:00Z", "value": "1"},
    {"name": "invariant", "scope": "s", "ts": "2026-01-01T00:00:00Z", "value": float("inf")},
    {"name": "invariant", "scope": "s", "ts": "2026-01-01T00:00:00Z", "value": 1, "samples": -1},
    "not a dict",
])
def test_malformed_signals_are_refused_without_state_change(bad):
    eng = Engine(make_policy())
    with pytest.raises(SignalError):
        eng.on_batch([sig("invariant", 0, T0), bad])
    assert eng.to_state()["scopes"] == {}


def test_a_domain_another_producer_feeds_is_waited_for():
    """RUM from an extension agent (its own source) lags the signals stage by 19 steps: the engine
    waits for it, and decides exactly as if every domain had arrived in step."""
    pol = make_policy()
    eng = Engine(pol)

    def rum(i):
        return [dict(s, source="rum-agent") for s in batch("rum", T0 + i * STEP)]
    out = eng.on_batch(batch("requests", T0)) + eng.on_batch(batch("gauges", T0)) + eng.on_batch(rum(0))
    for i in range(1, 20):  # requests and gauges run ahead
        out += eng.on_batch(batch("requests", T0 + i * STEP))
        out += eng.on_batch(batch("gauges", T0 + i * STEP))
    assert not [a for a in out if a["kind"] in ("gate", "promote")]
    for i in range(1, 20):
        out += eng.on_batch(rum(i))
    assert eng.gate_state("svc-a") == "CANARY_READY"
    assert canonical_json(sorted(out, key=lambda a: a["id"])) == \
        canonical_json(sorted(run(Engine(pol), range(20)), key=lambda a: a["id"]))


def test_a_domain_the_signals_stage_did_not_emit_is_missing_at_once():
    """No RUM at all for a scope: the gate is evaluated one step later, pending, rum named."""
    eng = Engine(make_policy())
    for i in range(3):
        eng.on_batch(batch("requests", T0 + i * STEP) + batch("gauges", T0 + i * STEP))
    recs = eng.take_gate_records()
    assert [r["ts"] for r in recs] == [format_ts(T0)]  # the step before the last is decided
    assert recs[0]["verdict"] == "pending" and "rum_inp_p75_ms" in recs[0]["missing"]


def test_shared_domains_count_whatever_the_cohort():
    pol = make_policy()  # builtin gate.shared_domains: [cdc]
    assert pol.gate.shared_domains == ("cdc",)
    eng = Engine(pol)
    acts = []
    for i in range(40):  # the signal stage labels CDC signals cohort "stable"
        acts += eng.on_batch([sig("cdc_lag_p95_s", 300.0, T0 + i * STEP, cohort="stable", subject="db.orders")])
    lag = [a for a in acts if a["rule"]["id"] == "hook:cdc_lag"]
    assert len(lag) == 1 and lag[0]["kind"] == "hook" and lag[0]["action"] == "degrade"
    assert lag[0]["ts"] == format_ts(T0 + 30 * STEP)  # held for 5m
    # requests are cohort-split: a stable-cohort breach is context, not a canary breach
    assert Engine(pol).on_batch([sig("burn_rate_4h", 9.0, T0, cohort="stable")]) == []


def test_byte_identical_across_processes_and_hash_seeds():
    """Set/dict ordering must not leak into the output: two interpreters, two hash seeds."""
    import os
    import subprocess
    import sys
    code = ("from tests.policy.test_engine import run, KEY; from tests.policy.helpers import make_policy;"
            "from gatewatch.processors.policy import Engine, permit_signer; from gatewatch.processors.canonical import content_id;"
            "acts = run(Engine(make_policy('hooks: {must_have: [cdc_lag, web_cwv_regression]}'), permit_signer(KEY)),"
            " range(30), lambda i: {'err5xx_rate': 0.01, 'rum_inp_p75_ms_delta': 0.5} if i % 7 < 3 else None);"
            "print(len(acts), content_id(acts))")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    outs = {subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1 and int(outs.pop().split()[0]) > 4


def test_gate_blocks_on_a_held_breach_not_on_noise():
    pol = make_policy()  # err: err5xx_rate >= 0.001 for 20s
    # a single noisy step does not stop the gate
    noisy = run(Engine(pol), range(20), lambda i: {"err5xx_rate": 0.01} if i == 1 else None)
    assert noisy[-1]["kind"] == "promote"
    # a held breach does: it fires, the clean streak restarts after it
    eng = Engine(pol)
    acts = run(eng, range(20), lambda i: {"err5xx_rate": 0.01} if 1 <= i <= 4 else None)
    assert [(a["rule"]["id"], a["ts"]) for a in acts[:3]] == [
        ("gate:EXEC_FAST_OK", format_ts(T0 + 2 * STEP)),   # steps 0-2 clean: the breach is not held yet
        ("err", format_ts(T0 + 3 * STEP)),                 # held 20s: fires, blocks steps 3-4
        ("gate:EXEC_FULL_OK", format_ts(T0 + 7 * STEP))]   # clean again from step 5, window 20s


def test_breach_tolerance_blocks_before_the_rule_fires():
    slow = ("abort:\n  - {id: err, when: 'err5xx_rate >= 0.001 for 10m', action: rollback}\n"
            "gate:\n  stages: {EXEC_FAST_OK: {window: 2m}, EXEC_FULL_OK: {window: 2m}, ORR_OK: {window: 2m},"
            " CANARY_READY: {window: 2m}}\n")
    over = lambda i: {"err5xx_rate": 0.01} if i >= 1 else None  # noqa: E731

    def moves(extra=""):
        acts = run(Engine(make_policy(slow + extra)), range(60), over)
        return [a["gate"]["to"] for a in acts if a["gate"]]
    # default 3m: the breach blocks from step 19 on; EXEC_FAST_OK (step 12) got through
    assert moves() == ["EXEC_FAST_OK"]
    # 0s: blocks at once
    assert moves("  breach_tolerance: 0s\n") == []
    # null: only as the rule fires (step 61): the gate walks all the way before that
    assert moves("  breach_tolerance: null\n")[-1] == "CANARY_READY"


def test_cdc_freeze_fires_on_silence_with_no_samples():
    eng = Engine(make_policy("hooks: {must_have: [cdc_freeze]}\n"))
    acts = []
    for i, silence in enumerate([100.0, 590.0, 610.0, 620.0, 1.0, 700.0]):
        acts += eng.on_batch([sig("cdc_silence_s", silence, T0 + i * STEP, cohort="stable",
                                  subject="shop.orders", samples=0)])
    assert [(a["rule"]["id"], a["ts"]) for a in acts] == [
        ("hook:cdc_freeze", format_ts(T0 + 2 * STEP)), ("hook:cdc_freeze", format_ts(T0 + 5 * STEP))]


def test_steps_that_can_no_longer_be_decided_are_counted_not_dropped_in_silence():
    from gatewatch.processors.policy.engine import Engine
    from tests.policy.helpers import STEP, T0, batch, make_policy
    rule = "abort:\n  - {id: q, when: 'trajectory_quality_p50 < 10 and err5xx_rate > 0.5', action: freeze}\n"
    eng = Engine(make_policy("evaluation: {max_pending_steps: 3}\n" + rule))
    for i in range(1, 11):  # requests run 10 steps ahead; trajectories (another producer) never deliver
        eng.on_batch(batch("requests", T0 + i * STEP))
    dropped = eng.take_dropped()
    assert [ts for _s, ts in dropped] == [T0 + i * STEP for i in range(1, 8)]
    assert eng.scopes["svc-a"]["dropped_steps"] == 7 and eng.take_dropped() == []
    assert eng.to_state()["scopes"]["svc-a"]["dropped_steps"] == 7  # survives a snapshot
