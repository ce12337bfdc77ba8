"""Signal stage: merge ingest partials per source partition and emit windowed signals.

`PartitionSignals(topic, partition, config).apply(partial)` merges one partial (ignoring any
whose offsets were already applied, so re-delivery never double-counts), advances the
partition's watermark and returns the signal batches for every step end E the watermark passed.
Time model and window layout: gatewatch.processors.windows.

Signal record: {"name","scope","cohort","subject","window_s","value","samples","ts"} (+ extras),
ts = window end (RFC 3339 UTC, ms, Z). value is null when the window holds no samples (so the
policy engine sees progress and can demand a minimum count), except cdc_silence_s.

Scope / cohort / subject conventions:
  requests  scope = service, cohort = sample cohort (default "stable"), subject = ""
            burn_rate_{5m,30m,1h,2h,4h,6h} every step; burn_rate_{1d,3d} at 5-min aligned ends;
            err5xx_rate, request_rate (req/s) over the rate window (5m); latency_p95_ms and
            latency_p99_ms over slo.latency_p95_ms.window (5m). Error = status >= 500;
            burn = error ratio / (1 - target/100), target = slo.availability.target (99.9).
  gauges    scope = service, cohort, subject = "", name = the gauge name (invariant,
            obs_uptime, ...): the last value (by event time) in the gauge window (5m).
  rum       scope = the sample's service/app (default "web"), cohort, subject = route:
            rum_{inp,lcp,fcp,ttfb}_p75_ms, rum_cls_p75 and *_delta (fraction) with extras
            baseline, baseline_samples, baseline_source ("cohort:<name>" | "env"), ci_low, ci_high
            (gatewatch.processors.rum).
  cdc       scope = the record's scope or db.table, cohort = "stable", subject = db.table:
            cdc_lag_p95_s (snapshot reads excluded), cdc_silence_s (E - the table's last change
            event; samples = change events in the window; reported until the table has had no
            row event for cdc_retention, 7 d), schema_drift (gatewatch.processors.cdc).
Batches: one SignalBatch (a list that also carries .domain and .scope) per (E, domain, scope),
ordered by E, then domain, then scope; signals inside a batch ordered by (name, cohort, subject,
window_s). Use batch_domain(batch) for the domain: gauges may carry any name.

Keys are evaluated per source partition: a key's records must all live in one partition, which
the topic keys guarantee (metrics by service, rum by route, cdc by db.table).

Exactly-once over at-least-once delivery: apply() ignores a partial whose last_offset is at or
below the last applied one (`duplicates`). A partial that overlaps the applied range (on tansu
an aborted transaction's partial is visible, and the restarted ingest worker re-cuts the range
from its committed offset) is reconciled exactly when it starts where a kept piece starts: the
last MAX_PIECES applied ranges are kept (gatewatch.processors.ledger) and only partial - pieces is
applied (`reconciled`); a shorter re-cut splits a piece so its successor reconciles too.
Anything else is refused and counted (`conflicts`) rather than double-counted.
"""
from __future__ import annotations

from gatewatch.processors import ledger
from gatewatch.processors import rum as rumlib
from gatewatch.processors.cdc import incompatible, normalize
from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.partials import PartitionAggregator
from gatewatch.processors.timefmt import format_ts
from gatewatch.processors.windows import (
    BURN_WINDOWS_MS,
    COARSE_MS,
    COARSE_WINDOWS,
    DAY,
    FINE_MAX_MS,
    SignalConfig,
    floor_to,
)

__all__ = ["SignalConfig", "PartitionSignals", "SignalBatch", "batch_domain", "run_pipeline"]

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


def _signal(name, scope, cohort, subject, window_ms, value, samples, end, **extra) -> dict:
    s = {"name": name, "scope": scope, "cohort": cohort, "subject": subject,
         "window_s": window_ms // 1000, "value": _r(value), "samples": int(samples),
         "ts": _ts(end)}
    for k, v in extra.items():
        s[k] = _r(v) if isinstance(v, float) else v
    return s


class _Key:
    """Common per-key state: fine buckets, first bucket, last bucket with data before E."""
    retention_ms = 0  # keep emitting while there is data in [E - retention, E)

    def __init__(self):
        self.fine: dict[int, object] = {}
        self.first_b: int | None = None
        self.last_b: int | None = None

    def _seen(self, b: int, emitted_until: int | None) -> bool:
        """Register bucket b; True when b is behind the emission point (catch-up into windows)."""
        if self.first_b is None or b < self.first_b:
            self.first_b = b
        if emitted_until is not None and b < emitted_until:
            if self.last_b is None or b > self.last_b:
                self.last_b = b
            return True
        return False

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


