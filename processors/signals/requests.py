"""Request SLIs per (service, cohort, release): burn rates over 5m..3d, err5xx_rate, request_rate, latency p95/p99,
and the error budget consumed / remaining over the SLO's own window (slo.availability.window, 28d).

Error = status >= 500; burn = error ratio / (1 - target/100), target = slo.availability.target
(99.9, or slo.availability.by_service). burn_rate_{5m..6h} at every step from fine buckets (plus
coarse ones in the middle); burn_rate_{1d,3d} at 5-minute aligned ends, exact unions of coarse
buckets (processors.windows). The error budget counts hourly buckets: at 5-minute aligned ends E,
errors / ((1 - target) x requests) over the whole hours of the SLO window before E's hour and E's
hour so far from coarse buckets, so the window is the SLO window plus at most 55 minutes, with
state bounded by its hours (672 buckets for 28 days), and never depends on when data arrived.
"""
from __future__ import annotations

import functools
import math

from gatewatch.processors.digest import LogHistogram, Ranked
from gatewatch.processors.signals.common import (
    Key,
    WindowViews,
    dense,
    drop,
    hists_json,
    merge_hist,
    signal,
    slide,
    sum_hists,
    undense,
)
from gatewatch.processors.windows import (
    BURN_WINDOWS_MS,
    COARSE_MS,
    COARSE_WINDOWS,
    DAY,
    FINE_MAX_MS,
    HOUR,
    SignalConfig,
    floor_to,
)


