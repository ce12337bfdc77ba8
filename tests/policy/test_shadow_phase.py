"""gate.shadow: a release sits in SHADOW until its shadow-cohort signals have been present and within
their comparisons with the baseline for min_duration of event time; missing signals keep it there
(and its gate record says why); a failed comparison aborts it for good; no block, no change."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.policy import STATES, Engine, PolicyError
from gatewatch.processors.policy.shadowphase import SHADOW
from tests.policy.helpers import DOMAINS, STEP, T0, batch, make_policy, sig

SHADOW_BLOCK = """
gate:
  shadow:
    cohort: shadow
    min_duration: 1m
    required: [latency_p95_ms_delta_lo, err5xx_rate_delta_lo]
    abort:
      - {id: shadow_latency, when: "latency_p95_ms_delta_lo > 10pct", action: block_release}
      - {id: shadow_errors, when: "err5xx_rate_delta_lo > 0.005", action: block_release}
"""
REL = "2.0.0"
CLEAN = {"latency_p95_ms_delta_lo": -0.02, "err5xx_rate_delta_lo": -0.001}


def released(sigs, release=REL):
    return [dict(s, release=release) for s in sigs]


def shadow_sigs(ts, values=None, release=REL):
    """The shadow cohort's deltas against the baseline at ts ('absent' leaves one out)."""
    values = {**CLEAN, **(values or {})}
    return [dict(sig(name, v, ts, cohort="shadow"), release=release) for name, v in values.items() if v != "absent"]


def step(eng, i, shadow=None, canary=False, gap=0):
    """One step: release-less healthy context, the shadow cohort (None: no shadow signals),
    canary signals of the release when `canary`."""
    ts = T0 + i * STEP + gap
    out = []
    for d in DOMAINS:
        b = batch(d, ts)
        b = released(b) if canary else [s for s in b if d == "gauges" or s["cohort"] != "canary"]
        if d == "requests" and shadow is not False:
            b += shadow_sigs(ts, shadow)
        out.extend(eng.on_batch(b))
    return out


def gates_of(eng):
    return [g for g in eng.take_gate_records() if g["release"] == REL]


def test_block_parses_and_without_it_the_gate_is_as_before():
    assert make_policy().gate.shadow is None
    cfg = make_policy(SHADOW_BLOCK).gate.shadow
    assert (cfg.cohort, cfg.min_duration_ms, cfg.required) == \
        ("shadow", 60_000, ("latency_p95_ms_delta_lo", "err5xx_rate_delta_lo"))
    assert [r.id for r in cfg.rules] == ["shadow_latency", "shadow_errors"] and cfg.domains == ("requests",)
    eng = Engine(make_policy())
    assert eng.gate_state("svc-a", REL) == STATES[0]
    # without the block, shadow-cohort signals are context: they start no release's gate
    step(eng, 0, canary=False)
    assert REL not in eng.scopes["svc-a"]["units"]


@pytest.mark.parametrize("text, problem", [
    ("gate: {shadow: {min_duration: 1m, requird: [x]}}", "unknown key 'requird'"),
    ("gate: {shadow: {cohort: canary, required: [err5xx_rate_delta_lo]}}", "other than the gate cohort"),
    ("gate: {shadow: {min_duration: 1m}}", "needs `required` signals or `abort`"),
    ("gate: {shadow: {min_duration: soon, required: [err5xx_rate_delta_lo]}}", "not a duration"),
    ("gate: {shadow: {required: [no_such_signal]}}", "unknown signal"),
    ("gate: {shadow: {abort: [{id: burn, when: 'err5xx_rate_delta_lo > 0', action: freeze}]}}", "duplicate rule id"),
    ("gate: {shadow: {abort: [{when: 'err5xx_rate_delta_lo > 0', action: explode}]}}", "unknown action"),
    ("gate: {shadow: [1]}", "must be a mapping"),
])
def test_bad_blocks_are_refused_with_the_place(text, problem):
    with pytest.raises(PolicyError, match=problem) as e:
        make_policy(text)
    assert "extra.yml" in str(e.value)


def test_default_ids_and_duration():
    cfg = make_policy("gate: {shadow: {abort: [{when: 'err5xx_rate_delta_lo > 0.01', action: block_release}]}}"
                      ).gate.shadow
    assert cfg.min_duration_ms == 300_000  # seed 001: shadow_duration_s=300
    assert cfg.rules[0].id == "shadow:block_release:err5xx_rate_delta_lo_gt_0_01"