def _slide(win: LogHistogram, hists: dict, end: int, step: int, width: int) -> None:
    """Move a running window histogram from [end-step-width, end-step) to [end-width, end)."""
    h = hists.get(end - step)
    if h is not None:
        win.merge(h)
    h = hists.get(end - step - width)
    if h is not None:
        win.subtract(h)


def _sum_hists(hists: dict, lo: int, hi: int) -> LogHistogram:
    out = LogHistogram()
    for b in sorted(b for b in hists if lo <= b < hi):
        out.merge(hists[b])
    return out


class _Requests(_Key):
    retention_ms = 3 * DAY

    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self._step = cfg.step_ms
        self.coarse: dict[int, list] = {}
        self.lat: dict[int, LogHistogram] = {}
        self.lat_win = LogHistogram()

    def merge(self, x: dict, cfg: SignalConfig, emitted_until):
        b = x["b"]
        behind = self._seen(b, emitted_until)
        f = self.fine.setdefault(b, [0, 0])
        f[0] += x["n"]
        f[1] += x["e"]
        c = self.coarse.setdefault(floor_to(b, COARSE_MS), [0, 0])
        c[0] += x["n"]
        c[1] += x["e"]
        h = LogHistogram.from_json(x["h"])
        if b in self.lat:
            self.lat[b].merge(h)
        else:
            self.lat[b] = h.copy()
        if behind and b >= emitted_until - cfg.latency_window_ms:
            self.lat_win.merge(h)

    def advance(self, end, step, cfg):
        super().advance(end, step)
        _slide(self.lat_win, self.lat, end, step, cfg.latency_window_ms)

    def rebuild(self, until, cfg):
        self.lat_win = _sum_hists(self.lat, until - cfg.latency_window_ms, until)

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
        service, cohort = key
        step = cfg.step_ms
        budget = 1.0 - cfg.target_for(service) / 100.0
        out = []
        aligned = end % COARSE_MS == 0
        widths = sorted({w for label, w in BURN_WINDOWS_MS.items()
                         if aligned or label not in COARSE_WINDOWS} | {cfg.rate_window_ms})
        sums = self.window_sums(end, widths, step)
        for label, width in BURN_WINDOWS_MS.items():
            if label in COARSE_WINDOWS and not aligned:
                continue
            n, e = sums[width]
            burn = (e / n) / budget if n and budget > 0 else None
            out.append(_signal(f"burn_rate_{label}", service, cohort, "", width, burn, n, end))
        n, e = sums[cfg.rate_window_ms]
        out.append(_signal("err5xx_rate", service, cohort, "", cfg.rate_window_ms,
                           e / n if n else None, n, end))
        out.append(_signal("request_rate", service, cohort, "", cfg.rate_window_ms,
                           n / (cfg.rate_window_ms / 1000) if n else None, n, end))
        (p95, p99), n = self.lat_win.quantiles((0.95, 0.99))
        for value, name in ((p95, "latency_p95_ms"), (p99, "latency_p99_ms")):
            out.append(_signal(name, service, cohort, "", cfg.latency_window_ms, value, n, end))
        return out

    def evict(self, until, cfg):
        _drop(self.fine, until - FINE_MAX_MS - cfg.step_ms)
        _drop(self.lat, until - cfg.latency_window_ms - cfg.step_ms)
        _drop(self.coarse, until - 3 * DAY - COARSE_MS)

    def to_json(self):
        return {**self._base_json(), "fine": _dense(self.fine, self._step),
                "coarse": _dense(self.coarse, COARSE_MS),
                "lat": [[b, h.to_json()] for b, h in sorted(self.lat.items())],
                "lat_win": self.lat_win.to_json()}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = _undense(j["fine"], cfg.step_ms)
        k.coarse = _undense(j["coarse"], COARSE_MS)
        k.lat = {b: LogHistogram.from_json(h) for b, h in j["lat"]}
        k.lat_win = LogHistogram.from_json(j["lat_win"])
        return k


