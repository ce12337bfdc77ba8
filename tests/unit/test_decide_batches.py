"""The decide stage on one gw.signals record that completes several batches: a batch the engine
refuses loses nothing of the others (their actions, attestations, the shadow's view), and a
refused record leaves nothing queued to go out with the next one. Actions go out before their
attestations: nothing about the evidence can hold a decision back."""
from __future__ import annotations

from gatewatch.processors.policy import permit_signer
from gatewatch.processors.policy.scoped import ScopedEngine
from gatewatch.streams.stages.decide import DecisionState, decision_outputs
from tests.policy.test_engine import KEY
from tests.policy.test_properties import POLICY, step_batches


class Batches:
    """An assembler that hands out prepared batches, one list per record."""

    def __init__(self, per_record):
        self.per_record = list(per_record)

    def add(self, rec):
        return self.per_record.pop(0)


def _burn_batches():
    return [b for i in range(20) for b in step_batches(i, "burn" if i == 12 else "healthy", 2.0).values()]


def test_a_refused_batch_loses_nothing_of_the_others():
    good = _burn_batches()
    bad = [{"name": "no-such-signal", "scope": "svc-a", "ts": "2026-01-01T00:00:00.000Z"}]
    whole = DecisionState(ScopedEngine(POLICY, permit_signer(KEY)), Batches([good]))
    want_actions, _, want_atts = whole.on_record({})
    assert want_actions and want_atts
    state = DecisionState(ScopedEngine(POLICY, permit_signer(KEY)), Batches([good[:-1] + [bad] + good[-1:]]),
                          shadow=ScopedEngine(POLICY))
    actions, _, atts = state.on_record({})
    assert actions == want_actions and atts == want_atts
    assert [(d["rule"], d["ts"]) for d in state.take_shadow()[0]] == [(a["rule"], a["ts"]) for a in want_actions]
    assert state.engine.take_attestations() == []


def test_a_refused_record_leaves_nothing_queued():
    state = DecisionState(ScopedEngine(POLICY, permit_signer(KEY)), shadow=ScopedEngine(POLICY))
    for b in _burn_batches():
        state.engine.on_batch(b)
        state.shadow.on_batch(b)
    state.drain()
    assert state.engine.take_attestations() == [] and state.engine.take_gate_records() == []
    assert state.shadow.take_gate_records() == [] and state.take_shadow() == ([], [])


def test_actions_are_published_before_their_attestations():
    state = DecisionState(ScopedEngine(POLICY, permit_signer(KEY)), Batches([_burn_batches()]))
    actions, gates, atts = state.on_record({})
    out = decision_outputs(actions, gates, "gw.actions", "gw.gates", atts, "gw.attestations")
    topics = [t for t, _, _ in out]
    assert topics == ["gw.actions"] * len(actions) + ["gw.attestations"] * len(atts) + ["gw.gates"] * len(gates)
