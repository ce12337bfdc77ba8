"""`gatewatch policy shadow`: replay a corpus (kcat -J files) once with the active policy and once
with a candidate, and report where their decisions diverge (processors.shadow). Nothing is signed:
shadow decisions are never executable.

`--live` reports the same way on what a decide worker run with --shadow-policy published: the
candidate's decisions on gw.shadow against the active policy's on gw.actions. It is advisory:
gw.shadow records are unsigned by design (they must never be executable), so anyone who can write
to that topic can shape the candidate side. With the decider's public key, the active side counts
only actions whose permit verifies; every record left out is counted by reason in `not_counted`.
The authoritative check is the offline `policy shadow --corpus`, which re-decides both sides."""
from __future__ import annotations

from collections import Counter

import orjson
from nacl.signing import VerifyKey

from gatewatch.processors.shadow import diverge, is_shadow_decision
from gatewatch.processors.signing import check_permit
from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms
from gatewatch.streams.app.replay import Replayer, feed_files, scan_sources

ACTION_KINDS = ("hook", "abort", "promote", "gate")


def decisions(policy, paths: list[str]) -> list[dict]:
    rp = Replayer(policy, None, sources=scan_sources(paths))
    return [orjson.loads(v) for recs in feed_files(rp, paths, Counter()) for t, _k, v in recs if t == rp.t_actions]


def shadow_report(active, candidate, paths: list[str]) -> dict:
    report = diverge(decisions(active, paths), decisions(candidate, paths))
    return {"active_policy": active.hash, "candidate_policy": candidate.hash, "corpus": list(paths), **report}


def policy_hashes(policy) -> set[str]:
    """The hashes a policy's decisions carry: its base policy's and each overlay's."""
    return {policy.hash} | {o.policy.hash for o in policy.overlays}


def live_report(action_values: list[bytes], shadow_values: list[bytes], candidate_hashes: set[str] | None = None,
                since_ms: int | None = None, decider_keys: dict[str, VerifyKey] | None = None) -> dict:
    """The divergence report over gw.actions and gw.shadow values: the decisions on gw.actions
    (shadow records put there by mistake are not the active policy's) against the shadow decisions
    (those of `candidate_hashes` when given), from event time `since_ms` on when given. With
    decider_keys (key id -> key) an action counts only if its permit verifies. Every record not
    counted is tallied in not_counted[topic][reason]; none raises."""
    skipped: dict[str, Counter] = {"actions": Counter(), "shadow": Counter()}

    def decoded(values, side):
        seen: set[str] = set()  # decide publishes at least once: a record twice is one decision
        for v in values:
            try:
                rec = orjson.loads(v)
            except orjson.JSONDecodeError:
                skipped[side]["not_json"] += 1
                continue
            if isinstance(rec, dict) and "verdict" in rec:
                skipped[side]["gate_record"] += 1  # the candidate's gate steps: not decisions
            elif not isinstance(rec, dict) or rec.get("kind") not in ACTION_KINDS:
                skipped[side]["not_a_decision"] += 1
            elif not _well_formed(rec):
                skipped[side]["malformed"] += 1
            elif not _at_or_after(rec["ts"], since_ms):
                skipped[side]["before_since"] += 1
            elif isinstance(rec.get("id"), str) and rec["id"] in seen:
                skipped[side]["duplicate"] += 1
            else:
                if isinstance(rec.get("id"), str):
                    seen.add(rec["id"])
                yield rec
    active = []
    for a in decoded(action_values, "actions"):
        why = "shadow_record" if is_shadow_decision(a) else _permit_problem(a, decider_keys)
        if why:
            skipped["actions"][why] += 1
        else:
            active.append(a)
    shadow = []
    for s in decoded(shadow_values, "shadow"):
        if not is_shadow_decision(s):
            skipped["shadow"]["not_a_shadow_record"] += 1
        elif candidate_hashes is not None and not (isinstance(s.get("policy_hash"), str)
                                                  and s["policy_hash"] in candidate_hashes):
            skipped["shadow"]["other_candidate"] += 1
        else:
            shadow.append(s)
    return {"active_policy": _hashes(active), "candidate_policy": _hashes(shadow), "corpus": ["live"],
            "permits": "checked" if decider_keys else "not checked (no decider key)",
            "not_counted": {t: dict(sorted(c.items())) for t, c in skipped.items()},
            **diverge(active, shadow)}


def _permit_problem(action: dict, decider_keys: dict[str, VerifyKey] | None) -> str | None:
    """Why an action on gw.actions is not the active policy's signed decision (None: it is, or no
    key to tell). Validity in time is not asked: a report reads past decisions."""
    if not decider_keys:
        return None
    permit = action.get("permit")
    at = permit.get("not_before") if isinstance(permit, dict) else None
    try:
        now_ms = parse_time_ms(at) if isinstance(at, str) else 0
    except (TimeFormatError, TypeError, ValueError):
        now_ms = 0
    why = check_permit(action, decider_keys, now_ms)
    return None if why in (None, "expired", "not_yet_valid") else f"permit_{why}"


def _well_formed(rec: dict) -> bool:
    """Every field diverge() reads has the type the engine writes."""
    rule, signals = rec.get("rule"), rec.get("signals", [])
    return (isinstance(rec.get("scope"), str) and isinstance(rec.get("release", ""), (str, type(None)))
            and isinstance(rec.get("action"), str) and isinstance(rec.get("ts"), str)
            and isinstance(rule, dict) and isinstance(rule.get("id"), str)
            and isinstance(rule.get("text", ""), (str, type(None)))
            and isinstance(signals, list) and all(isinstance(x, dict) for x in signals))


def _hashes(decided: list[dict]) -> str:
    return ",".join(sorted({str(d.get("policy_hash")) for d in decided})) or "-"


def _at_or_after(ts, since_ms: int | None) -> bool:
    if not isinstance(ts, str):  # the engine writes RFC 3339 strings; diverge() orders by them
        return False
    try:
        return parse_time_ms(ts) >= (since_ms if since_ms is not None else -1 << 62)
    except (TimeFormatError, TypeError, ValueError):
        return False  # no readable step: not a decision either report could place
