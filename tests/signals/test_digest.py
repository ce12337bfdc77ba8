"""The quantile sketch: accurate against numpy, and exactly mergeable (split/merge-order free)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.digest import LogHistogram


def hist_of(values) -> LogHistogram:
    h = LogHistogram()
    for v in values:
        h.add(float(v))
    return h


def test_quantiles_within_one_percent_of_numpy():
    rng = np.random.default_rng(7)
    for data in (rng.lognormal(4.5, 0.8, 5000), rng.uniform(1, 3000, 2000),
                 rng.exponential(200, 1000), rng.normal(1500, 400, 3000).clip(0.5)):
        r = hist_of(data).ranked()
        for q in (0.5, 0.75, 0.95, 0.99):
            exact = np.percentile(data, q * 100)
            assert abs(r.quantile(q) - exact) <= 0.01 * abs(exact), (q, r.quantile(q), exact)


def test_zero_and_negative_values():
    data = [0.0] * 300 + [-5.0] * 100 + list(np.linspace(0.01, 0.5, 600))
    r = hist_of(data).ranked()
    assert r.n == 1000
    assert r.quantile(0.05) < 0 and r.quantile(0.2) == 0.0
    exact = np.percentile(data, 75)
    assert abs(r.quantile(0.75) - exact) <= 0.01 * exact


values = st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), min_size=1, max_size=200)


@settings(max_examples=100, deadline=None)
@given(values, st.lists(st.integers(0, 200), max_size=6), st.randoms(use_true_random=False))
def test_any_split_and_merge_order_gives_the_same_sketch(data, cuts, rnd):
    whole = hist_of(data).to_json()
    bounds = sorted({0, len(data), *[min(c, len(data)) for c in cuts]})
    parts = [hist_of(data[a:b]) for a, b in zip(bounds, bounds[1:])]
    rnd.shuffle(parts)
    merged = LogHistogram()
    for p in parts:
        merged.merge(LogHistogram.from_json(p.to_json()))
    assert merged.to_json() == whole
    # sliding windows subtract exactly what they added
    extra = hist_of([1.0, 2.0, -3.0, 0.0])
    assert merged.merge(extra).subtract(extra).to_json() == whole


@given(st.lists(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(0.0)), max_size=300),
       st.lists(st.floats(0, 1), min_size=1, max_size=4))
def test_quantiles_walk_equals_the_ranked_view(xs, qs):
    h = LogHistogram()
    for x in xs:
        h.add(x)
    r = h.ranked()
    assert h.quantiles(tuple(qs)) == ([r.quantile(q) for q in qs], r.n)