class _Gauges(_Key):
    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.retention_ms = cfg.gauge_window_ms + cfg.idle_retention_ms

    def merge(self, x: dict, cfg, emitted_until):
        b = x["b"]
        self._seen(b, emitted_until)
        f = self.fine.get(b)
        if f is None:
            self.fine[b] = [x["n"], x["t"], x["v"]]
        else:
            f[0] += x["n"]
            if x["t"] >= f[1]:  # later partial = later offsets: a tie goes to it
                f[1], f[2] = x["t"], x["v"]

    def advance(self, end, step, cfg):
        super().advance(end, step)

    def signals(self, key, end, cfg: SignalConfig) -> list[dict]:
        service, cohort, name = key
        n, value = 0, None
        for b in range(end - cfg.step_ms, end - cfg.gauge_window_ms - 1, -cfg.step_ms):
            f = self.fine.get(b)
            if f is not None:
                n += f[0]
                if value is None:
                    value = f[2]
        return [_signal(name, service, cohort, "", cfg.gauge_window_ms, value, n, end)]

    def evict(self, until, cfg):
        _drop(self.fine, until - cfg.gauge_window_ms - cfg.step_ms)

    def to_json(self):
        return {**self._base_json(), "fine": _pairs(self.fine)}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = {b: list(v) for b, v in j["fine"]}
        return k


class _Rum(_Key):
    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.retention_ms = cfg.rum_window_ms + cfg.idle_retention_ms
        self.win = LogHistogram()

    def merge(self, x: dict, cfg, emitted_until):
        b = x["b"]
        behind = self._seen(b, emitted_until)
        h = LogHistogram.from_json(x["h"])
        if b in self.fine:
            self.fine[b].merge(h)
        else:
            self.fine[b] = h.copy()
        if behind and b >= emitted_until - cfg.rum_window_ms:
            self.win.merge(h)

    def advance(self, end, step, cfg):
        super().advance(end, step)
        _slide(self.win, self.fine, end, step, cfg.rum_window_ms)

    def rebuild(self, until, cfg):
        self.win = _sum_hists(self.fine, until - cfg.rum_window_ms, until)

    def evict(self, until, cfg):
        _drop(self.fine, until - cfg.rum_window_ms - cfg.step_ms)

    def to_json(self):
        return {**self._base_json(), "fine": [[b, h.to_json()] for b, h in sorted(self.fine.items())],
                "win": self.win.to_json()}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = {b: LogHistogram.from_json(h) for b, h in j["fine"]}
        k.win = LogHistogram.from_json(j["win"])
        return k


def _rum_signals(keys: dict, active: list, end: int, cfg: SignalConfig) -> list[dict]:
    """p75 and delta signals for the active RUM keys (scope, route, cohort, metric) at end."""
    ranked = {k: keys[k].win.ranked() for k in active}
    out = []
    for k in active:
        scope, route, cohort, metric = k
        name = rumlib.METRIC_SIGNAL[metric]
        r = ranked[k]
        out.append(_signal(name, scope, cohort, route, cfg.rum_window_ms, r.quantile(rumlib.P),
                           r.n, end))
        base_r, base_v, source = None, None, None
        for bc in cfg.baseline_cohorts:
            if bc == cohort:
                break
            br = ranked.get((scope, route, bc, metric))
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
                                   cfg.rum_window_ms, end)
            delta, lo, hi = rumlib.delta_ci(r, base_r, base_v, seed, cfg.bootstrap_resamples)
        out.append(_signal(name + "_delta", scope, cohort, route, cfg.rum_window_ms, delta, r.n,
                           end, baseline=base_v, baseline_samples=base_r.n if base_r else None,
                           baseline_source=source, ci_low=lo, ci_high=hi))
    return out


