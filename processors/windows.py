"""Event-time windows: the configuration and the bucket arithmetic every processor shares.

Time model (docs/time.md):
- Stream time is kept per SOURCE PARTITION (as Kafka Streams does): max event time seen in
  that partition; watermark = max - lateness (default 120 s). A sample with event time <
  watermark at arrival is late (gatewatch.processors.partials rejects it with reason "late").
- Buckets are `step` long (default 10 s) and aligned to the epoch. The window ending at a step
  end E covers [E - W, E). Windows at E are evaluated once the partition watermark >= E, when
  every bucket before E is final (anything still to come for it would be late).
- Exact counts with bounded state: 10 s ("fine") buckets are kept for the longest fine window
  (6 h); 5 min ("coarse") buckets, exact sums of the fine ones, are kept for 3 d. The 1 d and 3 d
  burn-rate windows are evaluated only at ends aligned to 5 min (every 30th step), where they are
  exact unions of coarse buckets; windows up to 6 h are evaluated at every step as fine head +
  coarse middle + fine tail. So burn_rate_3d costs 864 coarse buckets of two integers per
  (service, cohort) instead of 25,920 fine ones, and no count is ever approximated.
- Windows are emitted for a key at E while it has data in [E - retention, E) (retention: 3 d
  for requests, the window + idle_retention (1 h) for gauges and RUM, so an idle key reports
  null / 0 samples for a while before it is dropped; 7 d for CDC tables, so cdc_silence_s keeps
  growing for a week of silence) and once data before E exists for it. Emission starts at the
  step after the partition's first sample; steps where no key is due are skipped at once.
  All of this depends only on the data and its partition order, never on flush boundaries.
- A sample whose event time is more than max_future (1 d) past its Kafka record timestamp is
  rejected ("future"): one bad clock must not push the partition's watermark into the future
  and make everything after it late.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gatewatch.processors.declared import parse_declared
from gatewatch.processors.timefmt import parse_duration_ms

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
BURN_WINDOWS_MS = {"5m": 5 * MINUTE, "30m": 30 * MINUTE, "1h": HOUR, "2h": 2 * HOUR,
                   "4h": 4 * HOUR, "6h": 6 * HOUR, "1d": DAY, "3d": 3 * DAY}
COARSE_MS = 5 * MINUTE          # coarse bucket length; 1d/3d windows are evaluated on its ends
FINE_MAX_MS = 6 * HOUR          # longest window evaluated from fine buckets
COARSE_WINDOWS = ("1d", "3d")


def floor_to(ms: int, unit: int) -> int:
    return ms - ms % unit


def ceil_to(ms: int, unit: int) -> int:
    return -((-ms) // unit) * unit


def later_sample(t: int, v, t0: int, v0) -> bool:
    """Whether gauge sample (t, v) replaces (t0, v0) as the last one: the later event time, and
    on a tie the larger value. Never the record order: two samples with one timestamp may sit in
    different partitions, and the result must not depend on how the records were keyed."""
    return t > t0 or (t == t0 and v > v0)


@dataclass(frozen=True)
class SignalConfig:
    step_ms: int = 10 * SECOND
    lateness_ms: int = 120 * SECOND
    availability_target: float = 99.9
    availability_by_service: dict = field(default_factory=dict)
    budget_window_ms: int = 28 * DAY          # slo.availability.window: the error budget's period
    latency_window_ms: int = 5 * MINUTE
    rate_window_ms: int = 5 * MINUTE          # err5xx_rate and request_rate
    rum_window_ms: int = 5 * MINUTE
    cdc_window_ms: int = 5 * MINUTE
    gauge_window_ms: int = 5 * MINUTE
    idle_retention_ms: int = HOUR   # gauges/RUM keys keep emitting (null, 0 samples) this long
    cdc_retention_ms: int = 7 * DAY  # a table without any row event this long is dropped
    max_future_ms: int = DAY        # event time this far past the Kafka record time is rejected
    idle_source_after_ms: int | None = None  # a caught-up source this far behind stops holding
                                             # a task's watermark (None: the lateness)
    rum_baselines: dict = field(default_factory=dict)   # route -> {metric short name: p75}
    baseline_cohorts: tuple = ("baseline", "stable")
    cdc_shapes: dict = field(default_factory=dict)       # "db.table" -> {field: type}
    bootstrap_resamples: int = 200
    declared: dict = field(default_factory=dict)         # name -> processors.declared.Declared
    policy_hash: str = ""

    def __post_init__(self):
        if self.step_ms <= 0 or COARSE_MS % self.step_ms:
            raise ValueError(f"signals.step must divide 5m, got {self.step_ms} ms")
        for name in ("latency_window_ms", "rate_window_ms", "rum_window_ms", "cdc_window_ms",
                     "gauge_window_ms"):
            w = getattr(self, name)
            if w <= 0 or w % self.step_ms or w > FINE_MAX_MS:
                raise ValueError(f"{name} must be a positive multiple of the step up to 6h, got {w} ms")

        if self.budget_window_ms < HOUR or self.budget_window_ms % HOUR or self.budget_window_ms > 400 * DAY:
            raise ValueError(f"slo.availability.window must be whole hours from 1h to 400d, got {self.budget_window_ms} ms")

    @property
    def idle_source_after(self) -> int:
        return self.lateness_ms if self.idle_source_after_ms is None else self.idle_source_after_ms

    def target_for(self, service: str) -> float:
        return float(self.availability_by_service.get(service, self.availability_target))

    @classmethod
    def from_policy(cls, policy_doc: dict | None, policy_hash: str = "") -> "SignalConfig":
        """From the composed policy dict (seed shapes): slo.availability.target (+ optional
        slo.availability.by_service), slo.latency_p95_ms.window, rum.routes, cdc.schemas, and
        an optional `signals: {step, lateness, rum_window, cdc_window, gauge_window, idle_retention,
        cdc_retention, max_future,
        baseline_cohorts, bootstrap_resamples}`."""
        doc = policy_doc or {}
        slo = doc.get("slo") or {}
        avail = slo.get("availability") or {}
        lat = slo.get("latency_p95_ms") or {}
        sig = doc.get("signals") or {}
        rum = doc.get("rum") or {}
        cdc = doc.get("cdc") or {}
        kw: dict = {"policy_hash": policy_hash or ""}
        if avail.get("target") is not None:
            kw["availability_target"] = float(avail["target"])
        if avail.get("window") is not None:
            kw["budget_window_ms"] = parse_duration_ms(avail["window"])
        if avail.get("by_service"):
            kw["availability_by_service"] = {str(k): float(v) for k, v in avail["by_service"].items()}
        if lat.get("window") is not None:
            kw["latency_window_ms"] = parse_duration_ms(lat["window"])
        for key, attr in (("step", "step_ms"), ("lateness", "lateness_ms"),
                          ("rum_window", "rum_window_ms"), ("cdc_window", "cdc_window_ms"),
                          ("gauge_window", "gauge_window_ms"), ("rate_window", "rate_window_ms"),
                          ("idle_retention", "idle_retention_ms"), ("cdc_retention", "cdc_retention_ms"),
                          ("max_future", "max_future_ms"), ("idle_source_after", "idle_source_after_ms")):
            if sig.get(key) is not None:
                kw[attr] = parse_duration_ms(sig[key])
        if sig.get("baseline_cohorts"):
            kw["baseline_cohorts"] = tuple(str(c) for c in sig["baseline_cohorts"])
        if sig.get("bootstrap_resamples") is not None:
            kw["bootstrap_resamples"] = int(sig["bootstrap_resamples"])
        baselines = {}
        for r in rum.get("routes") or []:
            if isinstance(r, dict) and isinstance(r.get("route"), str):
                baselines[r["route"]] = {k: float(v) for k, v in r.items()
                                         if k != "route" and isinstance(v, (int, float))
                                         and not isinstance(v, bool)}
        kw["rum_baselines"] = baselines
        shapes = cdc.get("schemas") or {}
        kw["cdc_shapes"] = {str(t): {str(f): str(ty) for f, ty in s.items()}
                            for t, s in shapes.items() if isinstance(s, dict)}
        kw["declared"] = parse_declared(doc)
        return cls(**kw)