def test_leaves_shadow_after_min_duration_of_event_time():
    eng = Engine(make_policy(SHADOW_BLOCK))
    acts = []
    for i in range(6):
        acts += step(eng, i)
        assert eng.gate_state("svc-a", REL) == SHADOW, i
    gates = gates_of(eng)
    assert gates[0]["state"] == SHADOW and gates[0]["verdict"] == "pending"
    assert gates[-1]["reasons"][0]["kind"] == "waiting"
    assert gates[-1]["reasons"][0]["detail"].startswith("SHADOW -> PLAN_OK: clean for ")
    assert acts == []
    acts = step(eng, 6)  # 60 s after the first clean step
    assert eng.gate_state("svc-a", REL) == STATES[0]
    [adv] = acts
    assert adv["kind"] == "gate" and adv["gate"] == {"from": SHADOW, "to": STATES[0]}
    assert adv["rule"]["id"] == "gate:PLAN_OK" and adv["release"] == REL and adv["ts"] == "2026-01-01T00:01:00.000Z"
    assert {(s["name"], s["cohort"], s["state"]) for s in adv["signals"]} == \
        {("latency_p95_ms_delta_lo", "shadow", "ok"), ("err5xx_rate_delta_lo", "shadow", "ok")}
    # the canary phase now judges the canary cohort as before: it waits for the canary's signals
    step(eng, 7)
    last = gates_of(eng)[-1]
    assert last["state"] == STATES[0] and "latency_p95_ms" in last["missing"]
    for i in range(8, 30):
        acts += step(eng, i, canary=True)
    assert eng.gate_state("svc-a", REL) == STATES[-1]


def test_missing_shadow_signals_keep_it_in_shadow_and_say_why():
    eng = Engine(make_policy(SHADOW_BLOCK))
    for i in range(30):  # a healthy canary does not help: the shadow evidence is missing
        assert step(eng, i, shadow={"err5xx_rate_delta_lo": "absent"}, canary=True) == []
    assert eng.gate_state("svc-a", REL) == SHADOW
    last = gates_of(eng)[-1]
    assert last["verdict"] == "pending" and last["missing"] == ["err5xx_rate_delta_lo"]
    missing = [r for r in last["reasons"] if r["kind"] == "missing"]
    assert missing and all(r["cohort"] == "shadow" and r["detail"].startswith("shadow: ") for r in missing)
    # an unknown comparison (no samples) is no evidence either
    eng = Engine(make_policy(SHADOW_BLOCK))
    for i in range(30):
        step(eng, i, shadow={"latency_p95_ms_delta_lo": None})
    assert eng.gate_state("svc-a", REL) == SHADOW
    assert {r["rule"] for r in gates_of(eng)[-1]["reasons"] if r["kind"] == "blocking"} == {"shadow_latency"}


def test_a_failed_comparison_aborts_and_the_release_never_leaves_shadow():
    eng = Engine(make_policy(SHADOW_BLOCK))
    acts = []
    for i in range(3):
        acts += step(eng, i)
    acts += step(eng, 3, shadow={"latency_p95_ms_delta_lo": 0.4})
    [abort] = acts
    assert (abort["kind"], abort["action"], abort["rule"]["id"], abort["release"]) == \
        ("abort", "block_release", "shadow_latency", REL)
    assert abort["incident"] and [(s["cohort"], s["state"]) for s in abort["signals"]] == [("shadow", "breach")]
    for i in range(4, 40):  # healthy again, canary too: the release failed its shadow
        acts += step(eng, i, canary=True)
    assert eng.gate_state("svc-a", REL) == SHADOW and len(acts) == 1
    last = gates_of(eng)[-1]
    assert last["verdict"] == "fail" and last["reasons"][0]["rule"] == "shadow_latency"


def test_a_gap_longer_than_max_gap_restarts_the_count():
    eng = Engine(make_policy(SHADOW_BLOCK))
    for i in range(5):
        step(eng, i)
    for i in range(5, 10):  # 2 min later: the 40 s clean before the gap do not count
        step(eng, i, gap=120_000)
    assert eng.gate_state("svc-a", REL) == SHADOW
    step(eng, 11, gap=120_000)
    assert eng.gate_state("svc-a", REL) == STATES[0]


def test_rules_with_on_missing_abort_wait_for_canary_traffic():
    eng = Engine(make_policy(SHADOW_BLOCK + "abort:\n  - {id: err, when: 'err5xx_rate >= 0.001 for 20s',"
                                          " action: rollback, min_samples: 5, on_missing: abort}\n"))
    acts = []
    for i in range(6):
        acts += step(eng, i)
    assert acts == []
    acts = step(eng, 6) + step(eng, 7)  # in PLAN_OK without canary signals the rule applies again
    assert [a["rule"]["id"] for a in acts] == ["gate:PLAN_OK", "err"]


