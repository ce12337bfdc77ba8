"""Action records: every decision explains itself and has a content id.

id = content_id({policy_hash, scope, rule, ts, action} + release when there is one): a
re-delivered or re-computed decision has the same id (idempotent downstream). The permit is
added by the engine after the record is complete (it signs the record digest).
"""
from __future__ import annotations

import math

from gatewatch.processors.canonical import content_id
from gatewatch.processors.policy.evaluator import (
    BREACH,
    MISSING,
    signal_state,
    subject_key,
)
from gatewatch.processors.policy.grammar import Cond, conds
from gatewatch.processors.timefmt import format_duration, format_ts


def action_id(policy_hash: str, scope: str, rule_id: str, ts: str, action: str, release: str = "") -> str:
    doc = {"policy_hash": policy_hash, "scope": scope, "rule": rule_id, "ts": ts, "action": action}
    if release:  # a release-less gate keeps the ids it always had
        doc["release"] = release
    return content_id(doc)


def _with_release(rec: dict, release: str) -> dict:
    rec["release"] = release  # "" for a gate without releases (the id then leaves it out)
    return rec


def _sort_key(s: dict):
    return (s["name"], subject_key(s.get("subject")), str(s.get("cohort")), s.get("op") or "",
            s.get("threshold") if s.get("threshold") is not None else -math.inf)


def _entry(sig: dict | None, name: str, cohort, cond: Cond | None, min_samples: int, streaks=None, ts=0) -> dict:
    sig = sig or {"name": name, "cohort": cohort, "subject": None, "window_s": None, "value": None, "samples": 0}
    if cond is not None:
        state = signal_state(sig, cond, min_samples)
    else:
        state = MISSING if sig["value"] is None or (sig["samples"] or 0) < min_samples else "ok"
    out = {"name": name, "cohort": sig["cohort"], "subject": sig["subject"], "value": sig["value"],
           "samples": sig["samples"], "window_s": sig["window_s"],
           "threshold": cond.threshold if cond else None, "op": cond.op if cond else None,
           "for": format_duration(cond.for_ms) if cond and cond.for_ms else None,
           "state": state}
    out["breach_since"] = None
    if cond is not None and cond.for_ms and state == BREACH and streaks is not None:
        since = streaks.get(subject_key(sig["subject"]), [ts])[0]
        out["breach_since"] = format_ts(since)
    return out


def _baseline(policy, view: dict, names: set) -> dict:
    ctx = view.get("~context", {})
    sigs = []
    for n in sorted(names):
        for s in ctx.get(n, []):
            sigs.append({"name": n, "cohort": s["cohort"], "subject": s["subject"], "value": s["value"],
                         "samples": s["samples"], "window_s": s["window_s"]})
    subjects = {subject_key(s.get("subject")) for n in names for s in view.get(n, []) + ctx.get(n, [])}
    routes = []
    for r in (policy.get("rum.routes") or []):
        if isinstance(r, dict) and str(r.get("route")) in subjects:
            values = {k: float(v) for k, v in sorted(r.items())
                      if k != "route" and isinstance(v, (int, float)) and not isinstance(v, bool)}
            routes.append({"route": str(r["route"]), "values": values})
    sigs.sort(key=_sort_key)
    # baselines the signal stage attached to gate-cohort signals (e.g. RUM deltas and their CI)
    refs = [{"name": n, "subject": s["subject"], **s["reference"]}
            for n in sorted(names) for s in view.get(n, []) if s.get("reference")]
    refs.sort(key=lambda r: (r["name"], subject_key(r["subject"])))
    return {"signals": sigs, "routes": routes, "references": refs}


def action_record(policy, rule, scope: str, ts: int, view: dict, streaks: dict, release: str = "",
                  cohort: str | None = None) -> dict:
    """cohort: the cohort an absent signal is named with (default the gate cohort)."""
    entries, cond_list = [], conds(rule.expr)
    seen = set()
    for i, c in enumerate(cond_list):
        key = (c.signal, c.op, c.threshold, c.for_ms)
        if key in seen:
            continue
        seen.add(key)
        sigs = view.get(c.signal) or [None]
        for s in sigs:
            entries.append(_entry(s, c.signal, cohort or policy.cohort, c, rule.min_samples,
                                  streaks.get(str(i), {}), ts))
    entries.sort(key=_sort_key)
    ts_text = format_ts(ts)
    return _with_release({
        "id": action_id(policy.hash, scope, rule.id, ts_text, rule.action, release),
        "kind": rule.kind,
        "action": rule.action,
        "scope": scope,
        "rule": rule.describe(),
        "signals": entries,
        "baseline": _baseline(policy, view, {c.signal for c in cond_list}),
        "policy_hash": policy.hash,
        "ts": ts_text,
        "gate": None,
    }, release)


def gate_record(policy, scope: str, ts: int, frm: str, to: str, view: dict, required: tuple,
                release: str = "") -> dict:
    promote = to == "CANARY_READY"
    action = "promote" if promote else "advance"
    rule_id = f"gate:{to}"
    window = policy.gate.windows[to]
    entries = []
    for name in dict.fromkeys(required):
        for s in view.get(name) or [None]:
            entries.append(_entry(s, name, policy.cohort, None, policy.gate.min_samples))
    entries.sort(key=_sort_key)
    ts_text = format_ts(ts)
    text = (f"{frm} -> {to}: required signals present and no blocking condition"
            f" at every step for {format_duration(window) if window else '1 step'}")
    return _with_release({
        "id": action_id(policy.hash, scope, rule_id, ts_text, action, release),
        "kind": "promote" if promote else "gate",
        "action": action,
        "scope": scope,
        "rule": {"id": rule_id, "text": text, "severity": "info", "on_missing": "hold",
                 "min_samples": policy.gate.min_samples},
        "signals": entries,
        "baseline": _baseline(policy, view, set(required)),
        "policy_hash": policy.hash,
        "ts": ts_text,
        "gate": {"from": frm, "to": to},
    }, release)
