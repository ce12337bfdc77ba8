"""What every signal domain shares: the signal record, the per-key bucket base class, helpers.

A signal record: {"name","scope","cohort","subject","window_s","value","samples","ts"} (+ extras),
ts = window end (RFC 3339 UTC, ms, Z). value is null when the window holds no samples (so the
policy engine sees progress and can demand a minimum count), except cdc_silence_s.
"""
from __future__ import annotations

import orjson

from gatewatch.processors.catalogue import resolve
from gatewatch.processors.digest import LogHistogram, Ranked
from gatewatch.processors.timefmt import format_ts

DEFAULT_COHORT = "stable"


def _r(v):
    """Floats rounded to 10 significant digits: stable, readable wire values."""
    if v is None or isinstance(v, int):
        return v
    return float(f"{v:.10g}")


_last_ts: list = [None, ""]


def _ts(end: int) -> str:
    if _last_ts[0] != end:  # every signal of a step shares its end
        _last_ts[0], _last_ts[1] = end, format_ts(end)
    return _last_ts[1]


def signal(name, scope, cohort, subject, window_ms, value, samples, end, release: str = "", **extra) -> dict:
    s = {"name": name, "scope": scope, "cohort": cohort, "subject": subject,
         "window_s": window_ms // 1000, "value": _r(value), "samples": int(samples),
         "ts": _ts(end)}
    if release:  # the version the signal measures; release-less signals keep their bytes
        s["release"] = release
    for k, v in extra.items():
        s[k] = _r(v) if isinstance(v, float) else v
    return s


class Key:
    """Common per-key state: fine buckets, first bucket, last bucket with data before E."""
    retention_ms = 0  # keep emitting while there is data in [E - retention, E)

    def __init__(self):
        self.fine: dict[int, object] = {}
        self.first_b: int | None = None
        self.last_b: int | None = None

    def _seen(self, b: int) -> None:
        """Register bucket b. The task never merges a bucket behind its emission point (such data
        is late: SignalTask drops and reports it), so a bucket is always in the future of the
        running windows, which advance() takes it into."""
        if self.first_b is None or b < self.first_b:
            self.first_b = b

    def advance(self, end: int, step: int) -> None:
        if (end - step) in self.fine:
            self.last_b = end - step

    def active(self, end: int) -> bool:
        return (self.first_b is not None and self.first_b < end and self.last_b is not None
                and self.last_b >= end - self.retention_ms)

    def due(self, end: int, step: int) -> bool:
        """Whether the key will be active at `end` (before advance(end) has run)."""
        return (end - step) in self.fine or self.active(end)

    def rebuild(self, until: int, cfg) -> None:
        """Recompute running windows so they cover [until - W, until) (after skipped steps)."""

    def has_future(self, end: int) -> bool:
        return any(b >= end for b in self.fine)

    def _base_json(self) -> dict:
        return {"first_b": self.first_b, "last_b": self.last_b}

    def _load_base(self, j: dict) -> None:
        self.first_b, self.last_b = j["first_b"], j["last_b"]


def slide(win: LogHistogram, hists: dict, end: int, step: int, width: int) -> bool:
    """Move a running window histogram from [end-step-width, end-step) to [end-width, end).
    Returns whether it still has the same buckets (keys, and a zero count or none): merge only
    adds keys and subtract only removes them, so unchanged sizes before and after each say so."""
    before = (len(win.pos), len(win.neg), win.zero > 0)
    h = hists.get(end - step)
    if h is not None:
        win.merge(h)
    merged = (len(win.pos), len(win.neg), win.zero > 0)
    h = hists.get(end - step - width)
    if h is not None:
        win.subtract(h)
    return before == merged == (len(win.pos), len(win.neg), win.zero > 0)


def merge_hist(hists: dict, json_cache: dict, b: int, h) -> None:
    """hists[b] += a partial bucket's histogram h (processors.digest LogHistogram.read / of: copied
    only when kept), and the bucket's cached snapshot form (hists_json) dropped."""
    json_cache.pop(b, None)
    cur = hists.get(b)
    if cur is None:
        hists[b] = LogHistogram.of(h)
    else:
        cur.merge(LogHistogram.read(h))


