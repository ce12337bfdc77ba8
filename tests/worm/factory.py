"""Test data for the WORM tests: signed actions, receipts, diamond candidates, a log with a quorum checkpoint."""
from __future__ import annotations

import hashlib

import orjson
from nacl.signing import SigningKey

from gatewatch.processors.canonical import content_id
from gatewatch.processors.policy.records import action_id
from gatewatch.processors.signing import issue_permit
from gatewatch.processors.timefmt import format_ts, parse_time_ms
from gatewatch.sinks.executor.receipts import seal
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.store import WormStore, candidate_from_record
from gatewatch.sinks.worm.witness import WitnessState, review
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from gatewatch.streams.runtime.policy_files import compose

T0 = parse_time_ms("2026-01-01T00:00:00.000Z")
# a policy directory the test actions were "decided" under: the built-in layer plus comments
POLICY_FILES = {"project.yml": "# project: built-in defaults\n", "gate.yml": "# gate: built-in defaults\n"}
POLICY_HASH = compose(sorted(POLICY_FILES.items(), key=lambda kv: kv[0] != "project.yml")).hash


def write_policy_dir(path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    for name, text in POLICY_FILES.items():
        (path / name).write_text(text)
    return str(path)


def action(decider, i: int, kind: str = "abort") -> dict:
    rec = {"kind": kind, "action": "rollback", "scope": f"checkout-{i % 3}",
           "rule": {"id": "r1", "text": "err5xx_rate >= 0.001 for 5m"}, "policy_hash": POLICY_HASH,
           "ts": format_ts(T0 + i * 1000), "values": {"err5xx_rate": 0.002 + i * 1e-6}}
    rec["id"] = action_id(POLICY_HASH, rec["scope"], "r1", rec["ts"], rec["action"])  # as the engine derives it
    rec["permit"] = issue_permit(decider, rec, T0 + i * 1000 + 300_000)
    return rec


def receipt(executor, action_id: str, i: int, prev: str | None, seq: int) -> dict:
    """A receipt as the executor seals it (verify checks its id and signature)."""
    return seal(executor, {"type": "INTENT" if i % 2 == 0 else "RESULT", "action_id": action_id, "prev": prev,
                           "seq": seq, "ts": format_ts(T0 + i * 1000 + 5)})


def records(decider, n_actions: int, executor=None) -> list[tuple[str, dict]]:
    """(kind, value) pairs: each action followed by its INTENT and RESULT receipts; a diamond now and then.
    Receipts are signed by `executor` (default: a key derived from the decider's, for tests that
    only look at the log)."""
    executor = executor or SigningKey(hashlib.sha256(b"executor" + decider.encode()).digest())
    out, prev = [], None
    for i in range(n_actions):
        a = action(decider, i)
        out.append(("actions", a))
        for j in (0, 1):
            r = receipt(executor, a["id"], j, prev, len(out) + 1)
            prev = r["id"]
            out.append(("receipts", r))
        if i % 4 == 0:
            d = {"type": "diamond_candidate", "tenant": "t1", "trajectory": f"tr{i}", "ts": format_ts(T0 + i)}
            d["id"] = content_id(d)
            out.append(("trajectories", d))
    return out


def keys(tmp_path) -> str:
    d = tmp_path / "keys"
    init_keys(d)
    return str(d)


def cosign(note: cp.Note, names, keys_dir: str) -> cp.Note:
    for n in names:
        note = cp.add_signature(note, n, load_signing_key(n, keys_dir))
    return note


def export_cosigned(store: WormStore, keys_dir: str, out, policy_dir: str | None = None) -> str:
    """Checkpoint the store as it is now, cosigned by witness-1 and -2, and export its bundle to
    `out` (with policy_dir's files, when given); the bundle's path."""
    from gatewatch.sinks.worm.evidence import build_files, write_bundle
    from gatewatch.streams.runtime.keys import public_keys
    note = cp.sign(cp.Checkpoint(cp.DEFAULT_ORIGIN, store.size, store.root()).body(), cp.DEFAULT_ORIGIN,
                   load_signing_key("log", keys_dir))
    store.add_note("log", cp.DEFAULT_ORIGIN, store.size, cosign(note, ["witness-1", "witness-2"], keys_dir).text())
    files = build_files(store, cp.default_policy(keys_path=keys_dir), public_keys(keys_dir), policy_dir,
                        log_key=load_signing_key("log", keys_dir))
    write_bundle(files, str(out))
    return str(out)


def log_with_quorum(db: str, keys_dir: str, n_actions: int = 6, witnesses=("witness-1", "witness-3"),
                    origin: str = cp.DEFAULT_ORIGIN) -> WormStore:
    """A store holding records(...) and a checkpoint over all of it cosigned by `witnesses`."""
    decider, executor = load_signing_key("decider", keys_dir), load_signing_key("executor", keys_dir)
    return quorum_log(db, keys_dir, records(decider, n_actions, executor), witnesses, origin)


def quorum_log(db: str, keys_dir: str, kind_values: list[tuple[str, dict]], witnesses=("witness-1", "witness-3"),
               origin: str = cp.DEFAULT_ORIGIN) -> WormStore:
    """A store holding these (catalogue kind, value) records and a checkpoint over them cosigned by `witnesses`."""
    store = WormStore(db)
    store.append_batch([candidate_from_record(k, f"gw.{k}", orjson.dumps(v)) for k, v in kind_values])
    note = cp.sign(cp.Checkpoint(origin, store.size, store.root()).body(), origin, load_signing_key("log", keys_dir))
    store.add_note("log", origin, store.size, note.text())
    lk = load_signing_key("log", keys_dir).verify_key
    verifier = cp.Verifier(origin, cp.note_key_id(origin, lk.encode()), lk)
    for w in witnesses:  # each witness reviews the log's message as it would from the topic
        got = review({"kind": "log", "note": note.text(), "proofs": {}}, WitnessState(), verifier)
        assert got is not None
        store.add_note("cosigned", origin, store.size, cosign(got[0], [w], keys_dir).text())
    return store
