"""Evidence bundles: export, offline verify, and 100% rejection of random tamperings with the right culprit."""
from __future__ import annotations

import base64
import hashlib

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.evidence import (
    BundleError,
    build_files,
    read_bundle,
    sign_manifest,
    verify_bundle,
    write_bundle,
)
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import public_keys
from tests.worm import factory


def _lk(keys):
    return factory.load_signing_key("log", keys)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ev")
    keys = factory.keys(tmp)
    pol_dir = factory.write_policy_dir(tmp / "policies")
    drill = tmp / "drill.json"
    drill.write_text('{"drill":"ok"}\n')
    store = factory.log_with_quorum(str(tmp / "w.db"), keys, n_actions=7)
    policy = cp.default_policy(keys_path=keys)
    files = build_files(store, policy, public_keys(keys), str(pol_dir), (str(drill),), _lk(keys))
    store.close()
    return tmp, files


def _write(tmp, files, name="b.tar.gz"):
    out = str(tmp / name)
    write_bundle(files, out)
    return out


def test_export_and_verify(base, capsys):
    tmp, files = base
    out = _write(tmp, files)
    rep = verify_bundle(out)
    assert rep.size == len(files["entries.ndjson"].splitlines()) and rep.actions == 7
    assert rep.witnesses == ["witness-1", "witness-3"] and rep.quorum == "2-of-3"
    assert {"policies/gate.yml", "policies/project.yml", "include/drill.json", "keys/public_keys.json",
            "policy/witness.policy", "checkpoint.note", "manifest.json"} <= set(files)
    assert orjson.loads(files["policy_hashes.json"]) == {"actions": [factory.POLICY_HASH],
                                                         "composed": factory.POLICY_HASH,
                                                         "files": ["project.yml", "gate.yml"]}
    # deterministic bytes: same files -> same bundle hash
    assert read_bundle(out)[1] == read_bundle(_write(tmp, files, "again.tar.gz"))[1]
    assert main(["verify", out]) == 4  # no anchors: self-consistent, never "verified"
    printed = capsys.readouterr().out
    assert "self-consistent, NOT verified against trusted keys" in printed and "INV1" not in printed
    assert main(["verify", out, "--trusted-keys", str(tmp / "keys")]) == 0
    printed = capsys.readouterr().out
    assert "INV1 EvidenceBound: ok" in printed and rep.bundle_sha256 in printed


def test_one_witness_is_not_a_quorum(tmp_path):
    keys = factory.keys(tmp_path)
    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, 2, witnesses=("witness-2",))
    with pytest.raises(BundleError, match="no checkpoint"):
        build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), log_key=_lk(keys))


# ---------------------------------------------------------------- tampering

def _lines(files, name):
    return files[name].splitlines(keepends=True)


def _rehash(files):
    m = orjson.loads(files["manifest.json"])
    m["files"] = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())
                  if k not in ("manifest.json", "manifest.sig")}
    files["manifest.json"] = orjson.dumps(m, option=orjson.OPT_INDENT_2)


def _alter_value(line: bytes) -> bytes:
    e = orjson.loads(line)
    v = e["value"]
    key = sorted(k for k in v if k not in ("id",))[0]
    v[key] = "tampered" if v[key] != "tampered" else "x"
    return orjson.dumps(e) + b"\n"


def _flip_sig(note: bytes, which: int) -> bytes:
    lines = note.decode().split("\n")
    sig_rows = [i for i, line in enumerate(lines) if line.startswith("\u2014 ")]
    row = sig_rows[which % len(sig_rows)]
    dash, name, b64 = lines[row].split(" ")
    raw = bytearray(base64.b64decode(b64))
    raw[-1] ^= 0x01
    lines[row] = f"{dash} {name} {base64.b64encode(bytes(raw)).decode()}"
    return "\n".join(lines).encode()