def hists_json(hists: dict, cache: dict) -> list:
    """[[b, hists[b].to_json()], ...] in bucket order for a snapshot, each histogram as the bytes
    orjson made of its to_json() (an orjson.Fragment, so the snapshot splices them in), kept in
    `cache` until the caller pops the bucket (whenever it merges into it). A snapshot is written
    every 2 s and almost every bucket is closed, behind the emission point: re-serializing them all
    was most of the live worker's snapshot cost. Same bytes as serializing the dicts."""
    out = []
    for b in sorted(hists):
        j = cache.get(b)
        if j is None:
            # a copy: orjson's own result keeps its whole output buffer (4-128 KB, measured with
            # tracemalloc), which thousands of cached buckets turned into tens of MB
            j = cache[b] = orjson.Fragment(bytes(memoryview(orjson.dumps(hists[b].to_json()))))
        out.append([b, j])
    if len(cache) > len(out):  # evicted buckets
        for b in [b for b in cache if b not in hists]:
            del cache[b]
    return out


class WindowViews:
    """What is derived from a running window histogram, made at most once per position of the
    window (the key calls moved() from advance / rebuild): its ranked view, shared by every signal
    that reads the window in a step (p95 and p99, the canary deltas as cohort or baseline), and
    its JSON form (a live worker writes several snapshots between two steps). While the window
    keeps its buckets, the next ranked view reuses the last one's sorted layout (ranked_like)."""
    __slots__ = ("_ranked", "_ranked_current", "_json")

    def __init__(self):
        self._ranked: Ranked | None = None  # the last ranked view; None: its layout is stale
        self._ranked_current = False
        self._json = None

    def moved(self, same_buckets: bool = False) -> None:
        self._ranked_current = False
        self._json = None
        if not same_buckets:
            self._ranked = None

    def ranked(self, win: LogHistogram) -> Ranked:
        if not self._ranked_current:
            if self._ranked is None:
                self._ranked = win.ranked()
                # keep the window's buckets in key order: a slide appends a few keys and drops a
                # few, so the next ranked() sorts an almost sorted sequence (timsort: near-linear)
                ks = self._ranked.layout[1]
                win.pos = dict(zip(ks, map(win.pos.__getitem__, ks)))
            else:
                self._ranked = win.ranked_like(self._ranked)
            self._ranked_current = True
        return self._ranked

    def json(self, win: LogHistogram) -> dict:
        if self._json is None:
            self._json = win.to_json()
        return self._json


def sum_hists(hists: dict, lo: int, hi: int) -> LogHistogram:
    out = LogHistogram()
    for b in sorted(b for b in hists if lo <= b < hi):
        out.merge(hists[b])
    return out


def drop(d: dict, before: int) -> None:
    """Delete the buckets before `before`. Runs after every applied partial, mostly with nothing to
    drop: min() settles that in C (a Python scan of 6 h of fine buckets was signals' largest cost)."""
    if d and min(d) < before:
        for b in [b for b in d if b < before]:
            del d[b]


def dense(d: dict[int, list], unit: int) -> dict:
    """{b: [n, e]} -> {"b0", "n": [...], "e": [...]} over consecutive buckets (0 = empty): the
    request state is mostly full 10 s buckets, and this keeps its snapshot small."""
    if not d:
        return {"b0": None, "n": [], "e": []}
    b0 = min(d)
    size = (max(d) - b0) // unit + 1
    ns, es = [0] * size, [0] * size
    for b, v in d.items():  # only the buckets present (cheaper than a get per slot)
        i, off = divmod(b - b0, unit)
        if not off:
            ns[i], es[i] = v[0], v[1]
    return {"b0": b0, "n": ns, "e": es}


def undense(j: dict, unit: int) -> dict[int, list]:
    b0 = j["b0"]
    return {b0 + i * unit: [n, e] for i, (n, e) in enumerate(zip(j["n"], j["e"])) if n or e}


def pairs(d: dict) -> list:
    return list(map(list, sorted(d.items())))


class SignalBatch(list):
    """One (E, domain, scope) batch: a plain list of signal dicts that also says its domain (a
    gauge may have any name, so the catalogue cannot always tell). Serializes as a list."""
    __slots__ = ("domain", "scope")


def batch_domain(batch: list[dict]) -> str:
    """The domain of a batch from apply()/run_pipeline(); for plain lists, from the catalogue,
    and "gauges" for a name the catalogue does not know (only gauges carry free names)."""
    d = getattr(batch, "domain", None)
    if d is not None:
        return d
    sd = resolve(batch[0]["name"]) if batch else None
    return sd.domain if sd is not None else "gauges"


