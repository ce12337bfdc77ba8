"""The signal catalogue: the names a policy may use, their units and domains.

unit decides which rule suffixes make sense (see gatewatch.processors.policy):
  ms / s   durations (a rule may say 800ms or 0.8s)
  ratio    a fraction in [0, 1] (a rule may say 0.1pct)
  delta    a relative change against the baseline, as a fraction (10pct = 0.10)
  multiple a burn-rate multiple of the error budget
  rps      requests per second;  count  a plain number
"""
from __future__ import annotations

from dataclasses import dataclass

BURN_WINDOWS = ("5m", "30m", "1h", "2h", "4h", "6h", "1d", "3d")
RUM_METRICS = {"inp": "ms", "lcp": "ms", "fcp": "ms", "ttfb": "ms", "cls": "count"}


@dataclass(frozen=True)
class SignalDef:
    name: str
    unit: str
    domain: str  # requests | rum | cdc | gauges | trajectories
    doc: str


def _build() -> dict[str, SignalDef]:
    c: dict[str, SignalDef] = {}

    def add(name, unit, domain, doc):
        c[name] = SignalDef(name, unit, domain, doc)

    for w in BURN_WINDOWS:
        add(f"burn_rate_{w}", "multiple", "requests", f"error ratio over {w} / (1 - SLO target)")
    add("err5xx_rate", "ratio", "requests", "share of requests with status >= 500 over 5m")
    add("latency_p95_ms", "ms", "requests", "p95 request latency over the policy latency window")
    add("latency_p99_ms", "ms", "requests", "p99 request latency over the policy latency window")
    add("request_rate", "rps", "requests", "requests per second over 5m")
    add("latency_p95_ms_delta", "delta", "requests",
        "p95 latency of the cohort vs the baseline cohort, fraction, with a distribution-free 95 % interval")
    add("latency_p95_ms_delta_lo", "delta", "requests", "lower bound of latency_p95_ms_delta's 95 % interval")
    add("err5xx_rate_delta", "ratio", "requests",
        "5xx ratio of the cohort minus the baseline cohort's, with a normal-approximation interval")
    add("err5xx_rate_delta_lo", "ratio", "requests", "lower bound of err5xx_rate_delta's 95 % interval")
    add("error_budget_consumed", "ratio", "requests",
        "share of the error budget spent over slo.availability.window (28d; whole hours plus the "
        "current hour so far), every 5 minutes; above 1 when overspent")
    add("error_budget_remaining", "ratio", "requests", "1 - error_budget_consumed")
    for m, unit in RUM_METRICS.items():
        base = f"rum_{m}_p75" + ("_ms" if unit == "ms" else "")
        add(base, unit, "rum", f"p75 of {m.upper()} over the RUM window")
        add(base + "_delta", "delta", "rum", f"p75 {m.upper()} of the cohort vs baseline, fraction")
    add("cdc_lag_p95_s", "s", "cdc", "p95 of ts_ms - source.ts_ms (snapshot reads excluded)")
    add("cdc_silence_s", "s", "cdc", "event time since the table's last change event")
    add("schema_drift", "count", "cdc", "incompatible schema changes seen in the window")
    add("invariant", "count", "gauges", "last value of the invariant gauge (must stay 0)")
    add("obs_uptime", "ratio", "gauges", "last value of the observability uptime gauge")
    for q in ("p50", "p95", "p99"):
        add(f"trajectory_quality_{q}", "count", "trajectories", f"{q} of trajectory quality scores")
    return c


CATALOGUE: dict[str, SignalDef] = _build()

# Names from the seeds that mean a catalogue signal.
ALIASES: dict[str, str] = {
    "burn_rate_per_4h": "burn_rate_4h",
    "burn4h": "burn_rate_4h",
    "lat_p95_ms": "latency_p95_ms",
    "inp_p75_ms": "rum_inp_p75_ms",
    **{f"rum_{m}_p75": f"rum_{m}_p75_ms" for m, u in RUM_METRICS.items() if u == "ms"},
    **{f"rum_{m}_p75_delta": f"rum_{m}_p75_ms_delta" for m, u in RUM_METRICS.items() if u == "ms"},
}


def resolve(name: str) -> SignalDef | None:
    return CATALOGUE.get(ALIASES.get(name, name))
