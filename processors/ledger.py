"""Exact arithmetic on partial buckets, so the signal stage can reconcile re-cut offset ranges.

Every additive field of a partial bucket (counts, histogram bins, shape counts) is an integer,
so "the partial for [a, c]" minus "the partials already applied for [a, b]" is exactly the
aggregate of (b, c]. Max-like fields (a gauge's last (t, v), a table's last change lc) are
taken from the larger range: merging them again is idempotent.

Why: on a broker where aborted transactions are visible (tansu), the signal stage may apply a
partial whose transaction was aborted; the restarted ingest worker re-reads from the committed
offset and cuts its next partial differently. With the last applied ranges kept as pieces,
PartitionSignals applies only the new part of such a partial (or splits a piece when a shorter
re-cut arrives) instead of refusing it or double-counting.

A piece is {"first": offset, "last": offset, "buckets": [bucket dicts as in a partial]}.
"""
from __future__ import annotations

from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.windows import later_sample

MAX_PIECES = 4


def _key(x: dict) -> tuple:
    return (x["d"], tuple(x["k"]), x["b"])


def _add_into(acc: dict, x: dict) -> None:
    k = _key(x)
    cur = acc.get(k)
    if cur is None:
        cur = acc[k] = {"d": x["d"], "k": list(x["k"]), "b": x["b"]}
        for f in ("n", "e", "rows"):
            if f in x:
                cur[f] = 0
        if "h" in x:
            cur["h"] = LogHistogram()
        if "sh" in x:
            cur["sh"] = {}
        if "lc" in x:
            cur["lc"] = None
        if "p" in x:
            cur["p"] = []
    if "p" in x:  # points of pre-aggregated series: a multiset, one per (series, t)
        cur["p"].extend(x["p"])
    for f in ("n", "e", "rows"):
        if f in x:
            cur[f] = cur.get(f, 0) + x[f]
    if "h" in x:
        cur["h"].merge(LogHistogram.read(x["h"]))
    if "sh" in x:
        sh = cur["sh"]
        for sid, c in x["sh"].items():
            sh[sid] = sh.get(sid, 0) + c
    for f in ("t", "v", "lc"):  # max-like: keep the newer range's
        if f in x:
            if f == "lc":
                if x[f] is not None and (cur.get(f) is None or x[f] > cur[f]):
                    cur[f] = x[f]
            elif f == "t" and ("t" not in cur or later_sample(x["t"], x["v"], cur["t"], cur["v"])):
                cur["t"], cur["v"] = x["t"], x["v"]


def _finish(acc: dict, drop_empty: bool) -> list[dict] | None:
    out = []
    for k in sorted(acc, key=lambda k: (k[0], list(k[1]), k[2])):
        x = acc[k]
        if any(x.get(f, 0) < 0 for f in ("n", "e", "rows")) or \
                any(c < 0 for c in x.get("sh", {}).values()) or x.pop("missing", False):
            return None  # not a sub-range: refuse
        if "p" in x:
            x["p"] = sorted(x["p"], key=lambda p: (p["t"], p["s"]))
        if "h" in x:
            h = x["h"]
            if h.zero < 0 or any(c < 0 for c in h.pos.values()) or any(c < 0 for c in h.neg.values()):
                return None
            x["h"] = h.to_json()
        if "sh" in x:
            x["sh"] = {s: c for s, c in sorted(x["sh"].items()) if c}
        empty = not x.get("n") and not x.get("rows") and not x.get("e") and not x.get("p") and \
            not (x.get("h") and (x["h"]["z"] or x["h"]["p"] or x["h"]["n"]))
        if drop_empty and empty:
            continue
        out.append(x)
    return out


def combine(bucket_lists: list[list[dict]]) -> list[dict]:
    acc: dict = {}
    for bl in bucket_lists:
        for x in bl:
            _add_into(acc, x)
    return _finish(acc, drop_empty=False) or []


def difference(big: list[dict], small: list[dict]) -> list[dict] | None:
    """big - small, bucket by bucket (None when small is not contained in big). Buckets left
    with no new samples are dropped: nothing of theirs is new."""
    acc: dict = {}
    for x in big:
        _add_into(acc, x)
    for x in small:
        k = _key(x)
        if k not in acc:
            return None
        _sub_only(acc[k], x)
    return _finish(acc, drop_empty=True)


def _sub_only(cur: dict, x: dict) -> None:
    for f in ("n", "e", "rows"):
        if f in x:
            cur[f] = cur.get(f, 0) - x[f]
    if "h" in x:
        cur["h"].subtract_signed(LogHistogram.read(x["h"]))
    if "sh" in x:
        sh = cur.setdefault("sh", {})
        for sid, c in x["sh"].items():
            sh[sid] = sh.get(sid, 0) - c
    for p in x.get("p", ()):
        ps = cur.get("p", [])
        i = next((i for i, q in enumerate(ps) if q["s"] == p["s"] and q["t"] == p["t"]), None)
        if i is None:
            cur["missing"] = True
        else:
            del ps[i]


def wire_piece(p: dict) -> dict:
    """A piece as JSON: pieces of replay's partials hold their histograms as objects
    (PartitionAggregator.flush(wire=False))."""
    first = next((x["h"] for x in p["buckets"] if "h" in x), None)
    if type(first) is not LogHistogram:  # one partial's buckets are all in one form: streaming's are JSON
        return p
    return {**p, "buckets": [{**x, "h": x["h"].to_json()} if type(x.get("h")) is LogHistogram else x
                             for x in p["buckets"]]}


def piece(first: int, last: int, buckets: list[dict]) -> dict:
    return {"first": first, "last": last, "buckets": buckets}
