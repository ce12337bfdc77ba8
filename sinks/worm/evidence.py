"""Evidence bundles: export from the store, verify offline.

A bundle is a gzip'd tar (readable with stock `tar xzf`, members sorted, mtime 0, so
the same log state gives the same bytes; its sha256 is the "bundle hash" of INV1):

  manifest.json          {"format", "origin", "size", "root", "files": {path: sha256 hex}}
  checkpoint.note        the newest checkpoint meeting the policy, with the log's and every
                         witness signature seen (one signed note, signature lines merged)
  entries.ndjson         {"index", "id", "topic", "value"}, one per entry 0..size-1; the leaf
                         is canonical_json(value)
  proofs.ndjson          {"index", "leaf_hash" (hex), "proof" [base64]}: inclusion in the checkpoint
  keys/public_keys.json  gatewatch.streams.runtime.keys.public_keys(): role -> key_id, public_key
  policy/witness.policy  the k-of-N checkpoint policy (C2SP tlog-policy shape; gatewatch.sinks.worm.checkpoint)
  policy_hashes.json     {"actions": sorted policy hashes the action entries carry,
                          "composed": hash of the policies/ files composed (or null), "files": their order}
  policies/...           the files of --policy DIR as given
  include/<name>         drill results, reports (--include)

verify order (the first failure is reported, naming a file or an entry index):
manifest and file set; sha256 of every file except entries/proofs (so an altered key, policy
or note is named by file); keys agree with the policy; checkpoint signatures (log + quorum);
the bundled policies compose (gatewatch.processors.policy, order of gatewatch.streams.cli.policy) to the hash recorded;
entries one by one (index, inclusion proof against the checkpoint root, permit of each action
against the decider key at the action's own ts, each id once, every topic one of the logged
topics under entry 0's prefix: the leaf covers the value, not the topic); entry count == size;
policy_hashes.json is exactly
what the verified actions and bundled policies imply;
sha256 of entries/proofs; the composed policy hash is one a logged (signed) action carries, so a
re-hashed policy file is caught too. Then INV1: bundle hash + Merkle root + valid k-of-N signatures.
Every file the verifier parses must be spelled as the exporter writes it (JSON layout, lowercase
hex, canonical base64, the note and policy text): one content, one byte string, so no edit passes.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from nacl.signing import VerifyKey

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.signing import check_permit, key_id
from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import merkle
from gatewatch.sinks.worm.store import (
    LOGGED_KINDS,
    WormStore,
    decision_root,
    is_action,
    is_receipt,
)

FORMAT = "gatewatch-evidence/1"
ENTRY_FILES = ("entries.ndjson", "proofs.ndjson")
KEYS_JSON = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS  # how keys/public_keys.json is written
RECEIPT_SIGNERS = "receipt-signers"  # key in the trust map holding the executor keys


class BundleError(Exception):
    """Verification failure; str() names the first bad entry index or file."""


# ---------------------------------------------------------------- export

def merged_notes(store: WormStore, origin: str) -> list[cp.Note]:
    """Every checkpoint the store holds for origin, each with all signatures seen for its body."""
    by_body: dict[str, cp.Note] = {}
    for row in store.notes():
        if row["origin"] != origin:
            continue
        try:
            n = cp.parse_note(row["note"])
        except cp.NoteError:
            continue
        have = by_body.setdefault(n.body, cp.Note(n.body))
        for s in n.signatures:
            if s not in have.signatures:
                have.signatures.append(s)
    return sorted(by_body.values(), key=lambda n: cp.parse_checkpoint(n.body).size)


def latest_quorum_note(store: WormStore, policy: cp.Policy) -> cp.Note | None:
    for note in reversed(merged_notes(store, policy.log.name)):
        if policy.accepts(note):
            return note
    return None


def compose_bundled(files: dict[str, bytes]) -> tuple[str, list[str]] | None:
    """(hash, file order) of the bundled policies/ YAML composed like `gatewatch policy hash DIR`;
    None without policy files. Raises BundleError when they do not compose."""
    from gatewatch.processors.policy import PolicyError
    from gatewatch.streams.runtime.policy_files import FIRST, compose
    names = {k[len("policies/"):]: v for k, v in files.items()
             if k.startswith("policies/") and "/" not in k[len("policies/"):] and k.endswith((".yml", ".yaml"))}
    if not names:
        return None
    order = [n for n in FIRST if n in names] + sorted(n for n in names if n not in FIRST)
    try:
        return compose([(n, names[n].decode("utf-8")) for n in order]).hash, order
    except (PolicyError, UnicodeDecodeError) as e:
        raise BundleError(f"file policies/: the policy files do not compose ({e})") from None
    except Exception as e:  # noqa: BLE001 - e.g. yaml.ReaderError on control characters escapes PolicyError
        raise BundleError(f"file policies/: the policy files do not parse ({type(e).__name__})") from None


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def build_files(store: WormStore, policy: cp.Policy, public_keys: dict, policy_dir: str | None = None,
                includes: tuple[str, ...] = ()) -> dict[str, bytes]:
    note = latest_quorum_note(store, policy)
    if note is None:
        raise BundleError("no checkpoint in the store meets the policy yet (run the witnesses and the sink)")
    c = cp.parse_checkpoint(note.body)
    if store.root_at(c.size) != c.root:
        raise BundleError("the store's root at the checkpoint size differs from the checkpoint: the log was altered")
    entries, hashes, policy_hashes = [], [], set()
    for e in store.entries(0, c.size):
        value = orjson.loads(e.leaf)
        entries.append(orjson.dumps({"index": e.index, "id": e.id, "topic": e.topic, "value": value}))
        hashes.append(merkle.hash_leaf(e.leaf))
        if isinstance(value, dict) and isinstance(value.get("policy_hash"), str):
            policy_hashes.add(value["policy_hash"])
    tree = merkle.Levels(hashes)
    proofs = [orjson.dumps({"index": i, "leaf_hash": h.hex(),
                            "proof": [base64.b64encode(p).decode() for p in tree.inclusion_proof(i)]})
              for i, h in enumerate(hashes)]
    files = {
        "checkpoint.note": note.text().encode(),
        "entries.ndjson": b"".join(line + b"\n" for line in entries),
        "proofs.ndjson": b"".join(line + b"\n" for line in proofs),
        "keys/public_keys.json": orjson.dumps(public_keys, option=KEYS_JSON),
        "policy/witness.policy": policy.text().encode(),
    }
    if policy_dir:
        root = Path(policy_dir)
        for p in sorted(root.rglob("*")):
            if p.is_file():
                files[f"policies/{p.relative_to(root).as_posix()}"] = p.read_bytes()
    composed = compose_bundled(files)
    if composed and policy_hashes and composed[0] not in policy_hashes:
        raise BundleError(f"policy {policy_dir} composes to {composed[0]}, which no logged action carries "
                          f"(actions carry {', '.join(sorted(policy_hashes))})")
    files["policy_hashes.json"] = orjson.dumps(
        {"actions": sorted(policy_hashes), "composed": composed[0] if composed else None,
         "files": composed[1] if composed else []}, option=orjson.OPT_INDENT_2)
    for inc in includes:
        files[f"include/{Path(inc).name}"] = Path(inc).read_bytes()
    files["manifest.json"] = orjson.dumps({
        "format": FORMAT, "origin": c.origin, "size": c.size, "root": base64.b64encode(c.root).decode(),
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
    }, option=orjson.OPT_INDENT_2)
    return files


def write_bundle(files: dict[str, bytes], out: str) -> str:
    """Write a deterministic .tar.gz; returns its sha256."""
    raw, buf = io.BytesIO(), io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            _tar_add(tar, name, files[name])
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    data = buf.getvalue()
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return hashlib.sha256(data).hexdigest()


def read_bundle(path: str) -> tuple[dict[str, bytes], str]:
    data = Path(path).read_bytes()
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for m in tar.getmembers():
                if not m.isfile():
                    continue
                if m.name in files:
                    raise BundleError(f"file {m.name}: appears twice in the bundle")
                files[m.name] = tar.extractfile(m).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleError(f"file {path}: not a readable .tar.gz bundle ({e})") from None
    return files, hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- verify

@dataclass
class Report:
    bundle_sha256: str
    origin: str
    size: int
    root: str
    witnesses: list[str]
    quorum: str
    actions: int = 0
    files: int = 0
    decision_root: str = ""
    lines: list[str] = field(default_factory=list)


def _json(files: dict, name: str, option: int | None = None):
    """The parsed file; with the exporter's orjson option, also refuses any other spelling of it."""
    try:
        doc = orjson.loads(files[name])
    except (KeyError, orjson.JSONDecodeError):
        raise BundleError(f"file {name}: missing or not JSON") from None
    if option is not None and orjson.dumps(doc, option=option) != files[name]:
        raise BundleError(f"file {name}: not as the exporter writes it (reformatted or edited)")
    return doc


