"""The report's "Gates" table: each release's gate as the logged actions leave it.

The bundle logs actions and receipts, not gw.gates records, so a gate is replayed from its actions
the way decide judges it (processors.policy.gatestatus.verdict): the state is the last gate/promote
transition's target (PLAN_OK before any), the verdict is fail once an abort fired for that scope and
release, pass at CANARY_READY without one, pending otherwise. A release that never acted is not in
the log and so not in the table.
"""
from __future__ import annotations

from gatewatch.processors.policy.gate import STATES
from gatewatch.sinks.report.widgets import badge, e

VERDICT_COLOR = {"pass": "#16a34a", "fail": "#dc2626", "pending": "#d97706"}


def gate_rows(timed: list[tuple[int, dict]]) -> list[dict]:
    """[{scope, release, state, verdict, transitions, aborts, first_ts, last_ts}] from (ts, action)
    pairs in event-time order; one row per (scope, release), ordered by scope then first action."""
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
            row["state"] = gate["to"]
            row["transitions"].append(gate["to"])
        elif a.get("kind") == "abort":
            rule = a.get("rule") if isinstance(a.get("rule"), dict) else {}
            row["aborts"].append(f"{rule.get('id', '?')}: {a.get('action')}")
    for row in rows.values():
        row["verdict"] = "fail" if row["aborts"] else "pass" if row["state"] == STATES[-1] else "pending"
    return sorted(rows.values(), key=lambda r: (r["scope"], r["first_ts"], r["release"]))


def gates_section(timed: list[tuple[int, dict]], utc) -> str:
    rows = gate_rows(timed)
    if not rows:
        return '<p class="empty">No action with a scope was logged.</p>'
    out = []
    for r in rows:
        why = "<br>".join(e(x) for x in r["aborts"]) or \
            (e(" \u2192 ".join(r["transitions"])) if r["transitions"] else '<span class="muted">no transition</span>')
        out.append(f"<tr><td>{e(r['scope'])}</td><td class=\"mono\">{e(r['release']) or '<span class=muted>&mdash;</span>'}"
                   f"</td><td>{e(r['state'])}</td><td>{badge(r['verdict'], VERDICT_COLOR[r['verdict']])}</td>"
                   f"<td>{why}</td><td class=\"mono nowrap\">{e(utc(r['first_ts']).strftime('%m-%d %H:%M:%S'))} \u2013 "
                   f"{e(utc(r['last_ts']).strftime('%m-%d %H:%M:%S'))}</td></tr>")
    return ("<table><tr><th>scope</th><th>release</th><th>final state</th><th>verdict</th>"
            "<th>aborts / transitions</th><th>actions (UTC)</th></tr>" + "".join(out) + "</table>")