class _Cdc(_Key):
    def __init__(self, cfg: SignalConfig):
        super().__init__()
        self.retention_ms = cfg.cdc_retention_ms
        self.lag: dict[int, LogHistogram] = {}
        self.lag_win = LogHistogram()
        self.last_change: int | None = None   # latest change event before the emission point
        self.reference: dict | None = None

    def merge(self, x: dict, cfg, emitted_until):
        b = x["b"]
        behind = self._seen(b, emitted_until)
        f = self.fine.get(b)
        if f is None:
            f = self.fine[b] = [0, 0, None, {}]
        f[0] += x["n"]
        f[1] += x["rows"]
        if x["lc"] is not None and (f[2] is None or x["lc"] > f[2]):
            f[2] = x["lc"]
        for sid, c in x["sh"].items():
            f[3][sid] = f[3].get(sid, 0) + c
        h = LogHistogram.from_json(x["h"])
        if b in self.lag:
            self.lag[b].merge(h)
        else:
            self.lag[b] = h.copy()
        if behind:
            if x["lc"] is not None and (self.last_change is None or x["lc"] > self.last_change):
                self.last_change = x["lc"]
            if b >= emitted_until - cfg.cdc_window_ms:
                self.lag_win.merge(h)

    def advance(self, end, step, cfg):
        super().advance(end, step)
        f = self.fine.get(end - step)
        if f is not None and f[2] is not None and (self.last_change is None or f[2] > self.last_change):
            self.last_change = f[2]
        _slide(self.lag_win, self.lag, end, step, cfg.cdc_window_ms)

    def rebuild(self, until, cfg):
        self.lag_win = _sum_hists(self.lag, until - cfg.cdc_window_ms, until)

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
            _signal("cdc_lag_p95_s", scope, DEFAULT_COHORT, table, w,
                    None if p95 is None else p95 / 1000, lag_n, end),
            _signal("cdc_silence_s", scope, DEFAULT_COHORT, table, w, silence, changes, end),
            _signal("schema_drift", scope, DEFAULT_COHORT, table, w, len(bad) if rows else None,
                    rows, end),
        ]

    def evict(self, until, cfg):
        _drop(self.fine, until - cfg.cdc_window_ms - cfg.step_ms)
        _drop(self.lag, until - cfg.cdc_window_ms - cfg.step_ms)

    def to_json(self):
        return {**self._base_json(), "fine": [[b, [f[0], f[1], f[2], dict(sorted(f[3].items()))]]
                                              for b, f in sorted(self.fine.items())],
                "lag": [[b, h.to_json()] for b, h in sorted(self.lag.items())],
                "lag_win": self.lag_win.to_json(), "last_change": self.last_change,
                "reference": self.reference}

    @classmethod
    def from_json(cls, j, cfg):
        k = cls(cfg)
        k._load_base(j)
        k.fine = {b: [f[0], f[1], f[2], dict(f[3])] for b, f in j["fine"]}
        k.lag = {b: LogHistogram.from_json(h) for b, h in j["lag"]}
        k.lag_win = LogHistogram.from_json(j["lag_win"])
        k.last_change = j["last_change"]
        k.reference = j["reference"]
        return k


def _drop(d: dict, before: int) -> None:
    for b in [b for b in d if b < before]:
        del d[b]


def _dense(d: dict[int, list], unit: int) -> dict:
    """{b: [n, e]} -> {"b0", "n": [...], "e": [...]} over consecutive buckets (0 = empty): the
    request state is mostly full 10 s buckets, and this keeps its snapshot small."""
    if not d:
        return {"b0": None, "n": [], "e": []}
    b0, b1 = min(d), max(d)
    ns, es = [], []
    for b in range(b0, b1 + unit, unit):
        v = d.get(b)
        ns.append(v[0] if v else 0)
        es.append(v[1] if v else 0)
    return {"b0": b0, "n": ns, "e": es}


def _undense(j: dict, unit: int) -> dict[int, list]:
    b0 = j["b0"]
    return {b0 + i * unit: [n, e] for i, (n, e) in enumerate(zip(j["n"], j["e"])) if n or e}


def _pairs(d: dict) -> list:
    return [[b, v] for b, v in sorted(d.items())]


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
    from gatewatch.processors.catalogue import resolve
    sd = resolve(batch[0]["name"]) if batch else None
    return sd.domain if sd is not None else "gauges"


_DOMAINS = {"requests": _Requests, "gauges": _Gauges, "rum": _Rum, "cdc": _Cdc}
_ORDER = ("cdc", "gauges", "requests", "rum")  # emission order of domains (alphabetical)


