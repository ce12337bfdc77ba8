from nacl.signing import SigningKey

from gatewatch.processors.canonical import content_id
from gatewatch.sinks.executor import ledger as L
from gatewatch.sinks.executor.receipts import seal, verify_chain
from tests.executor.helpers import action_record, permitted, trusted

DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)


def _ledger(path):
    return L.Ledger(path, lambda body: seal(EXECUTOR, body))


def _intent(rec):
    return {"type": "INTENT", "action_id": rec["id"], "scope": rec["scope"]}


def test_admit_result_duplicate_and_restart(tmp_path):
    led = _ledger(tmp_path / "l.db")
    rec = permitted(DECIDER, action_record(1))
    state, row, receipt = led.admit(rec, content_id(rec), "dry-run", _intent(rec))
    assert state == L.NEW and receipt["seq"] == 1 and "prev" not in receipt
    assert led.admit(rec, content_id(rec), "dry-run", _intent(rec))[0] == L.IN_FLIGHT
    assert [r.action_id for r in led.in_flight()] == [rec["id"]]
    res = led.record_result(rec["id"], {"type": "RESULT", "action_id": rec["id"], "status": "success"})
    assert res["prev"] == receipt["id"] and res["seq"] == 2
    assert led.record_result(rec["id"], {"type": "RESULT", "status": "success"}) is None
    led.close()
    led = _ledger(tmp_path / "l.db")  # restart: state and chain head survive
    assert led.admit(rec, content_id(rec), "dry-run", _intent(rec))[0] == L.DUPLICATE
    assert led.in_flight() == []
    rec2 = permitted(DECIDER, action_record(2))
    _, _, r3 = led.admit(rec2, content_id(rec2), "dry-run", _intent(rec2))
    assert r3["seq"] == 3 and r3["prev"] == res["id"]
    chain = [__import__("orjson").loads(r.body) for r in led.receipts_after(0)]
    assert verify_chain(chain, trusted(EXECUTOR)) is None


def test_nonce_replay_and_refusals_once(tmp_path):
    led = _ledger(tmp_path / "l.db")
    a = permitted(DECIDER, action_record(1))
    b = permitted(DECIDER, action_record(2))
    b["permit"]["nonce"] = a["permit"]["nonce"]
    led.admit(a, content_id(a), "dry-run", _intent(a))
    assert led.admit(b, content_id(b), "dry-run", _intent(b))[0] == L.REPLAYED_NONCE
    assert led.refuse("x" * 64, b["id"], {"type": "REFUSED", "reason": "bad_signature"}) is not None
    assert led.refuse("x" * 64, b["id"], {"type": "REFUSED", "reason": "bad_signature"}) is None
    assert led.head()[0] == 2


def test_published_watermark_only_moves_forward(tmp_path):
    led = _ledger(tmp_path / "l.db")
    led.set_published_seq(5)
    led.set_published_seq(3)
    assert led.published_seq() == 5
