"""`gatewatch policy shadow`: replay a corpus (kcat -J files) once with the active policy and once
with a candidate, and report where their decisions diverge (processors.shadow). Nothing is signed:
shadow decisions are never executable."""
from __future__ import annotations

from collections import Counter

import orjson

from gatewatch.processors.shadow import diverge
from gatewatch.streams.app.replay import Replayer, feed_files, scan_sources


def decisions(policy, paths: list[str]) -> list[dict]:
    rp = Replayer(policy, None, sources=scan_sources(paths))
    return [orjson.loads(v) for recs in feed_files(rp, paths, Counter()) for t, _k, v in recs if t == rp.t_actions]


def shadow_report(active, candidate, paths: list[str]) -> dict:
    report = diverge(decisions(active, paths), decisions(candidate, paths))
    return {"active_policy": active.hash, "candidate_policy": candidate.hash, "corpus": list(paths), **report}
