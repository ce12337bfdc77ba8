"""Issue 19, critical 1-3: `gatewatch verify` trusts only the verifier's anchors.

Each attack from the review is rebuilt and refused; next to it the control the same code accepts.
Exit codes: 0 verified, 1 tampered, 3 untrusted signers, 4 self-consistent but not pinned."""
from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import load_signing_key, load_verify_key
from tests.security import helpers


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust")
    genuine = helpers.keys(tmp / "genuine")
    attacker = helpers.keys(tmp / "attacker")
    return tmp, genuine, attacker


def _verify(capsys, *argv):
    code = main(["verify", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_control_genuine_bundle_is_verified(env, capsys):
    tmp, genuine, _ = env
    b = helpers.bundle(tmp, "genuine.tar.gz", genuine)
    code, out, err = _verify(capsys, b, "--trusted-keys", genuine)
    assert code == 0, err
    assert "verified against trusted keys" in out and "INV1 EvidenceBound: ok" in out


def test_attack1_own_witnesses_listed_in_the_bundle_are_refused(env, capsys):
    """Holder of the log key drops the rollback actions, lists its own witnesses and cosigns."""
    tmp, genuine, attacker = env
    evil = {f"evil-{i}": SigningKey.generate() for i in (1, 2, 3)}
    b = helpers.bundle(tmp, "own-witnesses.tar.gz", genuine, witnesses=evil, drop_actions=True)
    code, out, err = _verify(capsys, b, "--trusted-keys", genuine)
    assert code == 3 and out == ""
    assert err.strip() == ("gatewatch: error: verify failed: untrusted signers: file policy/witness.policy: "
                           "witness 'evil-1' is not a pinned witness (key not trusted)")


def test_attack1_pinned_witness_names_with_other_keys_are_refused(env, capsys):
    tmp, genuine, attacker = env
    fake = {r: load_signing_key(r, attacker) for r in cp.WITNESS_ROLES}
    b = helpers.bundle(tmp, "renamed-witnesses.tar.gz", genuine, witnesses=fake, drop_actions=True)
    code, _, err = _verify(capsys, b, "--trusted-keys", genuine)
    assert code == 3 and "witness 'witness-1' is not a pinned witness" in err


def test_attack1_fresh_log_key_is_refused(env, capsys):
    tmp, genuine, attacker = env
    b = helpers.bundle(tmp, "fresh-log.tar.gz", genuine, log_dir=attacker)
    code, _, err = _verify(capsys, b, "--trusted-keys", genuine)
    assert code == 3 and "differs from the pinned log" in err


def test_attack2_quorum_downgrade_is_refused(env, capsys):
    """The bundle's policy lowered from 2-of-3 to 1-of-3 with one valid (genuine) cosignature."""
    tmp, genuine, _ = env
    b = helpers.bundle(tmp, "one-of-three.tar.gz", genuine, k=1, signers=("witness-1",))
    code, _, err = _verify(capsys, b, "--trusted-keys", genuine)
    assert code == 3
    assert "quorum 1-of-3 is lower than the pinned 2-of-3 (downgrade refused)" in err
    # the control: the same bundle is accepted by a verifier who pins 1-of-3 itself
    code, out, err = _verify(capsys, b, "--trusted-keys", genuine, "--quorum", "1")
    assert code == 0, err


def test_attack2_downgrade_against_a_pinned_policy_file(env, capsys, tmp_path):
    tmp, genuine, _ = env
    pinned = tmp_path / "trust.policy"
    pinned.write_text(cp.default_policy(keys_path=genuine, k=2).text())
    b = helpers.bundle(tmp, "one-of-three-b.tar.gz", genuine, k=1, signers=("witness-2",))
    code, _, err = _verify(capsys, b, "--trusted-keys", genuine, "--trust-policy", str(pinned))
    assert code == 3 and "downgrade refused" in err
    good = helpers.bundle(tmp, "two-of-three-b.tar.gz", genuine)
    assert _verify(capsys, good, "--trusted-keys", genuine, "--trust-policy", str(pinned))[0] == 0


def test_attack2_a_pinned_quorum_is_never_met_by_one_cosignature(env, capsys):
    """Even with the pinned policy text copied into the bundle, one cosignature is not 2-of-3."""
    tmp, genuine, _ = env
    pinned = cp.default_policy(keys_path=genuine, k=2).text().encode()
    b = helpers.bundle(tmp, "one-sig.tar.gz", genuine, k=1, signers=("witness-1",),
                       patch=lambda files: files.update({"policy/witness.policy": pinned}))
    code, _, err = _verify(capsys, b, "--trusted-keys", genuine)
    assert code == 1 and "witness quorum not met (2-of-3 required, valid: witness-1)" in err


def test_attack3_wholesale_resign_is_not_called_verified(env, capsys):
    tmp, genuine, attacker = env
    b = helpers.bundle(tmp, "resigned.tar.gz", attacker)  # fully self-consistent, every key the attacker's
    code, out, _ = _verify(capsys, b)
    assert code == 4
    assert "self-consistent, NOT verified against trusted keys" in out
    assert "verified against trusted keys" not in out.replace("NOT verified against trusted keys", "")
    assert "INV1" not in out
    code, out, err = _verify(capsys, b, "--trusted-keys", genuine)
    assert code == 3 and out == "" and "untrusted signers" in err


def test_attack3_unpinned_genuine_bundle_is_also_only_self_consistent(env, capsys):
    tmp, genuine, _ = env
    b = helpers.bundle(tmp, "genuine-unpinned.tar.gz", genuine)
    assert _verify(capsys, b)[0] == 4


def test_pinned_keys_differing_decider_is_refused(env, capsys, tmp_path):
    """Anchors say which decider signs permits: a bundle under another decider is untrusted."""
    tmp, genuine, attacker = env
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for role in ("log", *cp.WITNESS_ROLES, "executor"):
        (mixed / f"{role}.pub").write_text(load_verify_key(role, genuine).encode().hex() + "\n")
    (mixed / "decider.pub").write_text(load_verify_key("decider", attacker).encode().hex() + "\n")
    b = helpers.bundle(tmp, "genuine-2.tar.gz", genuine)
    code, _, err = _verify(capsys, b, "--trusted-keys", str(mixed))
    assert code == 3 and "decider key differs from the trusted keys" in err


def test_usage_error_has_its_own_code(env, capsys):
    tmp, genuine, _ = env
    b = helpers.bundle(tmp, "genuine-3.tar.gz", genuine)
    assert _verify(capsys, b, "--trust-policy", b)[0] == 2


def test_anchors_the_verifier_cannot_read_are_a_usage_error_and_a_foreign_tar_says_so(env, capsys, tmp_path):
    """Exit 1 means tampered: a key missing from the verifier's own directory is its usage error (2),
    and a .tar.gz that is no bundle at all is named so, not with a raw KeyError text."""
    import shutil
    import tarfile
    tmp, genuine, _ = env
    b = helpers.bundle(tmp, "genuine-anchors.tar.gz", genuine)
    partial = tmp_path / "anchors"
    shutil.copytree(genuine, partial)
    (partial / "decider.pub").unlink()
    code, _, err = _verify(capsys, b, "--trusted-keys", str(partial))
    assert code == 2 and "decider" in err and len(err.strip().splitlines()) == 1, err
    other = tmp_path / "other.tar.gz"
    (tmp_path / "note.txt").write_text("hello\n")
    with tarfile.open(other, "w:gz") as t:
        t.add(tmp_path / "note.txt", arcname="note.txt")
    code, _, err = _verify(capsys, str(other), "--trusted-keys", genuine)
    assert code == 1 and "not a gatewatch evidence bundle?" in err, err


def test_a_malformed_trust_policy_is_the_verifiers_usage_error_not_tampering(env, capsys, tmp_path):
    """--trust-policy is the auditor's own file: a bad one is exit 2, never 1 ("tampered")."""
    tmp, genuine, _ = env
    b = helpers.bundle(tmp, "genuine-policy.tar.gz", genuine)
    bad = tmp_path / "bad.policy"
    bad.write_text("log garbage\nquorum x\n")
    code, out, err = _verify(capsys, b, "--trusted-keys", genuine, "--trust-policy", str(bad))
    assert code == 2 and out == "" and "bad.policy" in err and len(err.strip().splitlines()) == 1, err
    bad.write_text("#" * (1 << 20) + "\n")
    code, _, err = _verify(capsys, b, "--trusted-keys", genuine, "--trust-policy", str(bad))
    assert code == 2 and "over 1 MiB" in err, err


@pytest.mark.parametrize("manifest", [b"[]", b"7", b'"x"', b"null"])
def test_a_manifest_that_is_not_an_object_is_tampering_named_in_one_line(env, capsys, tmp_path, manifest):
    """No key is needed to swap manifest.json; its fields were read before its hash was checked."""
    from gatewatch.sinks.worm.bundle import read_bundle, write_bundle
    tmp, genuine, _ = env
    files, _ = read_bundle(helpers.bundle(tmp, "genuine-manifest.tar.gz", genuine))
    files["manifest.json"] = manifest
    forged = write_bundle(files, str(tmp_path / "forged.tar.gz")) and str(tmp_path / "forged.tar.gz")
    code, out, err = _verify(capsys, forged, "--trusted-keys", genuine)
    assert code == 1 and err.strip() == "gatewatch: error: verify failed: file manifest.json: not a JSON object", err
