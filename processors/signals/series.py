"""Points of pre-aggregated series -> counts per time bucket, in the signals task that owns the service.

Cumulative points (a counter's total, a histogram's counts since start) become deltas between
consecutive points of one series, in event-time order, once the task's watermark has passed them:
only then have all of its points arrived, from whichever partitions. A delta covers the interval
(previous t, t] and counts in the step that holds its last instant (t - 1 ms), so a 10 s export
interval aligned to the steps lands where the per-request samples of that interval would.
Counter resets: a new start time, or any count going down, starts over (the delta is the new total).
The first point of a cumulative series counts in full when the series is new since an earlier
export of its producer ("origin": an OTLP process by its start time, a Prometheus target by its
instance label): an SDK exports every series it ever observed at every export, and a client library
shows a labelled series once it is first incremented, so a series missing from the producer's previous
export was at zero then. It also counts in full when its start time is at most FIRST_START_MS before
it (a process that just started). Otherwise it is the series' baseline and counts start with the
second point (what Prometheus' increase() does with a series it has not seen before). Delta points
count as they come.

Histograms land in the exactly mergeable log histogram (processors.digest) by spreading each
bucket's count over the log buckets its range covers: linearly within an explicit bucket, as
Prometheus' histogram_quantile interpolates; log-linearly within an exponential bucket. Counts stay
exact integers: observation j of n sits at (j - 1/2) / n of the range (one alone mid-bucket, not at
its top). Every observation stays in its true bucket, so a quantile (the linear one, between the
observations around its rank) is off the true one by at most the width of the buckets holding those
observations, plus the log histogram's 0.5 % (README "Quantiles"). The +Inf bucket's count
sits at the last finite bound (what histogram_quantile returns there); with no finite bound its
observations have no place and count as requests only, with no latency. The first explicit bucket
spreads over (bound / 1000, bound].
"""
from __future__ import annotations

import functools
import math

from gatewatch.processors.digest import LogHistogram, bucket_of
from gatewatch.processors.inputs.points import interval_bucket

FIRST_START_MS = 600_000


def spread(hist: LogHistogram, lo: float, hi: float, count: int, log: bool = False) -> None:
    """Add `count` observations spread over (lo, hi] (linearly, or in log space)."""
    if count <= 0:
        return
    if hi <= 0 or hi <= lo:
        _add(hist, hi, count)
        return
    kl, fractions = _fractions(max(lo, hi / 1000.0), hi, log)
    # observation j of 1..count sits at the fraction (j - 1/2)/count of the range: the midpoints of
    # histogram_quantile's linear interpolation, so one observation alone sits mid-bucket, not at its top
    pos, placed = hist.pos, 0
    for k, fk in enumerate(fractions, kl):
        upto = min(count, math.floor(count * fk + 0.5 + 1e-9))
        if upto > placed:
            pos[k] = pos.get(k, 0) + upto - placed
            placed = upto
    if count > placed:  # the rest: in the log bucket holding hi
        k = kl + len(fractions)
        pos[k] = pos.get(k, 0) + count - placed


@functools.lru_cache(maxsize=4096)
def _fractions(lo: float, hi: float, log: bool) -> tuple[int, tuple[float, ...]]:
    """(the log bucket of lo, the fraction of (lo, hi] below the top of each log bucket from there
    up to the one before hi's): the same for every point of a series, so computed once per bucket."""
    kl, kh = bucket_of(lo), bucket_of(hi)
    gamma = math.exp(1.0 / _INV)
    f = (lambda x: math.log(x / lo) / math.log(hi / lo)) if log else (lambda x: (x - lo) / (hi - lo))
    return kl, tuple(f(min(hi, gamma ** k)) for k in range(kl, kh))


_INV = 1.0 / math.log((1 + 0.005) / (1 - 0.005))  # processors.digest's mapping


def _add_k(hist: LogHistogram, k: int, n: int) -> None:
    hist.pos[k] = hist.pos.get(k, 0) + n


def _add(hist: LogHistogram, x: float, n: int) -> None:
    if x > 1e-9:
        _add_k(hist, bucket_of(x), n)
    else:
        hist.zero += n


def explicit_hist(bounds: tuple, counts) -> LogHistogram:
    h = LogHistogram()
    lo = 0.0
    for i, c in enumerate(counts):
        if i < len(bounds):
            spread(h, lo, bounds[i], int(c))
            lo = bounds[i]
        elif bounds:  # +Inf: at the last finite bound
            _add(h, lo, int(c))
    return h


