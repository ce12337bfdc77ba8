"""`gatewatch policy shadow`: replay a corpus (kcat -J files) once with the active policy and once
with a candidate, and report where their decisions diverge (processors.shadow). Nothing is signed:
shadow decisions are never executable.

`--live` reports the same way on what a decide worker run with --shadow-policy published: the
candidate's decisions on gw.shadow against the active policy's on gw.actions."""
from __future__ import annotations

from collections import Counter

import orjson

from gatewatch.processors.shadow import diverge, is_shadow_decision
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
                since_ms: int | None = None) -> dict:
    """The divergence report over gw.actions and gw.shadow values: the decisions on gw.actions
    (shadow records put there by mistake are not the active policy's) against the shadow decisions
    (those of `candidate_hashes` when given), from event time `since_ms` on when given."""
    def decoded(values):
        for v in values:
            try:
                rec = orjson.loads(v)
            except orjson.JSONDecodeError:
                continue
            if isinstance(rec, dict) and rec.get("kind") in ACTION_KINDS and "verdict" not in rec \
                    and _at_or_after(rec.get("ts"), since_ms):
                yield rec
    active = [a for a in decoded(action_values) if not is_shadow_decision(a)]
    shadow = [s for s in decoded(shadow_values) if is_shadow_decision(s)
              and (candidate_hashes is None or s.get("policy_hash") in candidate_hashes)]
    return {"active_policy": _hashes(active), "candidate_policy": _hashes(shadow), "corpus": ["live"],
            **diverge(active, shadow)}


def _hashes(decided: list[dict]) -> str:
    return ",".join(sorted({str(d.get("policy_hash")) for d in decided})) or "-"


def _at_or_after(ts, since_ms: int | None) -> bool:
    if not isinstance(ts, str):  # the engine writes RFC 3339 strings; diverge() orders by them
        return False
    try:
        return parse_time_ms(ts) >= (since_ms if since_ms is not None else -1 << 62)
    except (TimeFormatError, TypeError, ValueError):
        return False  # no readable step: not a decision either report could place