def tamper(files: dict, op: str, i: int, j: int, rehash: bool) -> str:
    """Apply one tampering in place; returns the expected culprit ("entry N" or "file X")."""
    ents = _lines(files, "entries.ndjson")
    n = len(ents)
    i, j = i % n, j % n
    if op == "change":
        ents[i] = _alter_value(ents[i])
        want = f"entry {i}"
    elif op == "delete":
        del ents[i]
        want = f"entry {i}"
    elif op == "swap":
        if i == j:
            j = (i + 1) % n
        ents[i], ents[j] = ents[j], ents[i]
        want = f"entry {min(i, j)}"
    elif op == "insert":
        ents.insert(i, _alter_value(ents[j]))
        want = f"entry {i}"
    elif op == "truncate":
        ents = ents[:i]
        want = f"entry {i}"
    elif op == "signature":
        files["checkpoint.note"] = _flip_sig(files["checkpoint.note"], i)
        want = "file checkpoint.note"
    elif op == "key":
        keys = orjson.loads(files["keys/public_keys.json"])
        role = sorted(keys)[i % len(keys)]
        pk = bytearray(bytes.fromhex(keys[role]["public_key"]))
        pk[j % 32] ^= 0x40
        keys[role]["public_key"] = bytes(pk).hex()
        files["keys/public_keys.json"] = orjson.dumps(keys)
        want = "file keys/public_keys.json"
    elif op == "root":
        text = files["checkpoint.note"].decode()
        body, rest = text.split("\n\n", 1)
        origin, size, root = body.split("\n")
        raw = bytearray(base64.b64decode(root))
        raw[j % 32] ^= 0x80
        files["checkpoint.note"] = f"{origin}\n{size}\n{base64.b64encode(bytes(raw)).decode()}\n\n{rest}".encode()
        want = "file checkpoint.note"
    elif op == "policy_file":
        name = sorted(k for k in files if k.startswith("policies/"))[i % 2]
        files[name] = files[name] + b"\nzzz_tampered: 1\n"
        # without a re-hashed manifest the file is named; with one, the composed policy no longer
        # matches the hash the signed actions carry
        want = "file policies/" if rehash else f"file {name}"
    else:
        raise AssertionError(op)
    files["entries.ndjson"] = b"".join(ents)
    if rehash:
        _rehash(files)
    return want


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.sampled_from(["change", "delete", "swap", "insert", "truncate", "signature", "key", "root",
                           "policy_file"]),
       i=st.integers(0, 1000), j=st.integers(0, 1000), rehash=st.booleans())
def test_every_tampering_is_rejected_naming_the_culprit(base, tmp_path, op, i, j, rehash):
    tmp, files = base
    files = dict(files)
    want = tamper(files, op, i, j, rehash)
    out = _write(tmp_path, files, f"t-{op}.tar.gz")
    with pytest.raises(BundleError) as exc:
        verify_bundle(out)
    assert str(exc.value).startswith(want if want.endswith("/") else want + ":"), (op, rehash, str(exc.value))


def test_cli_names_the_bad_entry(base, tmp_path, capsys):
    _, files = base
    files = dict(files)
    tamper(files, "change", 3, 0, rehash=True)
    assert main(["verify", _write(tmp_path, files)]) == 1
    assert "entry 3:" in capsys.readouterr().err


def test_garbage_bundle(tmp_path):
    p = tmp_path / "junk.tar.gz"
    p.write_bytes(b"not a tarball")
    with pytest.raises(BundleError, match="junk.tar.gz"):
        verify_bundle(str(p))


def test_trusted_keys_pin_the_bundle(base, tmp_path):
    from gatewatch.sinks.worm.trust import trust_from_dir
    tmp, files = base
    out = _write(tmp_path, files)
    rep = verify_bundle(out, trust_from_dir(str(tmp / "keys")))
    assert rep.size > 0 and rep.pinned
    other = factory.keys(tmp_path)  # a different key set
    with pytest.raises(BundleError, match=r"^file policy/witness.policy: log .* differs from the pinned log"):
        verify_bundle(out, trust_from_dir(other))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), rehash=st.booleans())
def test_random_byte_flips_never_pass_unnoticed_or_crash(base, tmp_path, data, rehash):
    """Any byte flip in any file is rejected (BundleError, never another exception) when the manifest
    is left alone; with a re-hashed manifest verify may only accept flips that keep every check true."""
    tmp, files = base
    files = dict(files)
    name = data.draw(st.sampled_from(sorted(files)))
    blob = bytearray(files[name])
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] ^= data.draw(st.integers(1, 255))
    files[name] = bytes(blob)
    if rehash and name != "manifest.json":
        _rehash(files)
    out = _write(tmp_path, files, "flip.tar.gz")
    try:
        verify_bundle(out)
    except BundleError:
        return
    # the manifest is signed: a re-hashed manifest no longer matches its signature, so nothing passes
    raise AssertionError(f"a flipped byte in {name} at {pos} was accepted")