def exponential_hist(scale: int, zero: int, counts: dict, unit: float) -> LogHistogram:
    """counts: {bucket index: count}; bucket i covers (base**i, base**(i+1)], base = 2**(2**-scale)."""
    h = LogHistogram()
    h.zero += int(zero)
    base = 2.0 ** (2.0 ** -scale)
    for i, c in sorted(counts.items()):
        spread(h, base ** i * unit, base ** (i + 1) * unit, int(c), log=True)
    return h


class Series:
    """The points of one (service, cohort, release, role) waiting for the watermark, and each
    series' last cumulative point. Not a signal domain of its own: drain() turns points into the
    buckets of the requests or declared domains."""
    retention_ms = 86_400_000  # a series silent this long forgets its baseline

    def __init__(self, cfg=None):
        self.pending: list[dict] = []
        self.last: dict[str, list] = {}   # series -> [t, start, counts (list) or {index: count}, scale]
        self.origins: dict[str, int] = {}  # producer -> the first export time seen of it
        self.first_b: int | None = None
        self.fine: dict = {}

    # the Key protocol of the task: never emits, kept while it has points or baselines
    def merge(self, x: dict, cfg) -> None:
        self.pending.extend(x["p"])
        if self.first_b is None or x["b"] < self.first_b:
            self.first_b = x["b"]

    def advance(self, end, step, cfg) -> None:
        pass

    def active(self, end: int) -> bool:
        return False

    def due(self, end: int, step: int) -> bool:
        return False

    def rebuild(self, until, cfg) -> None:
        pass

    def has_future(self, end: int) -> bool:
        return bool(self.pending) or any(v[0] >= end - self.retention_ms for v in self.last.values())

    def evict(self, until: int, cfg) -> None:
        for s in [s for s, v in self.last.items() if v[0] < until - self.retention_ms]:
            del self.last[s]
        live = {v[4] for v in self.last.values()}
        for o in [o for o in self.origins if o not in live]:
            del self.origins[o]

    def drain(self, key: tuple, until: int, step: int) -> list[dict]:
        """Buckets (requests / declared domain) of every point counted before `until`
        (points.interval_bucket), in event-time order."""
        ready, rest = [], []
        for p in self.pending:
            (ready if interval_bucket(p["t"], step, p["kind"]) < until else rest).append(p)
        if not ready:
            return []
        ready.sort(key=_order)
        self.pending = rest
        service, cohort, release, role = key
        out, families = [], {}
        seen = set()
        for p in ready:
            if (p["s"], p["t"]) in seen:  # the same point twice (a producer's retry)
                continue
            seen.add((p["s"], p["t"]))
            if p["kind"] == "gauge":
                out.append(_declared(key, interval_bucket(p["t"], step, "gauge"), "gauge", n=1, t=p["t"], v=p["v"]))
                continue
            delta = self._delta(p)
            if delta is None:
                continue
            b = interval_bucket(p["t"], step, p["kind"])
            if p["kind"] == "bucket":  # one scrape's `le` series of a histogram make its buckets
                le = math.inf if p["le"] is None else p["le"]
                families.setdefault((b, p["fam"], p["t"]), []).append((le, delta[0]))
            elif p["kind"] == "counter":
                n = round(delta[0]) if role == "requests" else delta[0]
                if role == "requests":
                    out.append(_requests(key, b, n, n if (p["st"] or 0) >= 500 else 0, LogHistogram()))
                else:
                    out.append(_declared(key, b, "counter", n=1, sum=delta[0]))
            else:
                h = explicit_hist(tuple(p["bd"]), delta) if p["sc"] is None else \
                    exponential_hist(delta[2] if len(delta) > 2 else p["sc"], delta[0], delta[1], p.get("u", 1.0))
                n = sum(delta) if p["sc"] is None else delta[0] + sum(delta[1].values())  # placed or not
                if role == "requests":
                    out.append(_requests(key, b, n, n if (p["st"] or 0) >= 500 else 0, h))
                else:
                    out.append(_declared(key, b, "histogram", n=h.count, h=h.to_json()))
        for (b, _fam, _t), les in sorted(families.items()):
            h = _from_le(sorted(les))
            if role == "requests":  # latency only: the request counter counts the requests
                out.append(_requests(key, b, 0, 0, h))
            else:
                out.append(_declared(key, b, "histogram", n=h.count, h=h.to_json()))
        return out

    def _delta(self, p: dict):
        """The point's increment over the series' previous one; None while it is only a baseline."""
        vec = _vector(p)
        if not p["cum"]:
            return vec
        last = self.last.get(p["s"])
        origin = p["o"]
        self.last[p["s"]] = [p["t"], p["start"], vec, p["sc"], origin]
        seen = self.origins.setdefault(origin, p["t"])
        if last is None:
            new_since_seen = seen < p["t"]
            fresh = p["start"] is not None and p["t"] - p["start"] <= FIRST_START_MS
            return vec if new_since_seen or fresh else None
        if last[0] >= p["t"]:
            self.last[p["s"]] = last  # an older point than the baseline: nothing new
            return None
        prev, cur, coarser = last[2], vec, None
        if p["sc"] is not None and last[3] is not None and last[3] > p["sc"]:
            prev = [prev[0], _downscale(prev[1], last[3] - p["sc"])]  # the producer merged its buckets
        elif p["sc"] is not None and last[3] is not None and last[3] < p["sc"]:
            cur, coarser = [vec[0], _downscale(vec[1], p["sc"] - last[3])], last[3]  # finer: compare coarse
        elif p["sc"] is not None and last[3] != p["sc"]:
            prev = None
        restarted = prev is None or (p["start"] is not None and last[1] is not None and p["start"] != last[1])
        diff = None if restarted else _minus(cur, prev)
        if diff is None:
            return vec
        return diff if coarser is None else [*diff, coarser]  # a third item: the scale the delta is at

    def to_json(self) -> dict:
        return {"first_b": self.first_b, "pending": sorted(self.pending, key=_order),
                "last": dict(sorted(self.last.items())), "origins": dict(sorted(self.origins.items()))}

    @classmethod
    def from_json(cls, j: dict, cfg=None) -> "Series":
        s = cls()
        s.first_b = j.get("first_b")
        s.pending = list(j["pending"])
        s.last = {k: [v[0], v[1], _unjson(v[2]), v[3], v[4]] for k, v in j["last"].items()}
        s.origins = dict(j.get("origins") or {})
        return s


