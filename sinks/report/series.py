"""Pure data shaping for the report: signal series, down-sampling, thresholds, receipts by action."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms

OPS = {">": lambda v, t: v > t, ">=": lambda v, t: v >= t, "<": lambda v, t: v < t,
       "<=": lambda v, t: v <= t, "==": lambda v, t: v == t, "!=": lambda v, t: v != t}


def ts_ms(value) -> int | None:
    try:
        return parse_time_ms(value)
    except (TimeFormatError, TypeError, ValueError):
        return None


def _num(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if f == f and abs(f) != float("inf") else None


@dataclass(slots=True)
class Point:
    t: int
    v: float
    lo: float | None = None
    hi: float | None = None
    extra: dict = field(default_factory=dict)


def index_signals(signals: list[dict], release: str | None = None) -> dict[tuple, list[Point]]:
    """(scope, name, cohort, subject) -> points sorted by time. With `release`, a record of another
    release is left out (records without one, e.g. the baseline's, stay). Two records of one series
    and ts (two releases, a re-published step): the greater (release, value) is kept, so the
    page does not depend on the order of the input lines."""
    raw: dict[tuple, dict[int, Point]] = defaultdict(dict)
    kept: dict[tuple, dict] = {}
    parsed: dict = {}  # the records of one step share a ts string: parse it once
    for s in signals:
        if not isinstance(s, dict) or not isinstance(s.get("name"), str):
            continue
        rel = s.get("release")
        if release is not None and rel is not None and rel != release:
            continue
        ts = s.get("ts")
        if not isinstance(ts, (str, int)):
            continue
        if ts not in parsed:
            parsed[ts] = ts_ms(ts)
        t, v = parsed[ts], _num(s.get("value"))
        if t is None or v is None:
            continue
        key = (str(s.get("scope", "")), s["name"], str(s.get("cohort", "")), str(s.get("subject") or ""))
        if t in raw[key] and _rank(kept[key, t]) >= _rank(s):
            continue
        kept[key, t] = s
        extra = {k: s[k] for k in ("baseline", "samples") if _num(s.get(k)) is not None}  # numbers drawn
        if isinstance(s.get("baseline_source"), str):
            extra["baseline_source"] = s["baseline_source"]
        raw[key][t] = Point(t, v, _num(s.get("ci_low")), _num(s.get("ci_high")), extra)
    return {k: [pts[t] for t in sorted(pts)] for k, pts in raw.items()}


def _rank(record: dict) -> tuple:
    return str(record.get("release") or ""), orjson.dumps(record, option=orjson.OPT_SORT_KEYS, default=str)


def downsample(points: list[Point], max_points: int) -> list[Point]:
    """Min/max per time bucket, in time order: keeps spikes and threshold crossings visible."""
    if len(points) <= max_points or max_points < 4:
        return points
    buckets = max_points // 2
    t0, t1 = points[0].t, points[-1].t
    span = max(1, t1 - t0)
    groups: dict[int, list[Point]] = defaultdict(list)
    for p in points:
        groups[min(buckets - 1, (p.t - t0) * buckets // span)].append(p)
    out: list[Point] = []
    for b in sorted(groups):
        g = groups[b]
        lo = min(g, key=lambda p: (p.v, p.t))
        hi = max(g, key=lambda p: (p.v, -p.t))
        out.extend(sorted({id(lo): lo, id(hi): hi}.values(), key=lambda p: p.t))
    return out


def thresholds_from_rules(rules: list[dict]) -> list[dict]:
    """Rules as {"id","kind","text","conds":[{"signal","op","threshold","for_ms"}]} -> threshold lines."""
    out = []
    for r in rules:
        for c in r.get("conds", []):
            out.append({"signal": c["signal"], "op": c["op"], "threshold": c["threshold"],
                        "for_ms": c.get("for_ms", 0), "rule": r.get("id", "")})
    return merge_thresholds(out)


def thresholds_from_actions(actions: list[dict]) -> list[dict]:
    """The thresholds the decider reported in actions' signals[] (op + threshold set)."""
    out = []
    for a in actions:
        rid = (a.get("rule") or {}).get("id", "") if isinstance(a.get("rule"), dict) else ""
        for s in a.get("signals") or []:
            if isinstance(s, dict) and s.get("op") in OPS and _num(s.get("threshold")) is not None:
                out.append({"signal": s.get("name"), "op": s["op"], "threshold": float(s["threshold"]),
                            "for_ms": 0, "rule": rid})
    return merge_thresholds(out)


def merge_thresholds(items: list[dict]) -> list[dict]:
    """One line per (signal, op, threshold); the rule ids that use it joined, sorted."""
    by: dict[tuple, set] = defaultdict(set)
    for t in items:
        if isinstance(t.get("signal"), str) and t.get("op") in OPS and _num(t.get("threshold")) is not None:
            key = (t["signal"], t["op"], float(t["threshold"]))
            by[key].update(str(r) for r in t.get("rules") or [t.get("rule", "")])
    return [{"signal": s, "op": op, "threshold": th, "rules": sorted(r for r in rules if r)}
            for (s, op, th), rules in sorted(by.items())]


def breach_intervals(points: list[Point], op: str, threshold: float) -> list[tuple[int, int]]:
    """Time spans where consecutive points satisfy `value op threshold`."""
    test = OPS[op]
    spans, start, last = [], None, None
    for p in points:
        if test(p.v, threshold):
            start = p.t if start is None else start
            last = p.t
        elif start is not None:
            spans.append((start, p.t))
            start = None
    if start is not None:
        spans.append((start, last))
    return spans


def union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def receipts_by_action(receipts: list[dict]) -> dict[str, list[dict]]:
    by: dict[str, list[dict]] = defaultdict(list)
    for r in receipts:
        if isinstance(r, dict) and isinstance(r.get("action_id"), str):
            by[r["action_id"]].append(r)
    return {k: sorted(v, key=lambda r: (r.get("seq") or 0, str(r.get("ts")), str(r.get("id")))) for k, v in by.items()}
