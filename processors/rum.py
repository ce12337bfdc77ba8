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

The Beta draws are random.Random.betavariate's own algorithm (Cheng's gamma sampler, unchanged
from Python 3.10 to 3.13) with its per-call constants hoisted out of the replicate loop: the same
floats from the same seed (tests/signals/test_rum_bootstrap.py checks it against the stdlib), at
a fraction of the cost; the bootstrap was the signals worker's largest fixed cost per step.
"""
from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect_right
from math import exp as _exp
from math import log as _log
from math import sqrt as _sqrt
from random import LOG4 as _LOG4
from random import SG_MAGICCONST as _SG_MAGICCONST

from gatewatch.processors.digest import Ranked

P = 0.75
METRIC_SIGNAL = {"inp": "rum_inp_p75_ms", "lcp": "rum_lcp_p75_ms", "fcp": "rum_fcp_p75_ms",
                 "ttfb": "rum_ttfb_p75_ms", "cls": "rum_cls_p75"}
ENV_BASELINE_KEY = {"inp": "inp_p75_ms", "lcp": "lcp_p75_ms", "fcp": "fcp_p75_ms",
                    "ttfb": "ttfb_p75_ms", "cls": "cls_p75"}


def seed_for(policy_hash: str, *window_id) -> int:
    text = "|".join([policy_hash, *(str(p) for p in window_id)])
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16)


def gamma_sampler(alpha):
    """draw(random) == Random.gammavariate(alpha, 1.0) for the Random whose .random is given, for
    alpha >= 1 (the stdlib's code with alpha's constants computed once; x * 1.0 == x)."""
    if alpha == 1.0:
        return lambda random: -_log(1.0 - random())
    if not alpha > 1.0:
        raise ValueError(f"gamma_sampler: alpha must be >= 1, got {alpha!r}")
    # an int alpha (an order statistic's rank) as the float the stdlib's arithmetic converts it to
    # anyway (exact below 2**53): float * float skips the mixed-type path, same results
    alpha = float(alpha)
    ainv = _sqrt(2.0 * alpha - 1.0)
    bbb = alpha - _LOG4
    ccc = alpha + ainv

    def draw(random):
        while True:
            u1 = random()
            if not 1e-7 < u1 < 0.9999999:
                continue
            u2 = 1.0 - random()
            v = _log(u1 / (1.0 - u1)) / ainv
            x = alpha * _exp(v)
            z = u1 * u1 * u2
            r = bbb + ccc * v - x
            if r + _SG_MAGICCONST - 4.5 * z >= 0.0 or r >= _log(z):
                return x
    return draw


def beta_sampler(alpha, beta):
    """draw(random) == Random.betavariate(alpha, beta), for alpha, beta >= 1."""
    ga, gb = gamma_sampler(alpha), gamma_sampler(beta)

    def draw(random):
        y = ga(random)
        if y:
            return y / (y + gb(random))
        return 0.0
    return draw


def replicator(r: Ranked, q: float = P):
    """draw(random) -> one bootstrap replicate of r's quantile q (module docstring)."""
    n = r.n
    if n <= 1:
        j = min(n - 1, max(0, math.ceil(0.5 * n) - 1))
        return lambda random: r.at_rank(j)
    k = int(math.floor(q * (n - 1))) + 1          # 1-based order statistic of the quantile
    beta = beta_sampler(k, n + 1 - k)
    values, cum, last = r.values, r.cum, n - 1
    fn, ceil = float(n), math.ceil  # float(n): the conversion `u * n` makes, done once

    def draw(random):
        j = ceil(beta(random) * fn) - 1
        return values[bisect_right(cum, last if j > last else (j if j > 0 else 0))]
    return draw


def delta_ci(cur: Ranked, base: Ranked | None, base_value: float, seed: int,
             resamples: int, q: float = P) -> tuple[float | None, float | None, float | None]:
    """(delta, ci_low, ci_high) of cur's quantile q vs the baseline's (a cohort's, or a constant)."""
    cur_p = cur.quantile(q)
    if cur_p is None or not base_value:
        return None, None, None
    delta = cur_p / base_value - 1.0
    rand = random.Random(seed).random
    draw_cur = replicator(cur, q)
    draw_base = replicator(base, q) if base is not None else None
    reps = []
    for _ in range(resamples):
        c = draw_cur(rand)
        b = draw_base(rand) if draw_base is not None else base_value
        if b:
            reps.append(c / b - 1.0)
    if len(reps) < 2:
        return delta, None, None
    reps.sort()
    lo = reps[int(math.floor(0.025 * (len(reps) - 1)))]
    hi = reps[int(math.ceil(0.975 * (len(reps) - 1)))]
    return delta, lo, hi
