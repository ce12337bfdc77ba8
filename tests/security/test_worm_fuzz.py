"""Anyone who can write gw.actions, gw.receipts, gw.trajectories or gw.checkpoints can send any JSON.
The WORM sink and the witnesses may only refuse it (gw.dlq with a reason, `Refused`), never raise:
a record that raises stops the stage before it commits, so it is read again at every restart and
nothing after it is ever logged. Each example takes a genuine record, puts a random JSON value
into one of its fields (its content id recomputed, so the record reaches the later checks: a
receipt whose `executor` was a list crashed the sink that way), and feeds it."""
from __future__ import annotations

import base64

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.processors.canonical import content_id
from gatewatch.sinks.executor.receipts import seal
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import merkle
from gatewatch.sinks.worm.witness import Refused, WitnessState, review
from gatewatch.streams.runtime.keys import load_signing_key
from tests.security.test_fuzz import EXAMPLES, json_value
from tests.worm import factory
from tests.worm.fake_sink import feed

FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FIELDS = ["id", "type", "kind", "action", "scope", "rule", "ts", "policy_hash", "values", "permit", "executor",
          "sig", "seq", "prev", "action_id", "signature", "tenant", "release"]


def genuine(sink, which: str) -> tuple[str, dict]:
    if which == "action":
        return "actions", factory.action(load_signing_key("decider", sink.keys), 1)
    if which == "receipt":
        return "receipts", seal(load_signing_key("executor", sink.keys),
                                {"type": "INTENT", "action_id": "a" * 64, "seq": 1, "ts": "2026-01-01T00:00:00.005Z"})
    d = {"type": "diamond_candidate", "tenant": "t1", "trajectory": "tr1", "ts": "2026-01-01T00:00:00.000Z"}
    return "trajectories", dict(d, id=content_id(d))


@FUZZ
@given(which=st.sampled_from(["action", "receipt", "diamond"]), field=st.sampled_from(FIELDS), value=json_value,
       nested=st.booleans(), rehash=st.booleans())
def test_the_sink_refuses_what_it_cannot_log_and_never_raises(sink, which, field, value, nested, rehash):
    kind, rec = genuine(sink, which)
    if nested and isinstance(rec.get("permit"), dict):
        rec["permit"] = dict(rec["permit"], **{field: value})
    else:
        rec[field] = value
    if rehash:
        rec["id"] = content_id({k: v for k, v in rec.items() if k not in ("id", "sig", "permit")})
    size = sink.store.size
    reasons = feed(sink, (kind, rec))
    assert all(isinstance(r, str) and r for r in reasons)
    # refused: not logged; admitted: logged once (a record already logged is deduplicated by id)
    assert sink.store.size == size if reasons else sink.store.size in (size, size + 1)



@FUZZ
@given(proofs=json_value, extra=st.dictionaries(st.sampled_from(["kind", "note", "origin", "size"]), json_value,
                                                max_size=2))
def test_a_witness_refuses_malformed_checkpoint_messages_and_never_raises(proofs, extra):
    from nacl.signing import SigningKey
    key = SigningKey(b"\x07" * 32)
    origin = cp.DEFAULT_ORIGIN
    verifier = cp.Verifier(origin, cp.note_key_id(origin, key.verify_key.encode()), key.verify_key)
    leaves = [b"e%d" % i for i in range(9)]
    note = cp.sign(cp.Checkpoint(origin, 9, merkle.root(leaves)).body(), origin, key)
    good = {str(5): [base64.b64encode(h).decode() for h in merkle.consistency_proof(leaves, 5)]}
    doc = {"kind": "log", "note": note.text(), "proofs": proofs, **extra}
    try:
        review(orjson.loads(orjson.dumps(doc)), WitnessState(origin, 5, merkle.root(leaves[:5])), verifier)
    except Refused as e:
        assert str(e)
    assert review({"kind": "log", "note": note.text(), "proofs": good},
                  WitnessState(origin, 5, merkle.root(leaves[:5])), verifier)[1].size == 9
