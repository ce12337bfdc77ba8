"""Witness review rules (no broker), and the evidence/verify CLI end to end on a store."""
from __future__ import annotations

import base64

import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import merkle
from gatewatch.sinks.worm.witness import Refused, WitnessState, review
from gatewatch.streams.cli.main import main
from tests.worm import factory

ORIGIN = cp.DEFAULT_ORIGIN
LOG_KEY = SigningKey(b"\x07" * 32)
VERIFIER = cp.Verifier(ORIGIN, cp.note_key_id(ORIGIN, LOG_KEY.verify_key.encode()), LOG_KEY.verify_key)
LEAVES = [b"e%d" % i for i in range(20)]


def msg(size, leaves=LEAVES, proofs_from=(), key=LOG_KEY):
    note = cp.sign(cp.Checkpoint(ORIGIN, size, merkle.root(leaves[:size])).body(), ORIGIN, key)
    proofs = {str(s): [base64.b64encode(h).decode() for h in merkle.consistency_proof(leaves[:size], s)]
              for s in proofs_from}
    return {"kind": "log", "origin": ORIGIN, "size": size, "note": note.text(), "proofs": proofs}


def state(size, leaves=LEAVES):
    return WitnessState(ORIGIN, size, merkle.root(leaves[:size]))


def test_first_checkpoint_is_trusted_then_consistency_is_required():
    note, c = review(msg(5), WitnessState(), VERIFIER)
    assert c.size == 5 and note.body == c.body()
    assert review(msg(9, proofs_from=(5,)), state(5), VERIFIER)[1].size == 9
    with pytest.raises(Refused, match="no_consistency_proof"):
        review(msg(9, proofs_from=(4,)), state(5), VERIFIER)


def test_a_witness_that_missed_checkpoints_uses_its_own_size():
    assert review(msg(17, proofs_from=(12, 3)), state(3), VERIFIER)[1].size == 17


def test_forks_and_forgeries_are_refused():
    forked = LEAVES[:4] + [b"evil"] + LEAVES[5:]
    with pytest.raises(Refused, match="inconsistent"):
        review(msg(9, leaves=forked, proofs_from=(5,)), state(5), VERIFIER)
    with pytest.raises(Refused, match="fork"):
        review(msg(5, leaves=forked), state(5), VERIFIER)
    with pytest.raises(Refused, match="bad_log_signature"):
        review(msg(9, proofs_from=(5,), key=SigningKey(b"\x09" * 32)), state(5), VERIFIER)
    with pytest.raises(Refused, match="malformed"):
        review({"kind": "log", "note": "junk"}, state(5), VERIFIER)


def test_stale_and_foreign_messages_are_skipped():
    assert review(msg(3), state(5), VERIFIER) is None
    assert review({"kind": "cosigned", "note": msg(5)["note"]}, state(5), VERIFIER) is None
    other = cp.Verifier("other/log", VERIFIER.key_id, VERIFIER.key)
    assert review(msg(6), WitnessState(), other) is None


def test_state_file_roundtrip(tmp_path):
    p = tmp_path / "w.state"
    s = state(7)
    s.save(p)
    assert WitnessState.load(p) == s
    assert WitnessState.load(tmp_path / "none") == WitnessState()


def test_evidence_and_verify_cli(tmp_path, capsys, monkeypatch):
    keys = factory.keys(tmp_path)
    monkeypatch.setenv("GATEWATCH_KEYS_DIR", keys)
    db = str(tmp_path / "w.db")
    factory.log_with_quorum(db, keys, 4).close()
    pol = factory.write_policy_dir(tmp_path / "pol")
    rep = tmp_path / "report.md"
    rep.write_text("# drill\n")
    out = str(tmp_path / "e.tar.gz")
    assert main(["evidence", "--db", db, "--out", out, "--policy", pol, "--include", str(rep)]) == 0
    assert main(["verify", out]) == 4  # self-consistent only: no anchors
    assert main(["verify", out, "--trusted-keys", keys]) == 0
    printed = capsys.readouterr().out
    assert "INV1 EvidenceBound: ok" in printed and "4 action permits valid" in printed
    assert main(["worm", "status", "--db", db, "--json"]) == 0
    st = orjson.loads(capsys.readouterr().out)
    assert st["size"] == st["quorum_checkpoint"] == st["last_checkpoint"] and st["witnesses"] == ["witness-1", "witness-3"]
    assert main(["worm", "policy"]) == 0
    assert "quorum witnesses" in capsys.readouterr().out


def test_a_policy_naming_one_key_twice_is_refused(tmp_path):
    """`witness a K` and `witness b K` in a 2-of-2 group: one signature met the quorum. Refused in a
    policy file, when a policy is built, and from a keys directory where one key was copied over
    another (the sink and the exporter would run on, and every bundle would fail verify)."""
    from gatewatch.streams.runtime.errors import GatewatchError
    w2 = SigningKey(b"\x08" * 32)
    lines = [f"log {cp.vkey(ORIGIN, LOG_KEY.verify_key)}", f"witness a {cp.vkey('a', w2.verify_key)}",
             f"witness b {cp.vkey('b', w2.verify_key)}", "group g 2 a b", "quorum g"]
    with pytest.raises(cp.NoteError, match="witness b: the same key as witness a"):
        cp.parse_policy("\n".join(lines) + "\n")
    with pytest.raises(cp.NoteError, match="witness a: the same key as the log"):
        cp.make_policy(ORIGIN, LOG_KEY.verify_key, {"a": LOG_KEY.verify_key, "b": w2.verify_key}, 2)
    keys = factory.keys(tmp_path)
    for ext in ("pub", "key"):
        (tmp_path / "keys" / f"witness-2.{ext}").write_bytes((tmp_path / "keys" / f"witness-1.{ext}").read_bytes())
    with pytest.raises(GatewatchError, match="witness witness-2: the same key as witness witness-1"):
        cp.default_policy(keys_path=keys)


@pytest.mark.parametrize("text", [b"{", b"[]", b'{"origin": "o", "size": 3}', b'{"origin": "o", "size": "3", "root": ""}',
                                  b'{"origin": "o", "size": 3, "root": "%%%"}'])
def test_an_unreadable_state_file_stops_the_witness_in_one_line(tmp_path, text):
    """A witness that forgot its size would cosign whatever the log says next: it must not start."""
    from gatewatch.streams.runtime.errors import GatewatchError
    p = tmp_path / "w1.json"
    p.write_bytes(text)
    with pytest.raises(GatewatchError, match=r"witness state .*w1\.json: unreadable") as e:
        WitnessState.load(p)
    assert "\n" not in str(e.value)
