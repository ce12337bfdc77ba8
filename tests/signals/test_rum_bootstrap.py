"""The RUM bootstrap's hoisted Beta sampler gives the very floats of the code it replaced: the
stdlib's betavariate (and gammavariate), and delta_ci's per-replicate loop kept here as the law."""
from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors import rum
from gatewatch.processors.digest import LogHistogram


def _reference_delta_ci(cur, base, base_value, seed, resamples, q=rum.P):
    """delta_ci as it was: one rng.betavariate per replicate."""
    def replicate(r, rng):
        n = r.n
        k = int(math.floor(q * (n - 1))) + 1
        u = rng.betavariate(k, n + 1 - k) if n > 1 else 0.5
        return r.at_rank(min(n - 1, max(0, math.ceil(u * n) - 1)))
    cur_p = cur.quantile(q)
    if cur_p is None or not base_value:
        return None, None, None
    rng, reps = random.Random(seed), []
    for _ in range(resamples):
        c = replicate(cur, rng)
        b = replicate(base, rng) if base is not None else base_value
        if b:
            reps.append(c / b - 1.0)
    if len(reps) < 2:
        return cur_p / base_value - 1.0, None, None
    reps.sort()
    return (cur_p / base_value - 1.0, reps[int(math.floor(0.025 * (len(reps) - 1)))],
            reps[int(math.ceil(0.975 * (len(reps) - 1)))])


def _same_floats(a, b) -> bool:
    return len(a) == len(b) and all(x == y and math.copysign(1, x) == math.copysign(1, y) if x is not None
                                    else y is None for x, y in zip(a, b))


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), alpha=st.integers(1, 50_000), beta=st.integers(1, 50_000))
def test_beta_sampler_is_the_stdlib_betavariate(seed, alpha, beta):
    mine, theirs = random.Random(seed), random.Random(seed)
    draw = rum.beta_sampler(alpha, beta)
    got = [draw(mine.random) for _ in range(20)]
    want = [theirs.betavariate(alpha, beta) for _ in range(20)]
    assert _same_floats(got, want)
    assert mine.random() == theirs.random()  # and it consumed the same stream


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), alpha=st.floats(1.0, 1e6, allow_nan=False))
def test_gamma_sampler_is_the_stdlib_gammavariate(seed, alpha):
    mine, theirs = random.Random(seed), random.Random(seed)
    draw = rum.gamma_sampler(alpha)
    assert _same_floats([draw(mine.random) for _ in range(20)], [theirs.gammavariate(alpha, 1.0) for _ in range(20)])


values = st.lists(st.floats(-50, 5000, allow_nan=False), min_size=0, max_size=300)


def _hist(xs) -> LogHistogram:
    h = LogHistogram()
    for x in xs:
        h.add(x)
    return h


@settings(max_examples=150, deadline=None)
@given(cur=values, base=st.one_of(st.none(), values), base_value=st.floats(0.5, 5000),
       seed=st.integers(0, 2**64 - 1), resamples=st.integers(0, 60), q=st.sampled_from([0.5, 0.75, 0.95]))
def test_delta_ci_equals_the_per_replicate_betavariate_loop(cur, base, base_value, seed, resamples, q):
    c = _hist(cur).ranked()
    b = _hist(base).ranked() if base is not None else None
    if b is not None and b.n == 0:
        b = None  # the caller never passes an empty baseline cohort (vitals.py)
    bv = base_value if b is None else (b.quantile(q) or base_value)
    assert _same_floats(rum.delta_ci(c, b, bv, seed, resamples, q), _reference_delta_ci(c, b, bv, seed, resamples, q))
