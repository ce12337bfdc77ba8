"""Exactly mergeable quantile sketch: a log-bucketed histogram (the DDSketch mapping).

Why not a t-digest (fastdigest): a t-digest merge is not associative, so the percentile would
depend on how the ingest stage happened to cut the stream into partials (flush boundaries,
a restart after SIGKILL re-reading from the last committed offset). Streaming == replay and
"a crash changes nothing" need bit-identical results for any split. Here each value lands in
bucket k = ceil(log(x) / log(gamma)) with gamma = (1 + a) / (1 - a); merging adds integer
counts, so any split and any merge order give the same sketch. Every quantile is within
relative error `a` (ALPHA = 0.5%) of an exact order statistic of the data. Zero (|x| < 1e-9)
and negative values (e.g. a CDC lag under clock skew) have their own stores.

State and wire form are plain JSON: {"z": zero count, "p": [k, c, k, c, ...], "n": [...]}.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from itertools import accumulate

ALPHA = 0.005
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_INV_LN_GAMMA = 1.0 / math.log(GAMMA)
_MIN = 1e-9
_log = math.log
_ceil = math.ceil


def bucket_of(x: float) -> int:
    return _ceil(_log(x) * _INV_LN_GAMMA)


class _Reps(dict):
    """bucket k -> the value representing it, computed on first use: lets ranked() look many up
    with one C-level map() instead of a Python call per bucket."""
    def __missing__(self, k: int) -> float:
        v = self[k] = 2.0 * GAMMA ** k / (GAMMA + 1.0)
        return v


_REPS = _Reps()


def _rep(k: int) -> float:
    """The value representing bucket k: (gamma^(k-1), gamma^k] -> within ALPHA of any member."""
    return _REPS[k]


class LogHistogram:
    __slots__ = ("pos", "neg", "zero")

    def __init__(self):
        self.pos: dict[int, int] = {}
        self.neg: dict[int, int] = {}
        self.zero = 0

    def add(self, x: float) -> None:
        if x > _MIN:
            k = _ceil(_log(x) * _INV_LN_GAMMA)
            p = self.pos
            p[k] = p.get(k, 0) + 1
        elif x < -_MIN:
            k = _ceil(_log(-x) * _INV_LN_GAMMA)
            n = self.neg
            n[k] = n.get(k, 0) + 1
        else:
            self.zero += 1

    @property
    def count(self) -> int:
        return self.zero + sum(self.pos.values()) + sum(self.neg.values())

    def merge(self, other: "LogHistogram") -> "LogHistogram":
        for mine, theirs in ((self.pos, other.pos), (self.neg, other.neg)):
            for k, c in theirs.items():
                mine[k] = mine.get(k, 0) + c
        self.zero += other.zero
        return self

    def subtract(self, other: "LogHistogram") -> "LogHistogram":
        """Exact inverse of merge (counts are integers): lets a window slide bucket by bucket."""
        for mine, theirs in ((self.pos, other.pos), (self.neg, other.neg)):
            for k, c in theirs.items():
                left = mine.get(k, 0) - c
                if left > 0:
                    mine[k] = left
                else:
                    mine.pop(k, None)
        self.zero = max(0, self.zero - other.zero)
        return self

    def subtract_signed(self, other: "LogHistogram") -> "LogHistogram":
        """Like subtract, but lets counts go negative (to detect a non-sub-range)."""
        for mine, theirs in ((self.pos, other.pos), (self.neg, other.neg)):
            for k, c in theirs.items():
                left = mine.get(k, 0) - c
                if left:
                    mine[k] = left
                else:
                    mine.pop(k, None)
        self.zero -= other.zero
        return self

    def ranked(self) -> "Ranked":
        """An immutable sorted view for quantile queries (build once, query many)."""
        neg, pos = self.neg, self.pos
        neg_ks = sorted(neg, reverse=True)  # usually empty
        values = [-_REPS[k] for k in neg_ks]
        pos_ks = sorted(pos)
        if self.zero:
            values.append(0.0)
        values += map(_REPS.__getitem__, pos_ks)  # C-level loops: this runs for every window, every step
        return Ranked(values, self._cum(neg_ks, pos_ks), (neg_ks, pos_ks))

    def ranked_like(self, prev: "Ranked") -> "Ranked":
        """ranked() when this histogram has exactly the buckets (and zero count or none) it had
        when prev was built from it, as a sliding window mostly has from one step to the next:
        prev's sorted keys and values are reused, only the counts are accumulated again. The
        caller must know the bucket set is unchanged (common.slide tells)."""
        neg_ks, pos_ks = prev.layout
        return Ranked(prev.values, self._cum(neg_ks, pos_ks), prev.layout)

    def _cum(self, neg_ks: list, pos_ks: list) -> list[int]:
        counts = [self.neg[k] for k in neg_ks]
        if self.zero:
            counts.append(self.zero)
        counts += map(self.pos.__getitem__, pos_ks)
        return list(accumulate(counts))

    def quantile(self, q: float) -> float | None:
        return self.ranked().quantile(q)

    def quantiles(self, qs: tuple[float, ...]) -> tuple[list[float | None], int]:
        """([ranked().quantile(q) for q in qs], count) without building the ranked view: one walk
        up the buckets that stops at the highest rank needed (signals ask for p95/p99 of a few
        hundred buckets every step). Same floats as Ranked.quantile (tested)."""
        n = self.zero + sum(self.pos.values()) + sum(self.neg.values())
        if n == 0:
            return [None] * len(qs), 0
        plan = []
        for q in qs:
            h = (n - 1) * q
            lo = int(math.floor(h))
            plan.append((h, lo, None if h == lo else min(lo + 1, n - 1)))
        targets = sorted({r for _h, lo, hi in plan for r in (lo, hi) if r is not None})
        at: dict[int, float] = {}
        i, total = 0, 0
        buckets = [(-_rep(k), self.neg[k]) for k in sorted(self.neg, reverse=True)]  # usually empty
        if self.zero:
            buckets.append((0.0, self.zero))
        for value, c in buckets:
            total += c
            while i < len(targets) and targets[i] < total:  # bisect_right(cum, j): first cum > j
                at[targets[i]] = value
                i += 1
        if i < len(targets):
            pos = self.pos
            for k in sorted(pos):
                total += pos[k]
                if targets[i] < total:
                    value = _rep(k)
                    while i < len(targets) and targets[i] < total:
                        at[targets[i]] = value
                        i += 1
                    if i == len(targets):
                        break
        out = []
        for h, lo, hi in plan:
            a = at[lo]
            out.append(a if hi is None else a + (h - lo) * (at[hi] - a))
        return out, n

    # ---- JSON form ----
    def to_json(self) -> dict:
        def flat(d):
            return [x for k in sorted(d) for x in (k, d[k])]
        return {"z": self.zero, "p": flat(self.pos), "n": flat(self.neg)}

    @classmethod
    def from_json(cls, j: dict) -> "LogHistogram":
        h = cls()
        h.zero = int(j.get("z", 0))
        for attr, key in (("pos", "p"), ("neg", "n")):
            flat = j.get(key) or []
            # strict: an odd-length list is a corrupt histogram; refused, not merged without its last key
            setattr(h, attr, dict(zip(map(int, flat[0::2]), map(int, flat[1::2]), strict=True)))
        return h

    @classmethod
    def read(cls, h: "dict | LogHistogram") -> "LogHistogram":
        """A partial bucket's "h" to read from (merge or subtract it), not to keep: the JSON form
        (from gw.partials) parsed, or the LogHistogram itself (replay hands its partials to its
        task without the JSON round trip)."""
        return h if type(h) is cls else cls.from_json(h)

    @classmethod
    def of(cls, h: "dict | LogHistogram") -> "LogHistogram":
        """read(h) as a histogram of its own, to keep and merge into: the partial keeps its counts."""
        return h.copy() if type(h) is cls else cls.from_json(h)

    def copy(self) -> "LogHistogram":
        h = LogHistogram()
        h.pos, h.neg, h.zero = dict(self.pos), dict(self.neg), self.zero
        return h


class Ranked:
    """Sorted bucket representatives with cumulative counts."""
    __slots__ = ("values", "cum", "n", "layout")

    def __init__(self, values: list[float], cum: list[int], layout: tuple = ((), ())):
        self.values, self.cum = values, cum
        self.layout = layout  # (neg keys, pos keys) in value order: what ranked_like reuses
        self.n = cum[-1] if cum else 0

    def at_rank(self, j: int) -> float:
        """The j-th smallest value (0-based), to within ALPHA."""
        return self.values[bisect_right(self.cum, j)]

    def quantile(self, q: float) -> float | None:
        """Like numpy.percentile(..., method="linear"): interpolate between order statistics."""
        if self.n == 0:
            return None
        h = (self.n - 1) * q
        lo = int(math.floor(h))
        a = self.at_rank(lo)
        if h == lo:
            return a
        b = self.at_rank(min(lo + 1, self.n - 1))
        return a + (h - lo) * (b - a)
