"""Core Web Vitals: p75 per (scope, route, cohort) and its delta against a baseline with a
seeded bootstrap 95% CI.

Baseline: the first cohort of SignalConfig.baseline_cohorts ("baseline", then "stable") that has
samples for the same scope, route and metric in the same window (never the cohort itself);
otherwise the per-route p75 from env.yml `rum.routes` (keys inp_p75_ms, lcp_p75_ms, fcp_p75_ms,
ttfb_p75_ms, cls_p75); otherwise the delta is null.

Bootstrap, kept cheap and exact in law: resampling n values from the empirical distribution and
taking the k-th smallest is the same as mapping U_(k) through the empirical quantile function,
and U_(k) ~ Beta(k, n + 1 - k). So one replicate costs one betavariate draw and one bisect on the
window histogram, whatever n is; no raw samples are kept and no sample size is capped. The
number of replicates is capped (SignalConfig.bootstrap_resamples, default 200). The cohort and a
baseline cohort are resampled independently; an env baseline is a constant. The RNG is
random.Random(seed), seed = first 64 bits of sha256(policy hash | signal | scope | subject |
cohort | window | window end), so the CI is a pure function of policy and data.
"""
from __future__ import annotations

import hashlib
import math
import random

from gatewatch.processors.digest import Ranked

P = 0.75
METRIC_SIGNAL = {"inp": "rum_inp_p75_ms", "lcp": "rum_lcp_p75_ms", "fcp": "rum_fcp_p75_ms",
                 "ttfb": "rum_ttfb_p75_ms", "cls": "rum_cls_p75"}
ENV_BASELINE_KEY = {"inp": "inp_p75_ms", "lcp": "lcp_p75_ms", "fcp": "fcp_p75_ms",
                    "ttfb": "ttfb_p75_ms", "cls": "cls_p75"}


def seed_for(policy_hash: str, *window_id) -> int:
    text = "|".join([policy_hash, *(str(p) for p in window_id)])
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16)


def _replicate(r: Ranked, rng: random.Random, q: float = P) -> float:
    n = r.n
    k = int(math.floor(q * (n - 1))) + 1          # 1-based order statistic of the quantile
    u = rng.betavariate(k, n + 1 - k) if n > 1 else 0.5
    j = min(n - 1, max(0, math.ceil(u * n) - 1))
    return r.at_rank(j)


def delta_ci(cur: Ranked, base: Ranked | None, base_value: float, seed: int,
             resamples: int, q: float = P) -> tuple[float | None, float | None, float | None]:
    """(delta, ci_low, ci_high) of cur's quantile q vs the baseline's (a cohort's, or a constant)."""
    cur_p = cur.quantile(q)
    if cur_p is None or not base_value:
        return None, None, None
    delta = cur_p / base_value - 1.0
    rng = random.Random(seed)
    reps = []
    for _ in range(resamples):
        c = _replicate(cur, rng, q)
        b = _replicate(base, rng, q) if base is not None else base_value
        if b:
            reps.append(c / b - 1.0)
    if len(reps) < 2:
        return delta, None, None
    reps.sort()
    lo = reps[int(math.floor(0.025 * (len(reps) - 1)))]
    hi = reps[int(math.ceil(0.975 * (len(reps) - 1)))]
    return delta, lo, hi
