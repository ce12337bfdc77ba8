"""The report's "Gates" table: each release's gate as the logged actions leave it.

The bundle logs actions and receipts, not gw.gates records, so a gate is replayed from its actions
the way decide judges it (processors.policy.gatestatus.verdict): the state is the last gate/promote
transition's target (PLAN_OK before any), the verdict is fail once an abort fired for that scope and
release, pass at CANARY_READY without one, pending otherwise. A release that never acted is not in
the log and so not in the table.

The shadow phase (gate.shadow) is read from the actions too, without the policy: a transition
`gate.from: SHADOW` says the release was in SHADOW before it, and an abort before any transition
that read only another cohort than the gate cohort (its signals all of one non-gate cohort: the
shadow cohort, what gate.shadow.abort rules read) is a failed shadow comparison, after which the
release stays in SHADOW for good. A release in SHADOW whose only actions are scope-rule aborts is
not recognisable so: it shows PLAN_OK.

The error budget column (only when the report's signals hold `error_budget_consumed` /
`error_budget_remaining`): the latest service-level values of the gate cohort for the row's scope
and release, else the scope's release-less ones, as decide's gate record carries them.
"""
from __future__ import annotations

from gatewatch.processors.policy.gate import STATES
from gatewatch.processors.policy.shadowphase import SHADOW
from gatewatch.sinks.report.series import _num, ts_ms
from gatewatch.sinks.report.widgets import badge, e

VERDICT_COLOR = {"pass": "#16a34a", "fail": "#dc2626", "pending": "#d97706"}


def gate_rows(timed: list[tuple[int, dict]], cohort: str = "canary") -> list[dict]:
    """[{scope, release, state, verdict, transitions, aborts, first_ts, last_ts}] from (ts, action)
    pairs in event-time order; one row per (scope, release), ordered by scope then first action.
    cohort: the gate cohort (to tell a failed shadow comparison from a scope rule's abort)."""
    rows: dict[tuple[str, str], dict] = {}
    for t, a in timed:
        scope = a.get("scope")
        if not isinstance(scope, str) or not scope:
            continue
        release = a.get("release") if isinstance(a.get("release"), str) else ""
        row = rows.setdefault((scope, release), {"scope": scope, "release": release, "state": STATES[0],
                                                 "transitions": [], "aborts": [], "first_ts": t, "last_ts": t})
        row["last_ts"] = t
        gate = a.get("gate")
        if a.get("kind") in ("gate", "promote") and isinstance(gate, dict) and isinstance(gate.get("to"), str):
            if not row["transitions"] and gate.get("from") == SHADOW:
                row["transitions"].append(SHADOW)
            row["state"] = gate["to"]
            row["transitions"].append(gate["to"])
        elif a.get("kind") == "abort":
            rule = a.get("rule") if isinstance(a.get("rule"), dict) else {}
            shadow = not row["transitions"] and _shadow_comparison(a, cohort)
            if shadow:
                row["state"] = SHADOW
            row["aborts"].append(f"{rule.get('id', '?')}: {a.get('action')}" + (" (shadow)" if shadow else ""))
    for row in rows.values():
        row["verdict"] = "fail" if row["aborts"] else "pass" if row["state"] == STATES[-1] else "pending"
    return sorted(rows.values(), key=lambda r: (r["scope"], r["first_ts"], r["release"]))


def _shadow_comparison(action: dict, cohort: str) -> bool:
    """An abort that read one cohort other than the gate cohort only: a gate.shadow comparison."""
    signals = action.get("signals") if isinstance(action.get("signals"), list) else []
    cohorts = {s.get("cohort") if isinstance(s, dict) else None for s in signals}
    return len(cohorts) == 1 and not cohorts & {None, "", "all", cohort}


BUDGET = ("error_budget_consumed", "error_budget_remaining")


def latest_budgets(signals: list[dict], cohort: str) -> dict[tuple[str, str], dict[str, float | None]]:
    """(scope, release) -> {signal name: latest value} of the gate cohort's error budget signals
    (the last record wins at equal ts, as in the series)."""
    latest: dict[tuple[str, str], dict[str, tuple[int, float | None]]] = {}
    for s in signals:
        if not isinstance(s, dict) or s.get("name") not in BUDGET or s.get("cohort") != cohort or s.get("subject"):
            continue
        t = ts_ms(s["ts"]) if isinstance(s.get("ts"), (str, int)) else None
        if t is None:
            continue
        release = s.get("release") if isinstance(s.get("release"), str) else ""
        slot = latest.setdefault((str(s.get("scope", "")), release), {})
        if s["name"] not in slot or t >= slot[s["name"]][0]:
            slot[s["name"]] = (t, _num(s.get("value")))
    return {k: {n: tv[1] for n, tv in v.items()} for k, v in latest.items()}


def _pct(v: float | None) -> str:
    return "?" if v is None else f"{v * 100:.1f}%"


def _budget_cell(budget: dict | None) -> str:
    if budget is None:
        return '<td><span class="muted">&mdash;</span></td>'
    return (f'<td class="mono nowrap">consumed {e(_pct(budget.get(BUDGET[0])))}<br>'
            f'remaining {e(_pct(budget.get(BUDGET[1])))}</td>')


def gates_section(timed: list[tuple[int, dict]], utc, signals: list[dict] = (), cohort: str = "canary") -> str:
    rows = gate_rows(timed, cohort)
    if not rows:
        return '<p class="empty">No action with a scope was logged.</p>'
    budgets = latest_budgets(list(signals), cohort)
    out = []
    for r in rows:
        why = "<br>".join(e(x) for x in r["aborts"]) or \
            (e(" \u2192 ".join(r["transitions"])) if r["transitions"] else '<span class="muted">no transition</span>')
        out.append(f"<tr><td>{e(r['scope'])}</td><td class=\"mono\">{e(r['release']) or '<span class=muted>&mdash;</span>'}"
                   f"</td><td>{e(r['state'])}</td><td>{badge(r['verdict'], VERDICT_COLOR[r['verdict']])}</td>"
                   f"<td>{why}</td><td class=\"mono nowrap\">{e(utc(r['first_ts']).strftime('%m-%d %H:%M:%S'))} \u2013 "
                   f"{e(utc(r['last_ts']).strftime('%m-%d %H:%M:%S'))}</td>"
                   + (_budget_cell(budgets.get((r["scope"], r["release"])) or budgets.get((r["scope"], "")))
                      if budgets else "") + "</tr>")
    return ("<table><tr><th>scope</th><th>release</th><th>final state</th><th>verdict</th>"
            "<th>aborts / transitions</th><th>actions (UTC)</th>" + ("<th>error budget</th>" if budgets else "")
            + "</tr>" + "".join(out) + "</table>")
