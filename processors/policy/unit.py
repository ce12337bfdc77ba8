"""One gate unit: a scope's rules and gate for one release, stepped by the engine.

A unit's state is {"rules": {rule id: {"active", "streaks", "fingerprint"}}, "gate": {"state",
"clean_since", "streaks", "last"}, "since": first step ms, "actions": [{id, kind, action, rule, ts}],
"published": [ms, digest] of its last gate record}. Rules fire on the rising edge: one action per
breach, re-armed when the condition is known false; unknown (missing or thin) follows on_missing:
hold (nothing changes) or abort (counts as a breach). In SHADOW an unknown that is only the release's
own, not yet live, gate-cohort traffic holds (processors.policy.shadowphase.shadow_holds). The gate
steps as processors.policy.gate says and reports, at every step, why it does not move
(processors.policy.gatestatus).
"""
from __future__ import annotations

from gatewatch.processors.canonical import content_id
from gatewatch.processors.policy.evaluator import held, instant
from gatewatch.processors.policy.gate import NEXT, STATES
from gatewatch.processors.policy.gatestatus import blocking_reasons, missing_reasons, waiting_reason
from gatewatch.processors.policy.records import action_record, gate_record
from gatewatch.processors.policy.shadowphase import SHADOW, shadow_holds
from gatewatch.processors.timefmt import format_ts

# Seed 004, one incident one call: the abort and hook actions of a release belong to one incident
# (an aborted release stays failed), those of a release-less scope to one incident per UTC hour;
# each carries the incident's id and the executor makes one successful backend call per incident
# and action (sinks/executor/core.py: after a failed call the next action tries again). The id depends on nothing but the action's unit and step: rules of one
# scope may run ahead of each other (the engine orders steps per rule), so "the first action of
# the episode" would depend on delivery order, and decisions must not.
INCIDENT_BUCKET_MS = 3_600_000


def incident_id(scope: str, release: str, ts: int) -> str:
    if release:
        return content_id({"scope": scope, "release": release})
    return content_id({"scope": scope, "release": "", "hour": format_ts(ts - ts % INCIDENT_BUCKET_MS)})


def new_unit(ts: int, state: str = STATES[0]) -> dict:
    return {"rules": {}, "gate": {"state": state, "last": None, "clean_since": None, "streaks": {}},
            "since": ts, "actions": [], "published": None}


def rule_step(engine, scope: str, release: str, unit: dict, rid: str, ts: int, view: dict) -> dict | None:
    rule = engine.rules[rid]
    rs = unit["rules"].setdefault(rid, {"active": False, "streaks": {}, "fingerprint": rule.fingerprint})
    value = held(rule.expr, engine.rule_conds[rid], view, rule.min_samples, rs["streaks"], ts,
                 engine.policy.gate.max_gap_ms)
    if value is None:
        if rule.on_missing == "hold" or (unit["gate"]["state"] == SHADOW and shadow_holds(
                engine, release, engine.rule_conds[rid], view, rule.min_samples, engine.scopes[scope], ts)):
            return None
        value = True
    if not value:
        rs["active"] = False
        return None
    if rs["active"]:
        return None  # still the same breach
    rs["active"] = True
    rec = action_record(engine.policy, rule, scope, ts, view, rs["streaks"], release)
    rec["incident"] = incident_id(scope, release, ts)
    return rec


def gate_step(engine, scope: str, release: str, unit: dict, ts: int, view: dict) -> tuple[dict | None, list]:
    """(the advance/promote action or None, the reasons the gate does not move now)."""
    g = unit["gate"]
    prev_last, g["last"] = g["last"], ts
    if g["state"] == STATES[-1]:
        return None, []
    cfg = engine.policy.gate
    nxt = NEXT[g["state"]]
    # the gate keeps its own `for` streaks of the blocking rules, advanced at its own steps, so
    # that its view never depends on how far a rule has run ahead
    streaks = g.setdefault("streaks", {})
    blockers = []
    for rule in engine.blocking:
        expr, cond_list = engine.gate_exprs[rule.id]
        value = held(expr, cond_list, view, rule.min_samples, streaks.setdefault(rule.fingerprint, {}), ts,
                     cfg.max_gap_ms)
        if value is not False:
            blockers.append(rule)
    required = cfg.required + cfg.stage_required[nxt]
    missing = missing_reasons(view, required, cfg.min_samples)
    blocks = [(text, expr) for text, expr in cfg.block if instant(expr, view, cfg.min_samples) is not False]
    if blockers or missing or blocks:
        g["clean_since"] = None
        return None, missing + blocking_reasons(engine, blockers, blocks, view)
    if g["clean_since"] is None or prev_last is None or ts - prev_last > cfg.max_gap_ms:
        g["clean_since"] = ts
    if ts - g["clean_since"] < cfg.windows[nxt]:
        return None, [waiting_reason(g["state"], nxt, ts - g["clean_since"], cfg.windows[nxt])]
    frm, g["state"], g["clean_since"] = g["state"], nxt, None
    rec = gate_record(engine.policy, scope, ts, frm, nxt, view, required, release)
    return rec, ([] if nxt == STATES[-1] else [waiting_reason(nxt, NEXT[nxt], 0, cfg.windows[NEXT[nxt]])])
