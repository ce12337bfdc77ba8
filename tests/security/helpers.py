"""Bundles built the way an attacker would: other witness keys, a lower quorum, every key replaced."""
from __future__ import annotations

import hashlib

import orjson
from nacl.signing import SigningKey

from gatewatch.processors.signing import key_id
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.evidence import build_files, sign_manifest, write_bundle
from gatewatch.sinks.worm.store import WormStore, candidate_from_record
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, public_keys
from tests.worm import factory

ORIGIN = cp.DEFAULT_ORIGIN


def resign(files: dict, log_key: SigningKey) -> None:
    """Re-hash manifest.json and re-sign manifest.sig, as the holder of the log key can."""
    m = orjson.loads(files["manifest.json"])
    m["files"] = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())
                  if k not in ("manifest.json", "manifest.sig")}
    files["manifest.json"] = orjson.dumps(m, option=orjson.OPT_INDENT_2)
    files["manifest.sig"] = sign_manifest(files, ORIGIN, log_key)


def keys(path) -> str:
    init_keys(path)
    return str(path)


def bundle(tmp, out_name: str, keys_dir: str, *, witnesses: dict[str, SigningKey] | None = None, k: int = 2,
           signers: tuple[str, ...] | None = None, n_actions: int = 4, drop_actions: bool = False,
           log_dir: str | None = None, includes: tuple[str, ...] = (), policy_dir: str | None = None,
           patch=None) -> str:
    """A bundle whose records are signed with keys_dir's decider/executor, its checkpoint with
    log_dir's log key (default keys_dir), cosigned by `signers` of `witnesses` (default: keys_dir's
    witness-1..3), under a k-of-N policy naming those witnesses. drop_actions: the log without its
    rollback actions (receipts only), as a rewriter would. patch(files) edits the files, after which
    the manifest is re-hashed and re-signed with the log key (a log key holder's edit)."""
    log_dir = log_dir or keys_dir
    if witnesses is None:
        witnesses = {r: load_signing_key(r, keys_dir) for r in cp.WITNESS_ROLES}
    signers = tuple(witnesses)[:k] if signers is None else signers
    recs = factory.records(load_signing_key("decider", keys_dir), n_actions, load_signing_key("executor", keys_dir))
    if drop_actions:
        recs = [(kd, v) for kd, v in recs if kd != "actions"]
    db = str(tmp / (out_name + ".db"))
    store = WormStore(db)
    store.append_batch([candidate_from_record(kd, f"gw.{kd}", orjson.dumps(v)) for kd, v in recs])
    log_key = load_signing_key("log", log_dir)
    note = cp.sign(cp.Checkpoint(ORIGIN, store.size, store.root()).body(), ORIGIN, log_key)
    for name in signers:
        note = cp.add_signature(note, name, witnesses[name])
    store.add_note("log", ORIGIN, store.size, note.text())
    policy = cp.make_policy(ORIGIN, log_key.verify_key, {n: sk.verify_key for n, sk in witnesses.items()}, k)
    pub = {r: v for r, v in public_keys(keys_dir).items() if not r.startswith("witness")}
    pub["log"] = public_keys(log_dir)["log"]
    pub.update({n: {"key_id": key_id(sk.verify_key), "public_key": sk.verify_key.encode().hex()}
                for n, sk in witnesses.items()})
    files = build_files(store, policy, pub, policy_dir, includes, log_key)
    store.close()
    if patch is not None:
        patch(files)
        resign(files, log_key)
    out = str(tmp / out_name)
    write_bundle(files, out)
    return out
