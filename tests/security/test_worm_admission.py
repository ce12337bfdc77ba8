"""Issue 19, critical 4: the WORM sink admits only signed, content-addressed records.

The sink's own batch function (WormSink.process) runs on fake messages, no broker: refused records
go to the DLQ with their reason and never occupy an id, so the genuine record arriving after a
forged one with its id is appended, and the log still exports a bundle that verifies."""
from __future__ import annotations

import orjson
from nacl.signing import SigningKey

from gatewatch.processors.canonical import content_id
from gatewatch.processors.signing import issue_permit
from gatewatch.sinks.executor.receipts import seal
from gatewatch.streams.runtime.keys import load_signing_key
from tests.worm import factory
from tests.worm.fake_sink import feed as _feed


def _genuine(sink, i=0):
    return factory.action(load_signing_key("decider", sink.keys), i)


def _receipt(sink, action_id, key=None):
    return seal(key or load_signing_key("executor", sink.keys),
                {"type": "INTENT", "action_id": action_id, "seq": 1, "ts": "2026-01-01T00:00:00.005Z"})


def test_control_genuine_action_and_receipt_are_appended(sink):
    a = _genuine(sink)
    assert _feed(sink, ("actions", a), ("receipts", _receipt(sink, a["id"]))) == []
    assert sink.store.size == 2 and sink.store.has_id(a["id"])


def test_forged_action_with_a_genuine_id_cannot_take_the_id(sink):
    a = _genuine(sink)
    body = {k: v for k, v in a.items() if k != "permit"}
    body["values"] = {"err5xx_rate": 0.0}  # not an id field: the id stays the genuine one
    forged = dict(body, permit=issue_permit(SigningKey.generate(), body, factory.T0 + 300_000))
    assert _feed(sink, ("actions", forged)) == ["permit refused: unknown_key"]
    assert not sink.store.has_id(a["id"]) and sink.store.size == 0
    assert _feed(sink, ("actions", a)) == []  # the genuine record arriving after it is appended
    assert orjson.loads(next(sink.store.entries()).leaf)["values"] == a["values"]


def test_altered_action_under_the_genuine_permit_is_refused(sink):
    a = _genuine(sink)
    assert _feed(sink, ("actions", dict(a, values={"err5xx_rate": 0.0}))) == ["permit refused: mismatch_digest"]


def test_action_whose_id_is_not_its_content_hash_is_refused(sink):
    """Signed by the genuine decider, but the id names another action's content."""
    decider = load_signing_key("decider", sink.keys)
    rec = {k: v for k, v in _genuine(sink).items() if k != "permit"}
    rec["id"] = "f" * 64
    rec["permit"] = issue_permit(decider, rec, factory.T0 + 300_000)
    assert _feed(sink, ("actions", rec)) == ["action refused: id is not the content hash of the action"]


def test_junk_action_and_receipt_with_new_ids_are_refused(sink):
    reasons = _feed(sink, ("actions", {"id": "junk-1", "kind": "abort", "action": "rollback"}),
                    ("receipts", {"id": "junk-2", "type": "RESULT", "action_id": "x"}),
                    ("receipts", {"id": "junk-3", "note": "anything"}))
    assert reasons == ["action refused: no policy hash", "receipt refused: bad_id", "not_a_receipt"]
    assert sink.store.size == 0


def test_forged_receipt_with_a_genuine_id_cannot_take_the_id(sink):
    a = _genuine(sink)
    good = _receipt(sink, a["id"])
    forged = dict(good, status="success", type="RESULT")
    forged_other_key = _receipt(sink, a["id"], key=SigningKey.generate())
    assert _feed(sink, ("receipts", forged), ("receipts", forged_other_key)) == \
        ["receipt refused: bad_id", "receipt refused: unknown_key"]
    assert _feed(sink, ("receipts", good)) == [] and sink.store.has_id(good["id"])


def test_records_on_the_wrong_topic_are_refused(sink):
    a = _genuine(sink)
    r = _receipt(sink, a["id"])
    assert _feed(sink, ("receipts", a), ("actions", r), ("trajectories", a)) == \
        ["action_on_receipts", "receipt_on_actions"]  # on gw.trajectories only diamond candidates are logged
    assert sink.store.size == 0


def test_diamond_candidate_needs_its_content_id(sink):
    d = {"type": "diamond_candidate", "tenant": "t1", "trajectory": "tr9", "ts": "2026-01-01T00:00:00.000Z"}
    bad = dict(d, id="d" * 64)
    good = dict(d, id=content_id(d))
    assert _feed(sink, ("trajectories", bad), ("trajectories", good)) == ["bad_id: not the content hash of the record"]
    assert sink.store.size == 1


def test_log_after_refusals_still_exports_a_verified_bundle(sink, tmp_path):
    from gatewatch.sinks.worm.evidence import verify_bundle
    from gatewatch.sinks.worm.trust import trust_from_dir
    a = _genuine(sink)
    forged = dict(a, scope="payments")
    _feed(sink, ("actions", forged), ("actions", {"id": "junk", "kind": "abort"}), ("actions", a),
          ("receipts", _receipt(sink, a["id"], key=SigningKey.generate())), ("receipts", _receipt(sink, a["id"])))
    assert sink.store.size == 2
    out = factory.export_cosigned(sink.store, sink.keys, tmp_path / "b.tar.gz")
    assert verify_bundle(out, trust_from_dir(sink.keys)).pinned