def _hex(text) -> bytes:
    """Lowercase hex only, as the exporter writes it: another spelling of the same bytes is an edit."""
    raw = bytes.fromhex(text)
    if raw.hex() != text:
        raise ValueError("not canonical hex")
    return raw


def _b64(text) -> bytes:
    """Canonical base64 only: unused low bits set are another spelling of the same hash."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def _check_keys(keys: dict, policy: cp.Policy) -> dict[str, VerifyKey]:
    """Public keys by role, cross-checked with the policy's vkeys. Returns the decider trust map."""
    try:
        by_role = {r: VerifyKey(_hex(v["public_key"])) for r, v in keys.items()}
        if any(key_id(vk) != keys[r]["key_id"] for r, vk in by_role.items()):
            raise ValueError
    except (ValueError, TypeError, KeyError, AttributeError):
        raise BundleError("file keys/public_keys.json: malformed or key id does not match its key") from None
    want = {"log": policy.log.key, **{n: v.key for n, v in policy.witnesses.items()}}
    for role, vk in want.items():
        if role not in by_role or by_role[role].encode() != vk.encode():
            raise BundleError(f"file keys/public_keys.json: {role} key differs from policy/witness.policy")
    if "decider" not in by_role:
        raise BundleError("file keys/public_keys.json: no decider key")
    d = by_role["decider"]
    trusted = {key_id(d): d}
    if "executor" in by_role:  # receipts are signed by the executor key
        trusted[RECEIPT_SIGNERS] = {key_id(by_role["executor"]): by_role["executor"]}
    return trusted


