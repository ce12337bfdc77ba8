"""The WORM sink logs gw.shadow (live policy shadow, issue 23): shadow decisions are admitted there by
their shape (marked, no permit, id = content hash of the rest), never count as actions (permits,
decision root), and the evidence bundle carrying them still verifies. Shadow gate records are
status and not logged; anything else on gw.shadow is refused with a reason."""
from __future__ import annotations

import base64

import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.processors.shadow import shadow_decision, shadow_gate
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.evidence import build_files, verify_bundle, write_bundle
from gatewatch.sinks.worm.sink import SinkConfig, WormSink
from gatewatch.sinks.worm.store import candidate_from_record, decision_root, is_action
from gatewatch.sinks.worm.trust import trust_from_dir
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, public_keys
from tests.worm import factory

CANDIDATE_HASH = "c" * 64


class Msg:
    def __init__(self, kind: str, value, offset: int):
        self._t, self._o, self._v = topics.topic(kind), offset, orjson.dumps(value)

    def topic(self):
        return self._t

    def partition(self):
        return 0

    def offset(self):
        return self._o

    def value(self):
        return self._v


class FakeWorker:
    def __init__(self):
        self.dlqs: list[str] = []

    def dlq(self, topic, partition, offset, reason, value, detail=""):
        self.dlqs.append(reason)


@pytest.fixture
def sink(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEWATCH_TOPIC_PREFIX", raising=False)
    keys = str(tmp_path / "keys")
    init_keys(keys)
    s = WormSink(SinkConfig(db=str(tmp_path / "w.db"), keys_dir=keys))
    s.worker, s.keys = FakeWorker(), keys
    yield s
    s.store.close()


def _feed(sink, *items):
    sink.worker.dlqs.clear()
    sink.process(sink.worker, [Msg(k, v, i) for i, (k, v) in enumerate(items)])
    return list(sink.worker.dlqs)


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
    note = cp.sign(cp.Checkpoint(cp.DEFAULT_ORIGIN, store.size, store.root()).body(), cp.DEFAULT_ORIGIN,
                   load_signing_key("log", keys))
    store.add_note("log", cp.DEFAULT_ORIGIN, store.size, factory.cosign(note, ["witness-1", "witness-2"], keys).text())
    files = build_files(store, cp.default_policy(keys_path=keys), public_keys(keys),
                        factory.write_policy_dir(tmp_path / "p"), log_key=load_signing_key("log", keys))
    store.close()
    out = str(tmp_path / "b.tar.gz")
    write_bundle(files, out)
    rep = verify_bundle(out, trust_from_dir(keys))
    assert rep.pinned
    assert rep.actions == 3 and rep.size == len(files["entries.ndjson"].splitlines())
    assert sum(b'"gw.shadow"' in line for line in files["entries.ndjson"].splitlines()) == 4
    assert rep.decision_root == base64.b64encode(want_root).decode()
