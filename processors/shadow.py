"""Policy shadow runs (seed 002): the decisions of a candidate policy beside the active one's over
the same input, and where they diverge. Pure: two lists of action records in, a report out.

Decisions are compared per (scope, release, kind, action, rule id) in event-time order: the n-th
decision of one run is paired with the n-th of the other. A pair at the same step agrees; one at
different steps says how much earlier or later the candidate acts; a decision without a partner
exists in one run only. Action ids differ by design (they carry the policy hash), so they are not
compared. Divergence 0 is the seed's bar for a policy change to pass.
"""
from __future__ import annotations

from gatewatch.processors.timefmt import parse_time_ms


def _key(a: dict) -> tuple:
    return (a.get("scope"), a.get("release") or "", a.get("kind"), a.get("action"), (a.get("rule") or {}).get("id"))


def _brief(a: dict) -> dict:
    return {"ts": a["ts"], "condition": (a.get("rule") or {}).get("text"),
            "signals": [{k: s.get(k) for k in ("name", "value", "threshold", "op")} for s in a.get("signals") or []]}


def diverge(active: list[dict], candidate: list[dict]) -> dict:
    """{"agree": n, "divergence": n, "diffs": [...]} (diffs sorted by scope, release, rule, ts)."""
    groups: dict[tuple, tuple[list, list]] = {}
    for side, acts in ((0, active), (1, candidate)):
        for a in acts:
            groups.setdefault(_key(a), ([], []))[side].append(a)
    agree, diffs = 0, []
    for key in sorted(groups, key=lambda k: tuple("" if x is None else str(x) for x in k)):
        act, cand = (sorted(x, key=lambda a: a["ts"]) for x in groups[key])
        scope, release, kind, action, rule = key
        base = {"scope": scope, "release": release, "kind": kind, "action": action, "rule": rule}
        for i in range(max(len(act), len(cand))):
            a = act[i] if i < len(act) else None
            c = cand[i] if i < len(cand) else None
            if a and c and a["ts"] == c["ts"]:
                agree += 1
                continue
            if a and c:
                delta = (parse_time_ms(c["ts"]) - parse_time_ms(a["ts"])) // 1000
                what = f"candidate acts {-delta}s earlier" if delta < 0 else f"candidate acts {delta}s later"
            else:
                what = "only the candidate acts" if c else "only the active policy acts"
            diffs.append({**base, "what": what, "active": _brief(a) if a else None,
                          "candidate": _brief(c) if c else None})
    return {"agree": agree, "divergence": len(diffs), "diffs": diffs}