def verify_bundle(path: str, trusted_keys: dict | None = None) -> Report:
    """Raise BundleError naming the first bad file or entry. trusted_keys (gatewatch.streams.runtime.keys.public_keys
    form) pins the keys: every role it lists must appear in the bundle with the same key."""
    files, bundle_hash = read_bundle(path)
    manifest = _json(files, "manifest.json")
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or manifest.get("format") != FORMAT \
            or not all(isinstance(v, str) for v in listed.values()) or not set(ENTRY_FILES) <= set(listed):
        raise BundleError("file manifest.json: not a gatewatch evidence manifest")
    for name in sorted(set(listed) | set(files) - {"manifest.json"}):
        if name not in files:
            raise BundleError(f"file {name}: listed in the manifest but missing")
        if name not in listed:
            raise BundleError(f"file {name}: not listed in the manifest")
    for name in sorted(listed):
        if name not in ENTRY_FILES and hashlib.sha256(files[name]).hexdigest() != listed[name]:
            raise BundleError(f"file {name}: sha256 differs from the manifest")

    try:
        policy = cp.parse_policy(files["policy/witness.policy"].decode())
    except (cp.NoteError, UnicodeDecodeError, KeyError) as e:
        raise BundleError(f"file policy/witness.policy: {e}") from None
    if policy.text().encode() != files["policy/witness.policy"]:
        raise BundleError("file policy/witness.policy: not as the exporter writes it (reformatted or edited)")
    bundle_keys = _json(files, "keys/public_keys.json", KEYS_JSON)
    if trusted_keys is not None:
        for role, k in sorted(trusted_keys.items()):
            if not isinstance(bundle_keys, dict) or (bundle_keys.get(role) or {}).get("public_key") != k["public_key"]:
                raise BundleError(f"file keys/public_keys.json: {role} key differs from the trusted keys")
    trusted = _check_keys(bundle_keys, policy)
    try:
        note = cp.parse_note(files["checkpoint.note"].decode())
        c = cp.parse_checkpoint(note.body)
    except (cp.NoteError, UnicodeDecodeError, KeyError) as e:
        raise BundleError(f"file checkpoint.note: {e}") from None
    if note.text().encode() != files["checkpoint.note"]:
        raise BundleError("file checkpoint.note: not as the exporter writes it (reformatted or edited)")
    log_ok, quorum_ok, signers = policy.evaluate(note)
    if not log_ok:
        raise BundleError("file checkpoint.note: the log signature does not verify")
    if not quorum_ok:
        raise BundleError(f"file checkpoint.note: witness quorum not met (valid: {', '.join(signers) or 'none'})")
    if (manifest.get("origin"), manifest.get("size"), manifest.get("root")) != \
            (c.origin, c.size, base64.b64encode(c.root).decode()):
        raise BundleError("file manifest.json: origin/size/root differ from checkpoint.note")
    ph = _json(files, "policy_hashes.json", orjson.OPT_INDENT_2)
    if not isinstance(ph, dict) or not isinstance(ph.get("actions"), list) \
            or not all(isinstance(h, str) for h in ph["actions"]):
        raise BundleError("file policy_hashes.json: not a policy hash record")
    composed = compose_bundled(files)
    if (composed[0] if composed else None) != ph.get("composed"):
        raise BundleError(f"file policies/: the policy files compose to {composed[0] if composed else None}, "
                          f"policy_hashes.json says {ph.get('composed')}")

    entry_lines = files.get("entries.ndjson", b"").splitlines()
    proof_lines = files.get("proofs.ndjson", b"").splitlines()
    actions, carried = 0, set()  # policy hashes carried by verified (signed, logged) actions
    ids: set[str] = set()
    log_prefix = None  # GATEWATCH_TOPIC_PREFIX of the sink that wrote the log, from entry 0
    decisions: list[tuple[str, bytes]] = []
    for i in range(max(len(entry_lines), len(proof_lines), c.size)):
        if i >= c.size:
            raise BundleError(f"entry {i}: beyond the checkpoint size {c.size} (inserted)")
        if i >= len(entry_lines) or i >= len(proof_lines):
            raise BundleError(f"entry {i}: missing (the checkpoint covers {c.size} entries)")
        why, value, topic, is_act = _check_entry(i, entry_lines[i], proof_lines[i], c, trusted)
        if why:
            raise BundleError(f"entry {i}: {why}")
        if value["id"] in ids:  # the log appends an id once: a repeat was spliced in
            raise BundleError(f"entry {i}: id {value['id']} repeats an earlier entry's")
        ids.add(value["id"])
        # the leaf covers the value, not the topic: one sink reads one prefix's logged topics, so
        # an edited topic shows as a foreign name or prefix
        kind = next((k for k in LOGGED_KINDS if topic.endswith(k)), None)
        if kind is None or log_prefix not in (None, topic[:-len(kind)]):
            raise BundleError(f"entry {i}: topic {topic!r} is not one of the logged topics "
                              f"{', '.join((log_prefix or '<prefix>') + k for k in LOGGED_KINDS)}")
        log_prefix = topic[:-len(kind)]
        if is_act:
            actions += 1
            carried.add(value["policy_hash"])
            decisions.append((value["id"], canonical_json(value)))
    for name in ENTRY_FILES:
        if hashlib.sha256(files[name]).hexdigest() != listed[name]:
            raise BundleError(f"file {name}: sha256 differs from the manifest")
    if composed and actions and composed[0] not in carried:
        raise BundleError(f"file policies/: the policy files compose to {composed[0]}, which no logged action carries")
    want_ph = {"actions": sorted(carried), "composed": composed[0] if composed else None,
               "files": composed[1] if composed else []}
    if ph != want_ph:
        raise BundleError("file policy_hashes.json: differs from the hashes the actions carry and the bundled policy")

    k, _ = policy.groups.get(policy.quorum, (1, ()))
    rep = Report(bundle_hash, c.origin, c.size, base64.b64encode(c.root).decode(), signers,
                 f"{k}-of-{len(policy.witnesses)}", actions, len(files),
                 decision_root=base64.b64encode(decision_root(decisions)).decode())
    rep.lines = [
        f"bundle sha256 {bundle_hash}",
        f"checkpoint {c.origin} size {c.size} root {rep.root}",
        f"signatures: log ok, witnesses {', '.join(signers)} ({rep.quorum} required)",
        f"entries {c.size} verified (inclusion proofs), {actions} action permits valid, {len(files)} files match the manifest",
        f"decision root {rep.decision_root} (the {actions} actions in id order; gatewatch replay --keys-dir prints it)",
        f"policy: {'bundled files compose to ' + composed[0] + ', carried by logged actions' if composed else 'no policy files bundled'}",
        "INV1 EvidenceBound: ok (bundle hash, Merkle root, k-of-N signatures)",
    ]
    return rep