class Requests(Key):
    retention_ms = 3 * DAY

    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self._step = cfg.step_ms
        self.coarse: dict[int, list] = {}
        self.hourly: dict[int, list] = {}
        self.lat: dict[int, LogHistogram] = {}
        self.lat_win = LogHistogram()
        self._sums = (None, {})  # (end, window_sums at end): signals() computes, the deltas reuse
        self._lat_json: dict[int, dict] = {}  # snapshot forms of unchanged lat buckets (hists_json)
        self._lat_views = WindowViews()  # lat_win's ranked view and JSON form

    def merge(self, x: dict, cfg: SignalConfig) -> None:
        b = x["b"]
        self._seen(b)
        f = self.fine.setdefault(b, [0, 0])
        f[0] += x["n"]
        f[1] += x["e"]
        c = self.coarse.setdefault(floor_to(b, COARSE_MS), [0, 0])
        c[0] += x["n"]
        c[1] += x["e"]
        hr = self.hourly.setdefault(floor_to(b, HOUR), [0, 0])
        hr[0] += x["n"]
        hr[1] += x["e"]
        merge_hist(self.lat, self._lat_json, b, x["h"])

    def advance(self, end, step, cfg):
        super().advance(end, step)
        self._lat_views.moved(slide(self.lat_win, self.lat, end, step, cfg.latency_window_ms))

    def rebuild(self, until, cfg):
        self.lat_win = sum_hists(self.lat, until - cfg.latency_window_ms, until)
        self._lat_views.moved()

    def latency_window(self) -> Ranked:
        """The ranked view of the latency window, shared by the key's p95/p99 and by every canary
        delta that uses the key (as cohort or baseline) in the same step; Ranked.quantile gives
        the same floats as LogHistogram.quantiles (tests/signals/test_digest.py)."""
        return self._lat_views.ranked(self.lat_win)

    def rate_sums(self, end: int, cfg: SignalConfig) -> tuple[int, int]:
        """(count, errors) over the rate window before end; signals() already summed it this step."""
        at, sums = self._sums
        w = cfg.rate_window_ms
        if at != end or w not in sums:
            sums = self.window_sums(end, [w], cfg.step_ms)
        return sums[w]

    def window_sums(self, end: int, widths: list[int], step: int) -> dict[int, tuple[int, int]]:
        """(count, errors) over [end - w, end) for each w (multiples of COARSE_MS, ascending):
        the fine tail [c_hi, end) and a backward walk over coarse buckets are shared by all
        windows; each adds its own fine head (the part of its first coarse bucket inside it).
        A window with no fine head (end aligned) is an exact union of coarse buckets."""
        fine, coarse = self.fine, self.coarse
        r = end % COARSE_MS
        c_hi = end - r
        tn = te = 0
        for b in range(c_hi, end, step):
            f = fine.get(b)
            if f is not None:
                tn += f[0]
                te += f[1]
        out = {}
        for w in widths:
            if w % COARSE_MS:  # a window shorter than / not made of coarse buckets: fine only
                n = e = 0
                for b in range(end - w, end, step):
                    f = fine.get(b)
                    if f is not None:
                        n += f[0]
                        e += f[1]
                out[w] = (n, e)
        cn = ce = 0           # coarse sum over [c_hi - j*C, c_hi)
        j = 0
        for w in widths:
            if w % COARSE_MS:
                continue
            full = w // COARSE_MS if r == 0 else w // COARSE_MS - 1
            while j < full:
                j += 1
                c = coarse.get(c_hi - j * COARSE_MS)
                if c is not None:
                    cn += c[0]
                    ce += c[1]
            hn = he = 0
            if r:
                lo = end - w
                for b in range(lo, c_hi - full * COARSE_MS, step):
                    f = fine.get(b)
                    if f is not None:
                        hn += f[0]
                        he += f[1]
            out[w] = (tn + cn + hn, te + ce + he)
        return out

    def signals(self, key, end, cfg: SignalConfig) -> list[dict]:
        service, cohort, release = key
        step = cfg.step_ms
        budget = 1.0 - cfg.target_for(service) / 100.0
        out = []
        aligned = end % COARSE_MS == 0
        burns, widths = _burn_plan(aligned, cfg.rate_window_ms)
        sums = self.window_sums(end, widths, step)
        self._sums = (end, sums)
        for name, width in burns:
            n, e = sums[width]
            burn = (e / n) / budget if n and budget > 0 else None
            out.append(signal(name, service, cohort, "", width, burn, n, end, release))
        if aligned:
            out.extend(self._budget(key, end, cfg, budget))
        n, e = sums[cfg.rate_window_ms]
        out.append(signal("err5xx_rate", service, cohort, "", cfg.rate_window_ms,
                           e / n if n else None, n, end, release))
        out.append(signal("request_rate", service, cohort, "", cfg.rate_window_ms,
                           n / (cfg.rate_window_ms / 1000) if n else None, n, end, release))
        r = self.latency_window()
        p95, p99, n = r.quantile(0.95), r.quantile(0.99), r.n
        for value, name in ((p95, "latency_p95_ms"), (p99, "latency_p99_ms")):
            out.append(signal(name, service, cohort, "", cfg.latency_window_ms, value, n, end, release))
        return out

    def _budget(self, key, end: int, cfg: SignalConfig, budget: float) -> list[dict]:
        service, cohort, release = key
        hour = floor_to(end, HOUR)
        n = e = 0
        for b in range(hour - cfg.budget_window_ms, hour, HOUR):
            hr = self.hourly.get(b)
            if hr is not None:
                n += hr[0]
                e += hr[1]
        for b in range(hour, end, COARSE_MS):
            c = self.coarse.get(b)
            if c is not None:
                n += c[0]
                e += c[1]
        consumed = (e / n) / budget if n and budget > 0 else None
        width = cfg.budget_window_ms
        return [signal("error_budget_consumed", service, cohort, "", width, consumed, n, end, release),
                signal("error_budget_remaining", service, cohort, "", width,
                       None if consumed is None else 1.0 - consumed, n, end, release)]

    def evict(self, until, cfg):
        drop(self.fine, until - FINE_MAX_MS - cfg.step_ms)
        drop(self.lat, until - cfg.latency_window_ms - cfg.step_ms)
        drop(self.coarse, until - 3 * DAY - COARSE_MS)
        drop(self.hourly, until - cfg.budget_window_ms - 2 * HOUR)

    def to_json(self):
        return {**self._base_json(), "fine": dense(self.fine, self._step),
                "coarse": dense(self.coarse, COARSE_MS), "hourly": dense(self.hourly, HOUR),
                "lat": hists_json(self.lat, self._lat_json), "lat_win": self._lat_views.json(self.lat_win)}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = undense(j["fine"], cfg.step_ms)
        k.coarse = undense(j["coarse"], COARSE_MS)
        k.hourly = undense(j.get("hourly") or {"b0": None, "n": [], "e": []}, HOUR)  # older snapshots: none
        k.lat = {b: LogHistogram.from_json(h) for b, h in j["lat"]}
        k.lat_win = LogHistogram.from_json(j["lat_win"])
        return k