def test_reload_without_the_block_moves_shadow_units_to_plan_ok():
    eng = Engine(make_policy(SHADOW_BLOCK))
    for i in range(3):
        step(eng, i)
    state = eng.to_state()
    same = Engine.from_state(make_policy(SHADOW_BLOCK), state)
    assert same.gate_state("svc-a", REL) == SHADOW and same.to_state() == state
    plain = Engine.from_state(make_policy(), state)
    assert plain.gate_state("svc-a", REL) == STATES[0]


# each step: ("ok" | "missing" | "breach", gap in steps before it)
STEPS = st.lists(st.tuples(st.sampled_from(["ok", "ok", "ok", "missing", "breach"]), st.integers(1, 8)),
                 max_size=25)


@settings(max_examples=40, deadline=None)
@given(STEPS)
def test_never_leaves_shadow_without_min_duration_of_clean_evidence(steps):
    eng = Engine(make_policy(SHADOW_BLOCK))
    i, clean_since, last, left_at, failed = 0, None, None, None, False
    values = {"ok": None, "missing": {"err5xx_rate_delta_lo": "absent"}, "breach": {"err5xx_rate_delta_lo": 0.2}}
    for kind, gap in steps:
        i += gap
        ts = T0 + i * STEP
        acts = step(eng, i, shadow=values[kind])
        # reference model: a clean streak without breaks longer than max_gap (60 s), a breach ends all
        failed = failed or kind == "breach"
        if kind != "ok" or failed:
            clean_since = None
        elif clean_since is None or ts - last > 60_000:
            clean_since = ts
        last = ts
        moved = [a for a in acts if a["kind"] == "gate"]
        if left_at is None and clean_since is not None and ts - clean_since >= 60_000:
            left_at = ts
            assert moved and moved[0]["gate"]["from"] == SHADOW
        else:
            assert not moved
        assert eng.gate_state("svc-a", REL) == (STATES[0] if left_at is not None else SHADOW)


def test_the_commented_example_of_the_builtin_layer_composes():
    lines = open("configs/builtin.yml", encoding="utf-8").read().splitlines()
    start = lines.index("  # shadow:")
    block = ["gate:"]
    for line in lines[start:]:
        if not line.startswith("  #   ") and line != "  # shadow:":
            break
        block.append("  " + line[4:])
    cfg = make_policy("\n".join(block) + "\n").gate.shadow
    assert cfg.cohort == "shadow" and [r.id for r in cfg.rules] == ["shadow_latency", "shadow_errors"]


