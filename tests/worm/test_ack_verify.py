"""`gatewatch verify` re-checks every confirmed delivery ack against the pinned recipient keys
(<trusted keys>/recipient-<name>.pub): a tampered or executor-forged confirmation fails, naming the
entry and the receipt, with the documented exit codes (1 invalid, 3 untrusted signer)."""
from __future__ import annotations

import re
import shutil

import orjson
from nacl.signing import SigningKey

from gatewatch.processors.acks import sign_ack
from gatewatch.processors.signing import key_id
from gatewatch.sinks.executor.receipts import seal
from gatewatch.sinks.worm.evidence import read_bundle, write_bundle
from gatewatch.sinks.worm.store import candidate_from_record
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from tests.worm import factory

ACTION_ID = "a" * 64
IDEM = "incident-1:rollback"


def _result(executor: SigningKey, status: str = "success", **delivery) -> dict:
    return seal(executor, {"type": "RESULT", "action_id": ACTION_ID, "scope": "checkout", "action": "rollback",
                           "backend": "deploy", "idempotency_key": IDEM, "status": status, "attempts": 1,
                           "duration_ms": 3, "response_digest": "0" * 64, "run": 1, "seq": 99,
                           "ts": "2026-01-01T00:00:09.000Z", **delivery})


def _confirmed(recipient: SigningKey, outcome: str = "success", claim: SigningKey | None = None) -> dict:
    body = sign_ack(recipient, ACTION_ID, IDEM, outcome, "deploy", "2026-01-01T00:00:09.100Z")
    return {"delivery": "confirmed", "ack": body["ack"], "ack_sig": body["sig"],
            "ack_key_id": key_id((claim or recipient).verify_key)}


def _bundle(tmp_path, make_receipt) -> tuple[str, str]:
    """(bundle path, keys dir): a log of two actions plus one RESULT made by make_receipt(executor, recipient)."""
    keys = factory.keys(tmp_path)
    init_keys(keys, roles=("recipient-deploy",))
    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, n_actions=2)
    receipt = make_receipt(load_signing_key("executor", keys), load_signing_key("recipient-deploy", keys))
    store.append_batch([candidate_from_record("receipts", "gw.receipts", orjson.dumps(receipt))])
    out = factory.export_cosigned(store, keys, tmp_path / "b.tar.gz", factory.write_policy_dir(tmp_path / "p"))
    store.close()
    return out, keys


def test_a_confirmed_ack_verifies_offline_against_the_pinned_recipient(tmp_path, capsys):
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, **_confirmed(rk)))
    assert main(["verify", out, "--trusted-keys", keys]) == 0
    printed = capsys.readouterr().out
    assert "deliveries: 1 recipient acks verified, 0 unconfirmed" in printed
    assert "verified against trusted keys" in printed
    # without anchors the bundle's own recipient key checks the ack: self-consistent, never "verified"
    assert main(["verify", out]) == 4
    assert "deliveries: 1 recipient acks verified" in capsys.readouterr().out


def test_an_unconfirmed_delivery_is_reported_not_refused(tmp_path, capsys):
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, delivery="unconfirmed", delivery_reason="bad_signature"))
    assert main(["verify", out, "--trusted-keys", keys]) == 0
    assert "deliveries: 0 recipient acks verified, 1 unconfirmed" in capsys.readouterr().out


def test_a_tampered_ack_in_the_bundle_fails_naming_the_entry(tmp_path, capsys):
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, **_confirmed(rk)))
    files, _ = read_bundle(out)
    lines = files["entries.ndjson"].splitlines()
    last = orjson.loads(lines[-1])
    last["value"]["ack"]["outcome"] = "failure"
    files["entries.ndjson"] = b"".join(line + b"\n" for line in [*lines[:-1], orjson.dumps(last)])
    write_bundle(files, out)
    assert main(["verify", out, "--trusted-keys", keys]) == 1
    assert f"entry {len(lines) - 1}:" in capsys.readouterr().err


def test_a_confirmation_the_executor_forged_fails_naming_the_receipt(tmp_path, capsys):
    """The executor's key seals the receipt, but the ack's signature is not the recipient's."""
    impostor = SigningKey(b"\x09" * 32)
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, **_confirmed(impostor, claim=rk)))
    assert main(["verify", out, "--trusted-keys", keys]) == 1
    assert re.search(r"verify failed: entry 7: receipt [0-9a-f]{64}: delivery ack refused: bad_signature$",
                     capsys.readouterr().err.strip())


def test_a_genuine_ack_of_another_outcome_does_not_confirm_a_failure(tmp_path, capsys):
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, status="failure", **_confirmed(rk, outcome="success")))
    assert main(["verify", out, "--trusted-keys", keys]) == 1
    assert "delivery ack refused: mismatch_outcome" in capsys.readouterr().err


def test_an_ack_by_a_recipient_key_that_is_not_pinned_is_untrusted(tmp_path, capsys):
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, **_confirmed(rk)))
    verifier = tmp_path / "verifier-keys"
    shutil.copytree(keys, verifier, ignore=shutil.ignore_patterns("*.key", "recipient-*"))
    assert main(["verify", out, "--trusted-keys", str(verifier)]) == 3
    assert "recipient-deploy key is not a pinned recipient key" in capsys.readouterr().err


def test_an_ack_is_bound_to_the_pinned_key_of_its_receipts_backend(tmp_path, capsys):
    """A genuine ack signed by another pinned recipient (the pager's key on a deploy receipt) confirms
    nothing: the ack key must be recipient-<receipt.backend>."""
    pager = SigningKey(b"\x07" * 32)
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, **_confirmed(pager)))
    (tmp_path / "keys" / "recipient-pager.pub").write_text(pager.verify_key.encode().hex() + "\n")
    assert main(["verify", out, "--trusted-keys", keys]) == 1
    assert "delivery ack refused: signed by recipient-pager, not by recipient-deploy of backend 'deploy'" \
        in capsys.readouterr().err


def test_an_ack_on_a_receipt_of_another_backend_confirms_nothing(tmp_path, capsys):
    """The deploy recipient's genuine ack copied onto a receipt of a backend with no pinned key."""
    out, keys = _bundle(tmp_path, lambda ex, rk: _result(ex, backend="pager", **_confirmed(rk)))
    assert main(["verify", out, "--trusted-keys", keys]) == 1
    assert "signed by recipient-deploy, not by recipient-pager of backend 'pager'" in capsys.readouterr().err