@functools.lru_cache(maxsize=8)
def _burn_plan(aligned: bool, rate_window_ms: int) -> tuple[tuple, tuple[int, ...]]:
    """((signal name, width) of the burn rates evaluated at an (un)aligned end, in
    BURN_WINDOWS_MS order; the ascending widths window_sums needs, the rate window's included)."""
    burns = tuple((f"burn_rate_{label}", w) for label, w in BURN_WINDOWS_MS.items()
                  if aligned or label not in COARSE_WINDOWS)
    return burns, tuple(sorted({w for _, w in burns} | {rate_window_ms}))


def request_deltas(keys: dict, active: list, end: int, cfg: SignalConfig) -> list[dict]:
    """Canary (any non-baseline cohort) vs baseline, as Kayenta judges every metric:
    latency_p95_ms_delta = p95 / baseline p95 - 1 with a distribution-free interval: each
    cohort's p95 between the order statistics that bound it at 97.5 % (binomial ranks), the
    ratio's interval from their extremes, so >= 95 % jointly (conservative; no resampling, which
    cost more than the rest of the step); err5xx_rate_delta = error ratio minus the baseline's,
    with a normal-approximation interval. *_delta_lo is the interval's lower bound, so a rule can
    demand that the whole interval shows the regression. Nothing random: same input, same bytes."""
    out = []
    for k in active:
        service, cohort, release = k
        if cohort in cfg.baseline_cohorts:
            continue
        base_key = next((b for b in ((service, bc, "") for bc in cfg.baseline_cohorts) if b in keys
                         and b in active), None)
        if base_key is None:
            continue
        cur, base = keys[k], keys[base_key]
        ref = {"baseline_source": f"cohort:{base_key[1]}"}
        r, br = cur.latency_window(), base.latency_window()
        delta = lo = hi = None
        if r.n and br.n and br.quantile(0.95):
            delta = r.quantile(0.95) / br.quantile(0.95) - 1.0
            (c_lo, c_hi), (b_lo, b_hi) = _p95_bounds(r), _p95_bounds(br)
            lo, hi = (c_lo / b_hi - 1.0 if b_hi else None), (c_hi / b_lo - 1.0 if b_lo else None)
        lat = dict(ref, baseline=br.quantile(0.95) if br.n else None, baseline_samples=br.n, ci_low=lo, ci_high=hi)
        out.append(signal("latency_p95_ms_delta", service, cohort, "", cfg.latency_window_ms, delta, r.n, end,
                          release, **lat))
        out.append(signal("latency_p95_ms_delta_lo", service, cohort, "", cfg.latency_window_ms, lo, r.n, end,
                          release, **lat))
        (n, e), (bn, be) = cur.rate_sums(end, cfg), base.rate_sums(end, cfg)
        d = elo = ehi = None
        if n and bn:
            p, bp = e / n, be / bn
            half = 1.96 * math.sqrt(p * (1 - p) / n + bp * (1 - bp) / bn)
            d, elo, ehi = p - bp, p - bp - half, p - bp + half
        err = dict(ref, baseline=be / bn if bn else None, baseline_samples=bn, ci_low=elo, ci_high=ehi)
        out.append(signal("err5xx_rate_delta", service, cohort, "", cfg.rate_window_ms, d, n, end, release, **err))
        out.append(signal("err5xx_rate_delta_lo", service, cohort, "", cfg.rate_window_ms, elo, n, end, release,
                          **err))
    return out


def _p95_bounds(r) -> tuple[float, float]:
    """The order statistics that bound the p95 of r's n values at 97.5 % confidence (normal
    approximation of the binomial rank: n q -/+ 2.24 sqrt(n q (1 - q)))."""
    n, q = r.n, 0.95
    half = 2.24 * math.sqrt(n * q * (1 - q))
    lo = min(n - 1, max(0, math.floor(n * q - half) - 1))
    hi = min(n - 1, max(0, math.ceil(n * q + half) - 1))
    return r.at_rank(lo), r.at_rank(hi)
