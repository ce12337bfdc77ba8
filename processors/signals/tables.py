"""Debezium tables per (scope, table): cdc_lag_p95_s (snapshot reads excluded), cdc_silence_s (E -
the table's last change event; reported until the table has had no row event for cdc_retention)
and schema_drift (incompatible shapes against the table's reference, processors.cdc)."""
from __future__ import annotations

from gatewatch.processors.cdc import incompatible, normalize
from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.signals.common import (
    DEFAULT_COHORT,
    Key,
    WindowViews,
    drop,
    hists_json,
    merge_hist,
    signal,
    slide,
    sum_hists,
)
from gatewatch.processors.windows import SignalConfig


class Cdc(Key):
    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.retention_ms = cfg.cdc_retention_ms
        self.lag: dict[int, LogHistogram] = {}
        self.lag_win = LogHistogram()
        self._lag_json: dict[int, dict] = {}  # snapshot forms of unchanged lag buckets (hists_json)
        self._lag_views = WindowViews()  # lag_win's JSON form
        self.last_change: int | None = None   # latest change event before the emission point
        self.reference: dict | None = None   # fixed when the table first reports (fix_reference)
        self.candidate: list | None = None    # [event ms, shape id] of its earliest shape so far

    def offer_shape(self, ts: int, sid: str) -> None:
        """A shape first seen at event time ts: the reference is the earliest one, whichever
        partition or partial it came in (ties: the smaller shape id)."""
        if self.reference is None and (self.candidate is None or [ts, sid] < self.candidate):
            self.candidate = [ts, sid]

    def fix_reference(self, registered: dict | None, shapes: dict) -> None:
        """Before the first signals: the registered shape (cdc.schemas), else the earliest seen.
        All data before the first step is in by then, so the earliest shape is known."""
        if self.reference is None:
            if registered:
                self.reference = normalize(registered)
            elif self.candidate is not None:
                self.reference = dict(map(tuple, shapes[self.candidate[1]]))

    def merge(self, x: dict, cfg) -> None:
        b = x["b"]
        self._seen(b)
        f = self.fine.get(b)
        if f is None:
            f = self.fine[b] = [0, 0, None, {}]
        f[0] += x["n"]
        f[1] += x["rows"]
        if x["lc"] is not None and (f[2] is None or x["lc"] > f[2]):
            f[2] = x["lc"]
        for sid, c in x["sh"].items():
            f[3][sid] = f[3].get(sid, 0) + c
        merge_hist(self.lag, self._lag_json, b, x["h"])

    def advance(self, end, step, cfg):
        super().advance(end, step)
        f = self.fine.get(end - step)
        if f is not None and f[2] is not None and (self.last_change is None or f[2] > self.last_change):
            self.last_change = f[2]
        self._lag_views.moved(slide(self.lag_win, self.lag, end, step, cfg.cdc_window_ms))

    def rebuild(self, until, cfg):
        self.lag_win = sum_hists(self.lag, until - cfg.cdc_window_ms, until)
        self._lag_views.moved()

    def signals(self, key, end, cfg: SignalConfig, shapes: dict, compat: dict) -> list[dict]:
        scope, table = key
        w = cfg.cdc_window_ms
        changes = rows = 0
        bad = set()
        for b in range(end - w, end, cfg.step_ms):
            f = self.fine.get(b)
            if f is None:
                continue
            changes += f[0]
            rows += f[1]
            for sid in f[3]:
                ok = compat.get(sid)
                if ok is None and self.reference is not None:
                    ok = compat[sid] = not incompatible(self.reference, dict(map(tuple, shapes[sid])))
                if ok is False:
                    bad.add(sid)
        (p95,), lag_n = self.lag_win.quantiles((0.95,))
        silence = None if self.last_change is None else (end - self.last_change) / 1000
        return [
            signal("cdc_lag_p95_s", scope, DEFAULT_COHORT, table, w,
                    None if p95 is None else p95 / 1000, lag_n, end),
            signal("cdc_silence_s", scope, DEFAULT_COHORT, table, w, silence, changes, end),
            signal("schema_drift", scope, DEFAULT_COHORT, table, w, len(bad) if rows else None,
                    rows, end),
        ]

    def evict(self, until, cfg):
        drop(self.fine, until - cfg.cdc_window_ms - cfg.step_ms)
        drop(self.lag, until - cfg.cdc_window_ms - cfg.step_ms)

    def to_json(self):
        return {**self._base_json(), "fine": [[b, [f[0], f[1], f[2], dict(sorted(f[3].items()))]]
                                              for b, f in sorted(self.fine.items())],
                "lag": hists_json(self.lag, self._lag_json), "lag_win": self._lag_views.json(self.lag_win),
                "last_change": self.last_change,
                "reference": self.reference, "candidate": self.candidate}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = {b: [f[0], f[1], f[2], dict(f[3])] for b, f in j["fine"]}
        k.lag = {b: LogHistogram.from_json(h) for b, h in j["lag"]}
        k.lag_win = LogHistogram.from_json(j["lag_win"])
        k.last_change = j["last_change"]
        k.reference = j["reference"]
        k.candidate = j.get("candidate")
        return k