def _order(p: dict):
    return p["t"], p["s"]


def _vector(p: dict):
    if p["kind"] in ("counter", "bucket"):
        return [p["v"]]
    if p["sc"] is None:
        return list(p["c"])
    return [p["z"], {p["off"] + i: c for i, c in enumerate(p["c"]) if c}]


def _unjson(v):
    """A saved vector: exponential buckets come back from JSON with string keys."""
    if len(v) == 2 and isinstance(v[1], dict):
        return [v[0], {int(k): c for k, c in v[1].items()}]
    return v


def _minus(cur, prev):
    """cur - prev, or None when anything went down (a reset)."""
    if isinstance(cur[-1], dict) if cur else False:
        zero = cur[0] - prev[0]
        out = {i: c - prev[1].get(i, 0) for i, c in cur[1].items()}
        if zero < 0 or any(c < 0 for c in out.values()) or set(prev[1]) - set(cur[1]):
            return None
        return [zero, {i: c for i, c in out.items() if c}]
    if len(cur) != len(prev):
        return None
    out = [a - b for a, b in zip(cur, prev)]
    return None if any(d < 0 for d in out) else out


def _downscale(counts: dict, by: int) -> dict:
    out: dict = {}
    for i, c in counts.items():
        out[i >> by] = out.get(i >> by, 0) + c
    return out


def _from_le(les: list) -> LogHistogram:
    """Prometheus classic buckets (le, cumulative delta) -> per-bucket counts -> a log histogram."""
    bounds = [le for le, _ in les if math.isfinite(le)]
    counts, prev = [], 0
    for _le, c in les:
        counts.append(max(0, round(c - prev)))
        prev = c
    if len(counts) == len(bounds):  # no +Inf series
        counts.append(0)
    return explicit_hist(tuple(bounds), counts)


def _requests(key, b, n, e, h: LogHistogram) -> dict:
    return {"d": "requests", "k": [key[0], key[1], key[2]], "b": b, "n": int(n), "e": int(e), "h": h.to_json()}


def _declared(key, b, kind, **fields) -> dict:
    return {"d": "declared", "k": [key[0], key[1], key[2], key[3]], "b": b, "kind": kind, **fields}
