"""The WORM sink logs gw.shadow (live policy shadow, issue 23): shadow decisions are admitted there by
their shape (marked, no permit, id = content hash of the rest), never count as actions (permits,
decision root), and the evidence bundle carrying them still verifies. Shadow gate records are
status and not logged; anything else on gw.shadow is refused with a reason."""
from __future__ import annotations

import base64

import orjson
from nacl.signing import SigningKey

from gatewatch.processors.shadow import shadow_decision, shadow_gate
from gatewatch.sinks.worm.bundle import read_bundle
from gatewatch.sinks.worm.evidence import verify_bundle
from gatewatch.sinks.worm.store import candidate_from_record, decision_root, is_action
from gatewatch.sinks.worm.trust import trust_from_dir
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.keys import load_signing_key
from tests.worm import factory
from tests.worm.fake_sink import feed as _feed

CANDIDATE_HASH = "c" * 64


def _shadow(i: int, same: bool = False) -> dict:
    """A candidate's decision as the decide stage publishes it (the engine's record, no signer)."""
    a = {k: v for k, v in factory.action(SigningKey(b"\x05" * 32), i).items() if k != "permit"}
    return shadow_decision(dict(a, policy_hash=CANDIDATE_HASH, permit=None), same)


def test_shadow_decisions_are_logged_and_are_no_actions(sink):
    a = factory.action(load_signing_key("decider", sink.keys), 0)
    s = _shadow(0)
    assert _feed(sink, ("actions", a), ("shadow", s)) == []
    assert sink.store.size == 2 and sink.store.has_id(s["id"])
    assert [e.id for e in sink.store.decisions()] == [a["id"]]  # the shadow entry is not a decision
    assert not is_action(topics.topic("shadow"), s) and is_action(topics.topic("actions"), s)


def test_shadow_gate_records_are_not_logged_and_junk_is_refused(sink):
    gate = shadow_gate({"kind": "gate", "scope": "checkout", "release": "", "verdict": "pending",
                        "ts": "2026-01-01T00:00:00.000Z", "policy_hash": CANDIDATE_HASH})
    s = _shadow(1)
    # action-shaped but not a shadow decision (the id no longer hashes it; a permit field): an action
    # on the wrong topic
    tampered = dict(s, action="promote")
    signed = factory.action(load_signing_key("decider", sink.keys), 2)
    assert _feed(sink, ("shadow", gate), ("shadow", tampered), ("shadow", dict(s, permit=None)),
                 ("shadow", {"id": "x", "note": "anything"}), ("shadow", signed)) == \
        ["action_on_shadow", "action_on_shadow", "not_a_shadow_decision", "action_on_shadow"]
    assert sink.store.size == 0


def test_a_shadow_decision_on_gw_actions_is_refused_as_an_unsigned_action(sink):
    assert _feed(sink, ("actions", _shadow(3))) == ["action refused: id is not the content hash of the action"]
    assert sink.store.size == 0


def test_a_bundle_carrying_shadow_decisions_verifies_with_the_same_decision_root(tmp_path):
    keys = factory.keys(tmp_path)
    plain = factory.log_with_quorum(str(tmp_path / "plain.db"), keys, n_actions=3)
    want_root = decision_root((e.id, e.leaf) for e in plain.decisions())
    plain.close()

    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, n_actions=3)
    store.append_batch([candidate_from_record("shadow", "gw.shadow", orjson.dumps(_shadow(i))) for i in range(4)])
    out = factory.export_cosigned(store, keys, tmp_path / "b.tar.gz", factory.write_policy_dir(tmp_path / "p"))
    store.close()
    rep = verify_bundle(out, trust_from_dir(keys))
    assert rep.pinned
    files, _ = read_bundle(out)
    assert rep.actions == 3 and rep.size == len(files["entries.ndjson"].splitlines())
    assert sum(b'"gw.shadow"' in line for line in files["entries.ndjson"].splitlines()) == 4
    assert rep.decision_root == base64.b64encode(want_root).decode()