class PartitionSignals:
    def __init__(self, topic: str, partition: int, config: SignalConfig | None = None):
        self.topic, self.partition = topic, int(partition)
        self.config = config or SignalConfig()
        self.last_offset: int | None = None
        self.watermark_ms: int | None = None
        self.origin_ms: int | None = None
        self.emitted_until: int | None = None
        self.keys: dict[str, dict] = {d: {} for d in _DOMAINS}
        self.shapes: dict[str, list] = {}
        self.duplicates = 0      # re-delivered partials ignored
        self.conflicts = 0       # overlapping partials that could not be reconciled (refused)
        self.reconciled = 0      # overlapping partials of which only the new part was applied
        self.pieces: list[dict] = []  # the last applied offset ranges (gatewatch.processors.ledger)
        self._compat: dict[tuple, dict] = {}

    def apply(self, partial: dict) -> list[list[dict]]:
        lo, hi = partial["first_offset"], partial["last_offset"]
        buckets = partial["buckets"]
        last = self.last_offset
        if last is not None and hi <= last:
            self.duplicates += 1
            self._split_piece(lo, hi, buckets)
            return []
        if last is not None and lo <= last:
            # A re-cut range (e.g. after an aborted transaction that was visible): apply only
            # what lies beyond the applied offsets, computed exactly from the kept pieces.
            i = self._piece_at(lo)
            delta = None
            if i is not None:
                covered = ledger.combine([p["buckets"] for p in self.pieces[i:]])
                delta = ledger.difference(buckets, covered)
            if delta is None:
                self.conflicts += 1
                return []
            self.reconciled += 1
            buckets, lo = delta, last + 1
        self.last_offset = hi
        self.pieces.append(ledger.piece(lo, hi, buckets))
        del self.pieces[:-ledger.MAX_PIECES]
        cfg = self.config
        if self.origin_ms is None and partial.get("origin_ms") is not None:
            self.origin_ms = partial["origin_ms"]
            self.emitted_until = floor_to(self.origin_ms, cfg.step_ms)
        self.shapes.update(partial.get("shapes") or {})
        eu = self.emitted_until
        for x in buckets:
            d = x["d"]
            keys = self.keys.get(d)
            if keys is None:
                continue
            k = tuple(x["k"])
            st = keys.get(k)
            if st is None:
                st = keys[k] = _DOMAINS[d](cfg)
            st.merge(x, cfg, eu)
        for scope, table, sid in partial.get("first_shapes") or []:
            st = self.keys["cdc"].get((scope, table))
            if st is not None and st.reference is None:
                registered = cfg.cdc_shapes.get(table)
                st.reference = normalize(registered) if registered else dict(map(tuple, self.shapes[sid]))
        wm = partial.get("watermark_ms")
        if wm is not None and (self.watermark_ms is None or wm > self.watermark_ms):
            self.watermark_ms = wm
        return self._emit()

    def _piece_at(self, first: int) -> int | None:
        for i, p in enumerate(self.pieces):
            if p["first"] == first:
                return i
        return None

    def _split_piece(self, lo: int, hi: int, buckets: list[dict]) -> None:
        """A shorter re-cut of applied offsets: nothing to apply, but split the kept pieces at
        hi so that the re-cut's successor (starting at hi + 1) can be reconciled too."""
        i = self._piece_at(lo)
        if i is None:
            return
        j = next((j for j in range(i, len(self.pieces)) if self.pieces[j]["last"] >= hi), None)
        if j is None or self.pieces[j]["last"] == hi:
            return
        # only cut the piece that holds hi; the finer pieces before it keep their boundaries,
        # which a later re-cut may start at (merging them lost those starts: a refused partial)
        pj = self.pieces[j]
        before = ledger.combine([p["buckets"] for p in self.pieces[i:j]])
        head = ledger.difference(buckets, before) if before else buckets
        tail = None if head is None else ledger.difference(pj["buckets"], head)
        if tail is None:
            return
        self.pieces[j:j + 1] = [ledger.piece(pj["first"], hi, head), ledger.piece(hi + 1, pj["last"], tail)]

    def _emit(self) -> list[list[dict]]:
        if self.emitted_until is None or self.watermark_ms is None:
            return []
        cfg = self.config
        step = cfg.step_ms
        last = floor_to(self.watermark_ms, step)
        batches: list[list[dict]] = []
        while self.emitted_until < last:
            end = self.emitted_until + step
            if not any(st.due(end, step) for keys in self.keys.values() for st in keys.values()):
                # Nothing to emit until the next data bucket: skip the idle steps at once (a gap
                # of days costs nothing). Idle keys' windows are empty; rebuild them anyway.
                nxt = min((b for keys in self.keys.values() for st in keys.values()
                           for b in st.fine if b >= end), default=None)
                self.emitted_until = last if nxt is None else min(last, floor_to(nxt, step))
                for keys in self.keys.values():
                    for st in keys.values():
                        st.rebuild(self.emitted_until, cfg)
                continue
            batches.extend(self._step(end))
            self.emitted_until = end
        self._evict()
        return batches

    def _step(self, end: int) -> list[list[dict]]:
        cfg = self.config
        step = cfg.step_ms
        by_batch: dict[tuple, list] = {}
        for d in _ORDER:
            keys = self.keys[d]
            active = []
            for k in sorted(keys):
                st = keys[k]
                st.advance(end, step, cfg)
                if st.active(end):
                    active.append(k)
            if not active:
                continue
            if d == "rum":
                sigs = _rum_signals(keys, active, end, cfg)
            elif d == "cdc":
                sigs = []
                for k in active:
                    compat = self._compat.setdefault(k, {})
                    sigs.extend(keys[k].signals(k, end, cfg, self.shapes, compat))
            else:
                sigs = [s for k in active for s in keys[k].signals(k, end, cfg)]
            for s in sigs:
                by_batch.setdefault((d, s["scope"]), []).append(s)
        out = []
        for bk in sorted(by_batch):
            batch = SignalBatch(sorted(by_batch[bk], key=lambda s: (s["name"], s["cohort"],
                                                                    s["subject"], s["window_s"])))
            batch.domain, batch.scope = bk
            out.append(batch)
        return out

    def _evict(self) -> None:
        until = self.emitted_until
        cfg = self.config
        for d, keys in self.keys.items():
            for k in list(keys):
                st = keys[k]
                st.evict(until, cfg)
                # A CDC table is kept (its reference shape and last change are history);
                # other idle keys go: a fresh key behaves exactly like an idle one.
                if d != "cdc" and not st.active(until) and not st.has_future(until) \
                        and st.first_b is not None and st.first_b < until:
                    del keys[k]

    # ---- state ----
    def to_state(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "last_offset": self.last_offset,
                "watermark_ms": self.watermark_ms, "origin_ms": self.origin_ms,
                "emitted_until": self.emitted_until, "duplicates": self.duplicates,
                "conflicts": self.conflicts, "reconciled": self.reconciled, "pieces": list(self.pieces),
                "shapes": dict(sorted(self.shapes.items())),
                "keys": {d: [[list(k), st.to_json()] for k, st in sorted(keys.items())]
                         for d, keys in self.keys.items()}}

    @classmethod
    def from_state(cls, state: dict, config: SignalConfig | None = None) -> "PartitionSignals":
        ps = cls(state["topic"], state["partition"], config)
        for f in ("last_offset", "watermark_ms", "origin_ms", "emitted_until", "duplicates",
                  "conflicts"):
            setattr(ps, f, state[f])
        ps.reconciled = state.get("reconciled", 0)
        ps.pieces = list(state.get("pieces") or [])
        ps.shapes = dict(state["shapes"])
        for d, items in state["keys"].items():
            ps.keys[d] = {tuple(k): _DOMAINS[d].from_json(j, ps.config) for k, j in items}
        return ps


