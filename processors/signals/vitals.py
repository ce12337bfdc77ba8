"""Core Web Vitals per (scope, route, cohort, metric, release): p75 and the delta against the baseline.

rum_{inp,lcp,fcp,ttfb}_p75_ms, rum_cls_p75 and *_delta (fraction) with extras baseline,
baseline_samples, baseline_source ("cohort:<name>" | "env"), ci_low, ci_high (processors.rum).
"""
from __future__ import annotations

from gatewatch.processors import rum as rumlib
from gatewatch.processors.digest import LogHistogram, Ranked
from gatewatch.processors.signals.common import (
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


class Rum(Key):
    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.retention_ms = cfg.rum_window_ms + cfg.idle_retention_ms
        self.win = LogHistogram()
        self._fine_json: dict[int, dict] = {}  # snapshot forms of unchanged buckets (hists_json)
        self._win_views = WindowViews()  # win's ranked view and JSON form

    def merge(self, x: dict, cfg) -> None:
        b = x["b"]
        self._seen(b)
        merge_hist(self.fine, self._fine_json, b, x["h"])

    def advance(self, end, step, cfg):
        super().advance(end, step)
        self._win_views.moved(slide(self.win, self.fine, end, step, cfg.rum_window_ms))

    def rebuild(self, until, cfg):
        self.win = sum_hists(self.fine, until - cfg.rum_window_ms, until)
        self._win_views.moved()

    def window(self) -> Ranked:
        """The window's ranked view, built once per step."""
        return self._win_views.ranked(self.win)

    def evict(self, until, cfg):
        drop(self.fine, until - cfg.rum_window_ms - cfg.step_ms)

    def to_json(self):
        return {**self._base_json(), "fine": hists_json(self.fine, self._fine_json),
                "win": self._win_views.json(self.win)}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = {b: LogHistogram.from_json(h) for b, h in j["fine"]}
        k.win = LogHistogram.from_json(j["win"])
        return k


def rum_signals(keys: dict, active: list, end: int, cfg: SignalConfig) -> list[dict]:
    """p75 and delta signals for the active RUM keys (scope, route, cohort, metric, release) at end;
    the baseline is a baseline cohort's key, which carries no release."""
    ranked = {k: keys[k].window() for k in active}
    out = []
    for k in active:
        scope, route, cohort, metric, release = k
        name = rumlib.METRIC_SIGNAL[metric]
        r = ranked[k]
        out.append(signal(name, scope, cohort, route, cfg.rum_window_ms, r.quantile(rumlib.P),
                          r.n, end, release))
        base_r, base_v, source = None, None, None
        for bc in cfg.baseline_cohorts:
            if bc == cohort:
                break
            br = ranked.get((scope, route, bc, metric, ""))
            if br is not None and br.n:
                base_r, base_v, source = br, br.quantile(rumlib.P), f"cohort:{bc}"
                break
        if base_r is None:
            env = cfg.rum_baselines.get(route, {}).get(rumlib.ENV_BASELINE_KEY[metric])
            if env is not None:
                base_v, source = float(env), "env"
        delta = lo = hi = None
        if base_v is not None and r.n:
            seed = rumlib.seed_for(cfg.policy_hash, name + "_delta", scope, route, cohort,
                                   cfg.rum_window_ms, end, *((release,) if release else ()))
            delta, lo, hi = rumlib.delta_ci(r, base_r, base_v, seed, cfg.bootstrap_resamples)
        out.append(signal(name + "_delta", scope, cohort, route, cfg.rum_window_ms, delta, r.n,
                          end, release, baseline=base_v, baseline_samples=base_r.n if base_r else None,
                           baseline_source=source, ci_low=lo, ci_high=hi))
    return out


