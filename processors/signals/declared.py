"""Declared signals per (service, cohort, release, name): the policy's `signals.declared`
(processors.declared) over the buckets processors.signals.series makes of their metric's points.

Per step bucket: a gauge keeps [points, last t, last value, min, max, sum]; a counter [points,
increase]; a histogram [points, LogHistogram]. The signal at a step end E aggregates the buckets of
[E - window, E): gauge last/max/min/mean, counter rate (increase per second of the window) or
increase, histogram quantile. samples = the points in the window (a histogram's observations);
value null when there are none.
"""
from __future__ import annotations

from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.signals.common import Key, drop, signal
from gatewatch.processors.windows import FINE_MAX_MS, later_sample

_Q = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}


class Declared(Key):
    def __init__(self, cfg):
        super().__init__()
        self.retention_ms = FINE_MAX_MS + cfg.idle_retention_ms  # trimmed per signal in signals()

    def merge(self, x: dict, cfg) -> None:
        b = x["b"]
        self._seen(b)
        f = self.fine.get(b)
        kind = x["kind"]
        if kind == "gauge":
            v = x["v"]
            if f is None:
                self.fine[b] = [x["n"], x["t"], v, v, v, v]
                return
            f[0] += x["n"]
            if later_sample(x["t"], v, f[1], f[2]):
                f[1], f[2] = x["t"], v
            f[3], f[4], f[5] = min(f[3], v), max(f[4], v), f[5] + v
        elif kind == "counter":
            if f is None:
                self.fine[b] = [x["n"], x["sum"]]
            else:
                f[0] += x["n"]
                f[1] += x["sum"]
        else:
            h = LogHistogram.of(x["h"])
            if f is None:
                self.fine[b] = [x["n"], h]
            else:
                f[0] += x["n"]
                f[1].merge(h)

    def advance(self, end, step, cfg):
        super().advance(end, step)

    def signals(self, key, end, cfg) -> list[dict]:
        service, cohort, release, name = key
        d = cfg.declared.get(name)
        if d is None:  # no longer declared (a reloaded policy): nothing to say
            return []
        if self.last_b is None or self.last_b < end - d.window_ms - cfg.idle_retention_ms:
            return []
        step = cfg.step_ms
        got = [self.fine[b] for b in range(end - step, end - d.window_ms - 1, -step) if b in self.fine]
        n = sum(f[0] for f in got)
        value = None
        if n:
            value = _aggregate(d, got)
        return [signal(name, service, cohort, "", d.window_ms, value, n, end, release)]

    def evict(self, until, cfg):
        drop(self.fine, until - FINE_MAX_MS - cfg.step_ms)

    def to_json(self):
        return {**self._base_json(), "fine": [[b, [f[0], f[1].to_json()] if isinstance(f[1], LogHistogram) else f]
                                              for b, f in sorted(self.fine.items())]}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = {b: ([f[0], LogHistogram.from_json(f[1])] if isinstance(f[1], dict) else list(f)) for b, f in j["fine"]}
        return k


def _aggregate(d, got: list) -> float | None:
    """got: the window's buckets, newest first."""
    if d.kind == "gauge":
        if d.aggregation == "last":
            best = got[0]
            for f in got[1:]:
                if later_sample(f[1], f[2], best[1], best[2]):
                    best = f
            return best[2]
        if d.aggregation == "max":
            return max(f[4] for f in got)
        if d.aggregation == "min":
            return min(f[3] for f in got)
        return sum(f[5] for f in got) / sum(f[0] for f in got)
    if d.kind == "counter":
        inc = sum(f[1] for f in got)
        return inc if d.aggregation == "increase" else inc / (d.window_ms / 1000)
    h = LogHistogram()
    for f in got:
        h.merge(f[1])
    return h.quantile(_Q[d.aggregation])
