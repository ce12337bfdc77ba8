"""processors.partial_check: every partial ingest writes passes (per-request, RUM, CDC, gauges, OTLP
and Prometheus series, split per task); a partial that passes never makes SignalTask.apply raise,
whatever one of its fields was replaced with (hypothesis); the rest are refused with where."""
from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.otlp import InputAggregator
from gatewatch.processors.partial_check import partial_problem
from gatewatch.processors.routing import split_partial
from gatewatch.processors.signals import SignalTask
from tests.inputs.metrics_gen import otlp_records, prometheus_records, traffic

from .partial_feed import feed_partials
from .test_evict_skip import CFG, scenario_records


def series_partials(logical: str, records) -> list[dict]:
    agg, out = InputAggregator(logical, 0, CFG), []
    for off, (ts, value) in enumerate(records):
        agg.add(off, None, value, ts)
        if agg.pending >= 40:
            out.append(agg.flush())
    out.append(agg.flush(True) or agg.progress(len(records), True))
    return out


@pytest.fixture(scope="module")
def partials() -> list[dict]:
    out: list[dict] = []
    feed_partials(scenario_records(7)[:6000], CFG, 500, out.append)
    reqs = traffic(steps=12, per_step=20)
    out += series_partials("otlp_metrics", otlp_records(reqs))
    out += series_partials("metrics", prometheus_records(reqs))
    out += [p for whole in list(out) for p in split_partial(whole, 3)]
    return [orjson.loads(canonical_json(p)) for p in out]  # as gw.partials carries them


def test_every_partial_ingest_writes_passes(partials):
    domains = {x["d"] for p in partials for x in p["buckets"]}
    assert domains == {"requests", "gauges", "rum", "cdc", "series"}
    assert [partial_problem(canonical_json(p)) for p in partials] == [None] * len(partials)


@pytest.mark.parametrize("change, where", [
    (lambda p: p["buckets"][0]["h"].update(p=[1, 2, 3]), "odd length"),
    (lambda p: p["buckets"][0].update(b="soon"), "$.buckets[0].b"),
    (lambda p: p["buckets"][0].pop("k"), "`k`"),
    (lambda p: p.update(first_offset=None), "offsets"),
    (lambda p: p.update(buckets={}), "$.buckets"),
])
def test_a_partial_the_task_cannot_apply_is_refused_with_where(partials, change, where):
    p = copy.deepcopy(next(p for p in partials if p["buckets"] and "h" in p["buckets"][0]))
    change(p)
    assert where in (partial_problem(canonical_json(p)) or "")


def test_not_json_is_refused():
    assert partial_problem(b"{not json").startswith("not JSON")


def paths(doc, prefix=()):
    """Every (path) to a value in doc, the containers included."""
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            yield from paths(v, (*prefix, i))


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
                    | st.text(max_size=5), lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_partial_that_passes_never_makes_apply_raise(partials, data):
    base = data.draw(st.sampled_from([p for p in partials if p["buckets"]]))
    p = copy.deepcopy(base)
    path = data.draw(st.sampled_from(list(paths(p))[1:]))
    *parent, last = path
    holder = p
    for k in parent:
        holder = holder[k]
    if data.draw(st.booleans()) and isinstance(holder, dict):
        holder.pop(last)
    else:
        holder[last] = data.draw(JSON)
    raw = canonical_json(p)
    if partial_problem(raw) is None:
        task = SignalTask(0, CFG)
        task.apply(orjson.loads(raw))
