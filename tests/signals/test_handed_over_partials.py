"""Replay hands its partials to its signals task with the histograms as objects (flush(wire=False)):
the task emits the same signals and ends in the same state as with the partials' JSON form, and a
handed-over partial keeps its counts while the task merges more into its state."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.digest import LogHistogram
from gatewatch.processors.signals import SignalTask

from .partial_feed import feed_partials
from .test_evict_skip import CFG, scenario_records


def run(records, flush_every: int, wire: bool) -> tuple[list, list]:
    task = SignalTask(0, CFG)
    task.expect(f"{r[0]}:{r[1]}" for r in records)
    outs, handed = [], []

    def apply(partial):
        if not wire:
            hists = [x["h"] for x in partial["buckets"] if isinstance(x.get("h"), LogHistogram)]
            handed.append((hists, [h.to_json() for h in hists]))
        outs.append(task.apply(partial))

    feed_partials(records, CFG, flush_every, apply, wire)
    outs.append(orjson.dumps(task.to_state()))  # pieces included: kept as JSON in a snapshot
    for hists, at_apply in handed:  # the task copied what it kept: nothing it merged later shows here
        assert [h.to_json() for h in hists] == at_apply
    return outs, handed


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(0, 10_000), flush_every=st.integers(200, 1500))
def test_handed_over_partials_equal_their_wire_form(seed, flush_every):
    records = scenario_records(seed)
    wire_outs, _ = run(records, flush_every, wire=True)
    obj_outs, handed = run(records, flush_every, wire=False)
    assert any(hists for hists, _ in handed)  # the objects path was taken
    assert obj_outs == wire_outs
