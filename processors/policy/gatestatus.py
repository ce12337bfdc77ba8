"""Why a gate does not move, and the gate record decide publishes to gw.gates (key scope@release).

A gate never waits in silence: at every evaluated step each unit (scope, release) knows its state,
its verdict (fail once an abort fired for the release, pass once it reached CANARY_READY without
one, pending otherwise) and its reasons: the required signals that are missing or too thin, the
blocking rules and conditions that are breached or unknown (with value, threshold, window and
samples), or the clean streak still running towards the next stage. The record (schemas/
gate_record.json) is published when any of that changes, and at least once a minute of event time
while the gate is pending, so `gatewatch serve` and its readers always have a current one.

Error budget: when the gate cohort of a scope has `error_budget_consumed` / `error_budget_remaining`
(requests domain, every 5 minutes of event time over slo.availability.window), the unit keeps the
latest pair it saw and the record carries it as `error_budget` {consumed, remaining, samples,
window_s, at}. A scope without those signals gets no such field (its records' bytes are unchanged),
and the field's value never decides whether a record is published (`due`).
"""
from __future__ import annotations

from gatewatch.processors.canonical import content_id
from gatewatch.processors.policy.evaluator import BREACH, MISSING, signal_state, subject_key
from gatewatch.processors.policy.gate import STATES
from gatewatch.processors.policy.grammar import conds
from gatewatch.processors.timefmt import format_duration, format_ts

REFRESH_MS = 60_000  # a pending gate's record is re-published at least this often (event time)


def _reason(kind: str, detail: str, **fields) -> dict:
    out = {"kind": kind, "rule": None, "text": None, "signal": None, "cohort": None, "subject": None,
           "value": None, "op": None, "threshold": None, "window_s": None, "samples": None,
           "min_samples": None, "detail": detail}
    out.update(fields)
    return out


def missing_reasons(view: dict, required, min_samples: int) -> list[dict]:
    """The required signals absent, null or thinner than min_samples (each subject named)."""
    out = []
    for name in dict.fromkeys(required):
        sigs = view.get(name, [])
        if not sigs:
            out.append(_reason("missing", f"{name}: no signal at this step", signal=name, min_samples=min_samples))
            continue
        for s in sigs:
            n = s.get("samples") or 0
            if s.get("value") is None or n < min_samples:
                kind = "missing" if s.get("value") is None and n == 0 else "thin"
                out.append(_reason(kind, f"{name}: {n} samples, {min_samples} needed", signal=name,
                                   cohort=s.get("cohort"), subject=s.get("subject"), samples=n,
                                   window_s=s.get("window_s"), min_samples=min_samples))
    return out


def rule_reasons(rule, expr, view: dict, default_cohort=None) -> list[dict]:
    """Each condition of `expr` (a rule as the gate reads it) breached or unknown in view, per subject."""
    out = []
    for c in conds(expr):
        for s in view.get(c.signal) or [None]:
            state = MISSING if s is None else signal_state(s, c, rule.min_samples)
            if state in (BREACH, MISSING):
                out.append(_reason("blocking", f"{rule.id}: {c.signal} {state}", rule=rule.id, text=rule.text,
                                   signal=c.signal, op=c.op, threshold=c.threshold,
                                   cohort=default_cohort if s is None else s.get("cohort"),
                                   subject=None if s is None else s.get("subject"),
                                   value=None if s is None else s.get("value"),
                                   samples=None if s is None else s.get("samples"),
                                   window_s=None if s is None else s.get("window_s"),
                                   min_samples=rule.min_samples))
    return out


def blocking_reasons(engine, rules, blocks, view: dict) -> list[dict]:
    """Blocking rules (and gate.block_when conditions) that are breached or unknown now."""
    out = []
    for rule in rules:
        out.extend(rule_reasons(rule, engine.gate_exprs[rule.id][0], view))
    for text, _expr in blocks:
        out.append(_reason("blocking", f"gate.block_when: {text} is true or unknown", text=text))
    return out


def waiting_reason(state: str, nxt: str, clean_ms: int, window_ms: int) -> dict:
    return _reason("waiting", f"{state} -> {nxt}: clean for {format_duration(clean_ms) if clean_ms else '0s'}"
                              f" of {format_duration(window_ms) if window_ms else '1 step'}")


def failed_reasons(actions: list[dict]) -> list[dict]:
    return [_reason("failed", f"{a['rule']} fired: {a['action']}", rule=a["rule"]) for a in actions
            if a["kind"] == "abort"]


BUDGET_SIGNALS = ("error_budget_consumed", "error_budget_remaining")


def _budget_signal(view: dict, name: str, release: str) -> dict | None:
    """The release's own service-level signal of `name`, else the release-less one."""
    sigs = [s for s in view.get(name) or () if s.get("subject") in (None, "")]
    for want in (release, ""):
        for s in sigs:
            if s.get("release", "") == want:
                return s
    return None


def track_budget(unit: dict, view: dict, release: str, ts: int) -> None:
    """Remember the latest error budget of the gate cohort at this step, if the step has one."""
    consumed = _budget_signal(view, BUDGET_SIGNALS[0], release)
    if consumed is None:
        return
    remaining = _budget_signal(view, BUDGET_SIGNALS[1], release)
    unit["error_budget"] = {"consumed": consumed["value"],
                            "remaining": None if remaining is None else remaining["value"],
                            "samples": consumed["samples"], "window_s": consumed["window_s"], "at": format_ts(ts)}


def verdict(unit: dict) -> str:
    if any(a["kind"] == "abort" for a in unit["actions"]):
        return "fail"
    return "pass" if unit["gate"]["state"] == STATES[-1] else "pending"


def gate_status(policy, scope: str, release: str, unit: dict, ts: int, reasons: list[dict],
                dropped_steps: int) -> dict:
    v = verdict(unit)
    if v == "fail":
        reasons = failed_reasons(unit["actions"])
    elif v == "pass":
        reasons = []
    reasons = sorted(reasons, key=lambda r: (r["kind"], r["rule"] or "", r["signal"] or "",
                                             subject_key(r["subject"]), str(r["cohort"])))
    return {"kind": "gate", "scope": scope, "release": release, "state": unit["gate"]["state"], "verdict": v,
            "reasons": reasons,
            "missing": sorted({r["signal"] for r in reasons if r["kind"] in ("missing", "thin")}),
            "policy_hash": policy.hash, "ts": format_ts(ts), "since": format_ts(unit["since"]),
            "actions": list(unit["actions"]), "steps": unit.setdefault("steps", 0),
            "dropped_steps": dropped_steps,
            **({"error_budget": dict(unit["error_budget"])} if unit.get("error_budget") else {})}


def due(unit: dict, record: dict, ts: int) -> bool:
    """Whether this record should be published: something but the values changed, or a pending
    gate has not been reported for REFRESH_MS of event time."""
    shape = {k: record[k] for k in ("state", "verdict", "missing", "policy_hash", "actions")}
    shape["reasons"] = [(r["kind"], r["rule"], r["signal"], r["subject"], r["cohort"]) for r in record["reasons"]]
    digest = content_id(shape)
    last = unit.get("published")
    if last is not None and last[1] == digest and (record["verdict"] != "pending" or ts - last[0] < REFRESH_MS):
        return False
    unit["published"] = [ts, digest]
    return True
