"""Signal batches and small policies for the policy tests."""
from __future__ import annotations

from gatewatch.processors.timefmt import format_ts
from gatewatch.streams.runtime.policy_files import compose

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP = 10_000

TEST_POLICY = """
gate:
  cohort: canary
  required: [latency_p95_ms, err5xx_rate, burn_rate_4h, invariant, rum_inp_p75_ms]
  stages:
    EXEC_FAST_OK: {window: 20s}
    EXEC_FULL_OK: {window: 20s}
    ORR_OK: {window: 30s}
    CANARY_READY: {window: 20s}
abort:
  - {id: burn, when: "burn_rate_4h >= 1", action: rollback}
  - {id: err, when: "err5xx_rate >= 0.001 for 20s", action: rollback, min_samples: 5}
  - {id: inv, when: "invariant > 0", action: block_release}
  - {id: inp, when: "rum_inp_p75_ms_delta > 10pct", action: rollback_fe, on_missing: hold}
hooks:
  must_have: [cdc_lag]
"""

HEALTHY = {
    "requests": {"latency_p95_ms": 300.0, "err5xx_rate": 0.0, "burn_rate_4h": 0.2, "burn_rate_1h": 0.1},
    "gauges": {"invariant": 0, "obs_uptime": 0.9995},
    "rum": {"rum_inp_p75_ms": 150.0, "rum_inp_p75_ms_delta": 0.01},
}
DOMAINS = tuple(sorted(HEALTHY))
ROUTES = ("/", "/market/:id")


def make_policy(extra: str = ""):
    return compose([("test.yml", TEST_POLICY), ("extra.yml", extra)] if extra else [("test.yml", TEST_POLICY)])


def sig(name, value, ts, scope="svc-a", cohort="canary", subject=None, samples=100, window_s=300):
    return {"name": name, "scope": scope, "cohort": cohort, "subject": subject, "window_s": window_s,
            "value": value, "samples": samples, "ts": format_ts(ts)}


def batch(domain, ts, scope="svc-a", overrides=None, samples=100):
    """One domain's batch at ts: healthy values, with overrides {name: value|None|('thin', v)|'absent'}."""
    overrides = overrides or {}
    out = []
    for name, healthy in HEALTHY[domain].items():
        v = overrides.get(name, healthy)
        if v == "absent":
            continue
        n = samples
        if isinstance(v, tuple):
            n, v = 0, v[1]
        subjects = ROUTES if domain == "rum" else (None,)
        for subj in subjects:
            out.append(sig(name, v, ts, scope, subject=subj, samples=n))
        if domain == "rum":  # a baseline cohort rides along as context
            out.append(sig(name, healthy, ts, scope, cohort="baseline", subject=ROUTES[0], samples=n))
    return out


def step_batches(i, scope="svc-a", overrides=None):
    ts = T0 + i * STEP
    return [batch(d, ts, scope, overrides) for d in DOMAINS]