def run_pipeline(records, config: SignalConfig | None = None, flush_every: int = 1000):
    """Feed (topic, partition, offset, key, value, kafka_ts_ms) records through per-partition
    aggregators and signal state exactly like the runtime: flush a partition's partial every
    `flush_every` records of it and at the end of input.

    Returns (signal_batches, rejections): batches sorted by (ts, topic, partition, domain, scope)
    and rejections as gw.dlq records (gatewatch.processors.inputs.dlq_record) in input order. Neither
    depends on flush_every."""
    from gatewatch.processors.inputs import dlq_record
    cfg = config or SignalConfig()
    aggs: dict[tuple, PartitionAggregator] = {}
    sigs: dict[tuple, PartitionSignals] = {}
    emitted: list[tuple] = []
    rejections: list[dict] = []

    def flush(tp):
        partial = aggs[tp].flush()
        if partial is not None:
            for batch in sigs[tp].apply(partial):
                emitted.append((batch[0]["ts"], tp, batch))

    for topic, partition, offset, key, value, kafka_ts in records:
        tp = (topic, partition)
        agg = aggs.get(tp)
        if agg is None:
            agg = aggs[tp] = PartitionAggregator(topic, partition, cfg)
            sigs[tp] = PartitionSignals(topic, partition, cfg)
        rej = agg.add(offset, key, value, kafka_ts)
        if rej is not None:
            rejections.append(dlq_record(topic, partition, offset, key, value, kafka_ts, rej))
        if agg.records >= flush_every:
            flush(tp)
    for tp in sorted(aggs):
        flush(tp)
    # stable sort: within one partition and ts, batches keep their (domain, scope) order
    emitted.sort(key=lambda t: (t[0], t[1]))
    return [b for _, _, b in emitted], rejections