def _check_entry(i: int, eline: bytes, pline: bytes, c: cp.Checkpoint, trusted) -> tuple[str, dict, str, bool]:
    """(why the entry is bad or "", its value, its topic, whether it is an action whose permit was checked)."""
    try:
        e, p = orjson.loads(eline), orjson.loads(pline)
        value = e["value"]
        proof = [_b64(h) for h in p["proof"]]
        leaf_hash = _hex(p["leaf_hash"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "malformed line", {}, "", False
    if e.get("index") != i or p.get("index") != i:
        return f"out of place (says index {e.get('index')}, proof {p.get('index')})", {}, "", False
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or value.get("id") != e.get("id"):
        return "id does not match its value", {}, "", False
    topic = e.get("topic")
    if not isinstance(topic, str):
        return "topic is not a string", {}, "", False
    if merkle.hash_leaf(canonical_json(value)) != leaf_hash:
        return "value does not hash to its leaf hash", {}, "", False
    if not merkle.verify_inclusion(leaf_hash, i, c.size, proof, c.root):
        return "inclusion proof does not verify against the checkpoint root", {}, "", False
    if is_receipt(value):  # its signature is checked instead: a forged receipt fails here
        from gatewatch.sinks.executor.receipts import verify_receipt
        why = verify_receipt(value, trusted.get(RECEIPT_SIGNERS, {}))
        return (f"receipt refused: {why}" if why else ""), value, topic, False
    # an action by its topic or its shape, so relabelling the topic cannot skip the permit check
    if is_action(topic, value):
        try:
            now_ms = parse_time_ms(value.get("ts"))
        except TimeFormatError:
            return "action ts is not a timestamp", {}, "", False
        why = check_permit(value, {k: v for k, v in trusted.items() if k != RECEIPT_SIGNERS}, now_ms)
        if why:
            return f"permit refused: {why}", {}, "", False
        if not isinstance(value.get("policy_hash"), str):
            return "action has no policy hash", {}, "", False
        return "", value, topic, True
    return "", value, topic, False
