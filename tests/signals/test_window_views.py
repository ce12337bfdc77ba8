"""A sliding window's ranked view, reused across steps while its buckets stay the same
(common.slide + WindowViews + LogHistogram.ranked_like), equals ranked() built from scratch."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.signals.common import WindowViews, slide

STEP, WIDTH = 10, 40
# few distinct values, so consecutive windows often keep the same buckets (the reuse path)
values = st.lists(st.sampled_from([-3.0, 0.0, 1.0, 2.5, 7.0, 7.01, 300.0]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=30), st.lists(st.booleans(), max_size=30))
def test_reused_ranked_view_equals_a_fresh_one(per_bucket, rebuilds):
    hists = {}
    for i, xs in enumerate(per_bucket):
        h = LogHistogram()
        for x in xs:
            h.add(x)
        hists[i * STEP] = h
    win, views, reused = LogHistogram(), WindowViews(), 0
    for i in range(len(per_bucket) + WIDTH // STEP + 1):
        end = (i + 1) * STEP
        if i < len(rebuilds) and rebuilds[i]:  # skipped steps: the window is rebuilt from its buckets
            win = LogHistogram()
            for b in range(end - WIDTH, end, STEP):
                if b in hists:
                    win.merge(hists[b])
            views.moved()
        else:
            same = slide(win, hists, end, STEP, WIDTH)
            reused += same
            views.moved(same)
        got, want = views.ranked(win), win.ranked()
        assert (got.values, got.cum, got.n) == (want.values, want.cum, want.n)
        assert views.ranked(win) is got  # once per position of the window
        assert views.json(win) == win.to_json()