def test_a_policy_no_action_carries_is_refused(tmp_path):
    keys = factory.keys(tmp_path)
    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, 2)
    other = tmp_path / "other"
    other.mkdir()
    (other / "project.yml").write_text("permits:\n  ttl: 2h\n")
    with pytest.raises(BundleError, match="no logged action carries"):
        build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), str(other), log_key=_lk(keys))


def test_a_forged_receipt_in_the_log_is_named(tmp_path):
    """Anyone can write to gw.receipts; the log keeps what arrived, and verify names a receipt the
    executor did not sign."""
    from nacl.signing import SigningKey

    from gatewatch.sinks.executor.receipts import seal
    from gatewatch.sinks.worm.store import candidate_from_record

    keys = factory.keys(tmp_path)
    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, n_actions=2)
    forged = seal(SigningKey(b"\x07" * 32), {"type": "RESULT", "action_id": "a" * 64, "seq": 99,
                                             "ts": "2026-01-01T00:00:09.000Z", "status": "success"})
    store.append_batch([candidate_from_record("receipts", "gw.receipts", orjson.dumps(forged))])
    policy = cp.default_policy(keys_path=keys)
    note = cp.sign(cp.Checkpoint(cp.DEFAULT_ORIGIN, store.size, store.root()).body(), cp.DEFAULT_ORIGIN,
                   factory.load_signing_key("log", keys))
    store.add_note("log", cp.DEFAULT_ORIGIN, store.size, factory.cosign(note, ["witness-1", "witness-2"], keys).text())
    files = build_files(store, policy, public_keys(keys), factory.write_policy_dir(tmp_path / "p"), log_key=_lk(keys))
    out = _write(tmp_path, files)
    with pytest.raises(BundleError, match=rf"entry {store.size - 1}: receipt refused: unknown_key"):
        verify_bundle(out)


def test_a_repeated_id_is_refused_even_when_the_log_key_signed_it(tmp_path):
    """The log appends an id once; a bundle that repeats one (a log signed by a stolen key, say)
    would count an action twice while its decision root covers it once."""
    from gatewatch.processors.canonical import canonical_json
    from gatewatch.sinks.worm import merkle

    keys = factory.keys(tmp_path)
    store = factory.log_with_quorum(str(tmp_path / "w.db"), keys, n_actions=2)
    files = build_files(store, cp.default_policy(keys_path=keys), public_keys(keys),
                        factory.write_policy_dir(tmp_path / "p"), log_key=_lk(keys))
    store.close()
    ents = [orjson.loads(line) for line in files["entries.ndjson"].splitlines()]
    ents.append({**ents[0], "index": len(ents)})
    leaves = [canonical_json(e["value"]) for e in ents]
    files["entries.ndjson"] = b"".join(orjson.dumps(e) + b"\n" for e in ents)
    files["proofs.ndjson"] = b"".join(orjson.dumps(
        {"index": i, "leaf_hash": merkle.hash_leaf(leaf).hex(),
         "proof": [base64.b64encode(p).decode() for p in merkle.inclusion_proof(leaves, i)]}) + b"\n"
        for i, leaf in enumerate(leaves))
    note = cp.sign(cp.Checkpoint(cp.DEFAULT_ORIGIN, len(leaves), merkle.root(leaves)).body(), cp.DEFAULT_ORIGIN,
                   factory.load_signing_key("log", keys))
    files["checkpoint.note"] = factory.cosign(note, ["witness-1", "witness-2"], keys).text().encode()
    m = orjson.loads(files["manifest.json"])
    m.update(size=len(leaves), root=base64.b64encode(merkle.root(leaves)).decode())
    files["manifest.json"] = orjson.dumps(m)
    _rehash(files)
    files["manifest.sig"] = sign_manifest(files, cp.DEFAULT_ORIGIN, _lk(keys))  # the stolen log key re-signs
    with pytest.raises(BundleError, match=rf"entry {len(ents) - 1}: id {ents[0]['id']} repeats an earlier entry's"):
        verify_bundle(_write(tmp_path, files))
