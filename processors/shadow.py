"""Policy shadow runs (seed 002): the decisions of a candidate policy beside the active one's over
the same input, and where they diverge. Pure: two lists of action records in, a report out.

Decisions are compared per (scope, release, kind, action, rule id) in event-time order: the n-th
decision of one run is paired with the n-th of the other. A pair at the same step agrees; one at
different steps says how much earlier or later the candidate acts; a decision without a partner
exists in one run only. Action ids differ by design (they carry the policy hash), so they are not
compared. Divergence 0 is the seed's bar for a policy change to pass.
"""
from __future__ import annotations

from gatewatch.processors.canonical import content_id
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


# ---- live shadow (the decide stage): a candidate's decisions as records that can never execute ----

def shadow_decision(action: dict, active_same_step: bool) -> dict:
    """A candidate policy's decision as a shadow record: no permit (never signed, so any executor
    refuses it with missing_permit), `shadow: true`, and an id that is the content hash of the rest.
    That id can never equal an action id (those hash policy, scope, rule, ts, action, release), so a
    shadow record logged beside the actions never occupies an executable action's id. The id the
    action would carry if the candidate were promoted is kept as candidate_action_id."""
    body = {k: v for k, v in action.items() if k not in ("id", "permit")}
    body.update(shadow=True, candidate_action_id=action["id"], active_same_step=active_same_step)
    return {**body, "id": content_id(body)}


def shadow_gate(gate: dict) -> dict:
    """A candidate policy's gate record, marked: it goes to the shadow topic, never to gw.gates."""
    return {**gate, "shadow": True}


def is_shadow_decision(value: dict) -> bool:
    """A shadow decision by its shape: marked shadow, no permit, its id the hash of the rest."""
    return (value.get("shadow") is True and "permit" not in value and isinstance(value.get("id"), str)
            and value["id"] == content_id({k: v for k, v in value.items() if k != "id"}))


def same_step(decided: list[dict], action: dict) -> bool:
    """Whether the active policy already made this decision (kind, action, rule) at the same step:
    `decided` is the active engine's record of one scope/release's actions (Engine.decided)."""
    rule = (action.get("rule") or {}).get("id")
    return any(d["ts"] == action["ts"] and d["rule"] == rule and d["kind"] == action["kind"]
               and d["action"] == action["action"] for d in decided)
