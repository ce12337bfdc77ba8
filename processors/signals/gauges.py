"""Gauges per (service, cohort, name, release): the last value by event time in the gauge window."""
from __future__ import annotations

from gatewatch.processors.signals.common import Key, drop, pairs, signal
from gatewatch.processors.windows import SignalConfig, later_sample


class Gauges(Key):
    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.retention_ms = cfg.gauge_window_ms + cfg.idle_retention_ms

    def merge(self, x: dict, cfg) -> None:
        b = x["b"]
        self._seen(b)
        f = self.fine.get(b)
        if f is None:
            self.fine[b] = [x["n"], x["t"], x["v"]]
        else:
            f[0] += x["n"]
            if later_sample(x["t"], x["v"], f[1], f[2]):
                f[1], f[2] = x["t"], x["v"]

    def advance(self, end, step, cfg):
        super().advance(end, step)

    def signals(self, key, end, cfg: SignalConfig) -> list[dict]:
        service, cohort, name, release = key
        n, value = 0, None
        for b in range(end - cfg.step_ms, end - cfg.gauge_window_ms - 1, -cfg.step_ms):
            f = self.fine.get(b)
            if f is not None:
                n += f[0]
                if value is None:
                    value = f[2]
        return [signal(name, service, cohort, "", cfg.gauge_window_ms, value, n, end, release)]

    def evict(self, until, cfg):
        drop(self.fine, until - cfg.gauge_window_ms - cfg.step_ms)

    def to_json(self):
        return {**self._base_json(), "fine": pairs(self.fine)}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = {b: list(v) for b, v in j["fine"]}
        return k


