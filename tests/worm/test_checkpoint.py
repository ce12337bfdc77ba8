"""Checkpoints as signed notes, cosignatures and the k-of-N policy."""
from __future__ import annotations

import base64
import hashlib

import pytest
from nacl.signing import SigningKey

from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import merkle

ORIGIN = "example.test/log"


def _keys(seed: int):
    return SigningKey(hashlib.sha256(b"k%d" % seed).digest())


@pytest.fixture
def setup():
    log = _keys(0)
    ws = {f"witness-{i}": _keys(i) for i in (1, 2, 3)}
    pol = cp.make_policy(ORIGIN, log.verify_key, {n: k.verify_key for n, k in ws.items()})
    return log, ws, pol


def test_body_format_and_roundtrip():
    c = cp.Checkpoint(ORIGIN, 5, merkle.root([b"a"] * 5))
    body = c.body()
    assert body == f"{ORIGIN}\n5\n{base64.b64encode(c.root).decode()}\n"
    assert cp.parse_checkpoint(body) == c
    for bad in (f"{ORIGIN}\n05\nAAAA\n", f"{ORIGIN}\n5\n{base64.b64encode(b'x').decode()}\n", f"{ORIGIN}\n5\n",
                f"{ORIGIN}\n-1\n{base64.b64encode(c.root).decode()}\n"):
        with pytest.raises(cp.NoteError):
            cp.parse_checkpoint(bad)


def test_key_id_follows_signed_note_spec():
    sk = _keys(9)
    pub = sk.verify_key.encode()
    assert cp.note_key_id("n", pub) == hashlib.sha256(b"n\n\x01" + pub).digest()[:4]
    v = cp.parse_vkey(cp.vkey("n", sk.verify_key))
    assert v.name == "n" and v.key.encode() == pub
    with pytest.raises(cp.NoteError):
        cp.parse_vkey(cp.vkey("n", sk.verify_key).replace("n+", "m+", 1))


def test_sign_cosign_quorum(setup):
    log, ws, pol = setup
    body = cp.Checkpoint(ORIGIN, 3, merkle.root([b"1", b"2", b"3"])).body()
    note = cp.sign(body, ORIGIN, log)
    text = note.text()
    assert text.startswith(body + "\n\u2014 " + ORIGIN + " ")
    parsed = cp.parse_note(text)
    assert parsed.body == body and pol.evaluate(parsed) == (True, False, [])
    one = cp.add_signature(parsed, "witness-1", ws["witness-1"])
    assert pol.evaluate(one) == (True, False, ["witness-1"])
    two = cp.add_signature(one, "witness-3", ws["witness-3"])
    assert pol.accepts(cp.parse_note(two.text()))
    # the same witness twice still counts once
    again = cp.add_signature(one, "witness-1", ws["witness-1"])
    assert not pol.accepts(again)
    # a wrong key under a witness's name does not count
    forged = cp.add_signature(one, "witness-2", _keys(42))
    assert not pol.accepts(forged)
    # a tampered body invalidates every signature
    t = cp.Note(body.replace("\n3\n", "\n4\n"), two.signatures)
    assert pol.evaluate(t) == (False, False, [])


def test_policy_text_roundtrip(setup):
    _, _, pol = setup
    text = pol.text()
    assert "quorum witnesses" in text and "group witnesses 2 witness-1 witness-2 witness-3" in text
    again = cp.parse_policy("# comment\n" + text)
    assert again.text() == text
    with pytest.raises(cp.NoteError):
        cp.parse_policy(text.replace("group witnesses 2", "group witnesses 4"))
    with pytest.raises(cp.NoteError):
        cp.parse_policy(text.replace("quorum witnesses", "quorum nobody"))
    # a member listed twice would let one witness's signature meet a 2-of-N quorum alone
    with pytest.raises(cp.NoteError, match="listed twice"):
        cp.parse_policy(text.replace("witness-1 witness-2 witness-3", "witness-1 witness-3 witness-3"))


def test_parse_note_rejects_garbage():
    for bad in ("", "abc", "body\n\n", "body\n\nno dash line\n", "body\n\n\u2014 n !!!\n"):
        with pytest.raises(cp.NoteError):
            cp.parse_note(bad)