def test_policy_check_names_the_shadow_phase(tmp_path, capsys):
    from gatewatch.streams.cli.main import main
    (tmp_path / "project.yml").write_text(SHADOW_BLOCK)
    assert main(["policy", "check", str(tmp_path)]) == 0
    assert capsys.readouterr().out.rstrip().endswith("cohort=canary shadow=shadow:1m shadow_rules=2")
    (tmp_path / "project.yml").write_text("gate: {shadow: {min_duration: 1m}}\n")
    assert main(["policy", "check", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "project.yml:1" in err[0] and "gate.shadow needs" in err[0]


# ---- gate.shadow never silences a fail-closed rule on telemetry that is not the release's own ----
INV_ABORT = "abort:\n  - {id: inv_missing, when: 'invariant > 0', action: block_release, on_missing: abort}\n"
INVARIANT = {"ok": 0, "breach": 1, "absent": "absent", "null": None, "thin": ("thin", 0)}


def inv_step(eng, i, invariant, canary=False, gauges=True, shadow=True):
    """step() with the invariant gauge as given (release-less unless `canary`: then every gate
    signal is the release's own), the whole gauges domain left out when not `gauges`."""
    ts = T0 + i * STEP
    out = []
    for d in DOMAINS:
        if d == "gauges" and not gauges:
            continue
        b = batch(d, ts, overrides={"invariant": INVARIANT[invariant]})
        b = released(b) if canary else [s for s in b if d == "gauges" or s["cohort"] != "canary"]
        if d == "requests" and shadow:
            b += shadow_sigs(ts)
        out.extend(eng.on_batch(b))
    return [(a["rule"]["id"], a.get("release", ""), a["ts"]) for a in out if a["rule"]["id"] == "inv_missing"]


def test_release_less_scope_never_starts_in_shadow_and_aborts_on_missing():
    # shadow_failopen2: no release at all, the invariant telemetry gone
    for policy in (make_policy(INV_ABORT), make_policy(INV_ABORT + SHADOW_BLOCK)):
        eng = Engine(policy)
        assert eng.gate_state("svc-a") == STATES[0]
        acts = []
        for i in range(12):
            acts += inv_step(eng, i, "absent", shadow=False)
        assert [a[0] for a in acts] == ["inv_missing"] and eng.gate_state("svc-a") == STATES[0]


def test_a_release_less_unit_in_shadow_from_an_earlier_state_is_moved_to_plan_ok():
    eng = Engine(make_policy(INV_ABORT + SHADOW_BLOCK))
    inv_step(eng, 0, "ok", shadow=False)
    state = eng.to_state()
    state["scopes"]["svc-a"]["units"][""]["gate"]["state"] = SHADOW  # as the previous version left it
    eng = Engine.from_state(make_policy(INV_ABORT + SHADOW_BLOCK), state)
    assert eng.gate_state("svc-a") == STATES[0]
    assert [a[0] for a in inv_step(eng, 1, "absent", shadow=False)] == ["inv_missing"]


@pytest.mark.parametrize("case", ["release-less gauge", "own canary traffic", "thin"])
def test_in_shadow_a_missing_release_less_or_live_signal_still_aborts(case):
    eng = Engine(make_policy(INV_ABORT + SHADOW_BLOCK))
    acts = inv_step(eng, 0, "thin" if case == "thin" else "absent", canary=case == "own canary traffic")
    assert [a[0] for a in acts] == ["inv_missing"] and eng.gate_state("svc-a", REL) == SHADOW


ERR_ABORT = "abort:\n  - {id: err_missing, when: 'err5xx_rate > 0.5', action: rollback, on_missing: abort}\n"
INP_ABORT = "abort:\n  - {id: inp_missing, when: 'rum_inp_p75_ms > 900', action: rollback, on_missing: abort}\n"


def fired_ids(acts):
    return [a["rule"]["id"] for a in acts if a["kind"] == "abort"]


def test_in_shadow_only_the_releases_own_not_yet_live_signal_holds():
    # the requests domain carries only the release's shadow cohort: its canary err5xx_rate is not live
    eng = Engine(make_policy(ERR_ABORT + SHADOW_BLOCK))
    assert fired_ids(step(eng, 0) + step(eng, 1)) == []
    # the canary starts: its signals are expected now, and a missing one aborts
    ts = T0 + 2 * STEP
    acts = eng.on_batch(released([s for s in batch("requests", ts) if s["name"] != "err5xx_rate"]) + shadow_sigs(ts))
    assert fired_ids(acts) == ["err_missing"]


def test_in_shadow_a_domain_that_carried_release_less_signals_is_not_the_releases_own():
    eng = Engine(make_policy(ERR_ABORT + SHADOW_BLOCK))
    ts = T0
    assert fired_ids(eng.on_batch(batch("requests", ts) + shadow_sigs(ts))) == []  # release-less canary
    assert fired_ids(step(eng, 1)) == ["err_missing"]  # then the release-less err5xx_rate is gone
    assert eng.gate_state("svc-a", REL) == SHADOW


def test_in_shadow_a_missing_signal_of_a_shared_domain_aborts():
    def fired(block):
        eng = Engine(make_policy(INP_ABORT + block))
        acts = eng.on_batch(shadow_sigs(T0))
        # the rum domain without the canary: only its baseline cohort, release-less
        acts += eng.on_batch([s for s in batch("rum", T0, overrides={"rum_inp_p75_ms": "absent"})
                              if s["cohort"] != "canary"])
        assert eng.gate_state("svc-a", REL) == SHADOW
        return fired_ids(acts)
    assert fired(SHADOW_BLOCK.replace("gate:\n", "gate:\n  shared_domains: [rum]\n")) == ["inp_missing"]
    assert fired(SHADOW_BLOCK) == []  # not shared: the canary's own rum, not live yet


@settings(max_examples=40, deadline=None)
@given(st.booleans(), st.lists(st.sampled_from(sorted(INVARIANT)), min_size=1, max_size=15))
def test_a_shadow_block_never_silences_an_abort_on_release_less_or_live_telemetry(canary, values):
    """Adding gate.shadow changes no firing of an on_missing: abort rule on the invariant gauge,
    whether the gauge is release-less (no canary yet) or the release's own with canary traffic."""
    def fired(policy):
        eng = Engine(policy)
        return [ts for i, v in enumerate(values) for _rule, _rel, ts in inv_step(eng, i, v, canary=canary)]
    assert fired(make_policy(INV_ABORT + SHADOW_BLOCK)) == fired(make_policy(INV_ABORT))


def test_policy_check_warns_which_abort_rules_hold_in_shadow():
    policy = make_policy(INV_ABORT + SHADOW_BLOCK)
    [w] = [w for w in policy.warnings if "SHADOW" in w]
    assert "inv_missing" in w and "invariant" in w and "extra.yml" in w
    assert not [w for w in make_policy(INV_ABORT).warnings if "SHADOW" in w]
    shared = make_policy(INV_ABORT + SHADOW_BLOCK.replace("gate:\n", "gate:\n  shared_domains: [gauges]\n"))
    assert not [w for w in shared.warnings if "SHADOW" in w]
