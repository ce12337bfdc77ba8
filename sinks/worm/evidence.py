"""Evidence bundles: export from the store, verify offline.

A bundle is a gzip'd tar (readable with stock `tar xzf`, members sorted, mtime 0, so
the same log state gives the same bytes; its sha256 is the "bundle hash" of INV1):

  manifest.json          {"format", "origin", "size", "root", "files": {path: sha256 hex}}
  manifest.sig           the log key's signed note over sha256(manifest.json): binds every file
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
  include/<name>         reports, other files (--include)
  evidence/*.json        span coverage, input schemas, cardinality, drill (gatewatch.sinks.worm.evidence_files)

verify order (the first failure is reported, naming a file or an entry index):
trust anchors (gatewatch.sinks.worm.trust: pinned by the verifier, or the bundle's own when
unpinned, which never counts as verified); the bundle's witness policy and keys compared with
them (other witnesses, a lower quorum or other keys refused); the manifest's signature by the
anchored log key; manifest and file set; sha256 of every file except entries/proofs (so an
altered key, policy, note or include is named by file); checkpoint signatures (log + quorum);
the bundled policies compose (gatewatch.processors.policy, order of gatewatch.streams.cli.policy) to the hash recorded;
entries one by one (canonical bytes, as the exporter writes them; index, inclusion proof against
the checkpoint root, the admission checks of gatewatch.sinks.worm.admission against the anchored
decider and executor keys, a RESULT's confirmed delivery ack against the anchored recipient
keys (gatewatch.processors.acks), each id once, every topic one of the logged
topics under entry 0's prefix: the leaf covers the value, not the topic); entry count == size;
policy_hashes.json is exactly
what the verified actions and bundled policies imply;
sha256 of entries/proofs; the composed policy hash is one a logged (signed) action carries, so a
re-hashed policy file is caught too; each evidence/ file well formed and self-consistent. Then INV1: bundle hash + Merkle root + valid k-of-N signatures.
Every file the verifier parses must be spelled as the exporter writes it (JSON layout, lowercase
hex, canonical base64, the note and policy text): one content, one byte string, so no edit passes.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from nacl.signing import SigningKey

from gatewatch.processors.acks import delivery_problem
from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.signing import key_id
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import merkle
from gatewatch.sinks.worm.admission import check_record
from gatewatch.sinks.worm.bundle import (  # noqa: F401 - re-exported: the bundle API lives here
    ENTRY_FILES,
    FORMAT,
    KEYS_JSON,
    MANIFEST_SIG,
    BundleError,
    check_hashes,
    check_manifest_signature,
    check_member_names,
    load_json,
    read_bundle,
    sign_manifest,
    strict_b64,
    strict_hex,
    write_bundle,
)
from gatewatch.sinks.worm.evidence_files import check_evidence
from gatewatch.sinks.worm.store import LOGGED_KINDS, WormStore, decision_root, is_action, is_receipt
from gatewatch.sinks.worm.trust import RECIPIENT_PREFIX, Trust, UntrustedError, compare, describe, trust_from_bundle

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


def build_files(store: WormStore, policy: cp.Policy, public_keys: dict, policy_dir: str | None = None,
                includes: tuple[str, ...] = (), log_key: SigningKey | None = None,
                evidence: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """The bundle's files; manifest.sig is signed with log_key (the key of the policy's log line).
    evidence: evidence/ files (gatewatch.sinks.worm.evidence_files), bound by the manifest like the rest."""
    if log_key is None or log_key.verify_key.encode() != policy.log.key.encode():
        raise BundleError("the log's signing key is needed to sign the manifest (and must match the policy's log key)")
    note = latest_quorum_note(store, policy)
    if note is None:
        raise BundleError("no checkpoint in the store meets the policy yet (run the witnesses and the sink)")
    c = cp.parse_checkpoint(note.body)
    if not store.matches(c.size, c.root):
        raise BundleError("the store's root at the checkpoint size differs from the checkpoint: the log was altered")
    entries, hashes, policy_hashes = [], [], set()
    for e in store.entries(0, c.size):
        try:
            value = orjson.loads(e.leaf)
        except orjson.JSONDecodeError:  # the sink logs JSON only: edited on disk
            raise BundleError(store.alteration() or f"entry {e.index}: not JSON (the log was altered)") from None
        entries.append(entry_line(e.index, e.id, e.topic, value))
        hashes.append(merkle.hash_leaf(e.leaf))
        # the actions' policy hashes, as verify counts them (attestations carry one too)
        if isinstance(value, dict) and is_action(e.topic, value) and isinstance(value.get("policy_hash"), str):
            policy_hashes.add(value["policy_hash"])
    tree = merkle.Levels(hashes)
    if len(hashes) != c.size or tree.root() != c.root:  # the leaves themselves, not only the nodes over them
        raise BundleError(store.alteration() or (
            f"the store holds {len(hashes)} entries below the checkpoint's size {c.size} (the log was altered)"
            if len(hashes) != c.size else "the entries' Merkle root differs from the checkpoint's (the log was altered)"))
    proofs = [proof_line(i, h, tree.inclusion_proof(i)) for i, h in enumerate(hashes)]
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
        name = f"include/{Path(inc).name}"
        if name in files:  # the bundle names files by their base name: one would hide the other
            raise BundleError(f"--include {inc}: another included file is also named {Path(inc).name}; rename one")
        files[name] = Path(inc).read_bytes()
    files.update(evidence or {})
    check_member_names(files)  # the exporter never writes what verify refuses
    check_evidence(files, composed[0] if composed else None)
    files["manifest.json"] = orjson.dumps({
        "format": FORMAT, "origin": c.origin, "size": c.size, "root": base64.b64encode(c.root).decode(),
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
    }, option=orjson.OPT_INDENT_2)
    files[MANIFEST_SIG] = sign_manifest(files, c.origin, log_key)
    return files


def entry_line(index: int, eid: str, topic: str, value) -> bytes:
    """The one spelling of an entries.ndjson line: the value as its canonical (leaf) bytes."""
    return orjson.dumps({"index": index, "id": eid, "topic": topic, "value": orjson.loads(canonical_json(value))})


def proof_line(index: int, leaf_hash: bytes, proof: list[bytes]) -> bytes:
    return orjson.dumps({"index": index, "leaf_hash": leaf_hash.hex(),
                         "proof": [base64.b64encode(p).decode() for p in proof]})


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
    pinned: bool = False  # True only when checked against anchors the verifier supplied
    deliveries: dict = field(default_factory=dict)  # RESULT receipts by delivery status (acks verified)
    lines: list[str] = field(default_factory=list)


def _policy_of(files: dict) -> cp.Policy:
    if "policy/witness.policy" not in files:
        raise BundleError("file policy/witness.policy: missing (not a gatewatch evidence bundle?)")
    try:
        policy = cp.parse_policy(files["policy/witness.policy"].decode())
    except (cp.NoteError, UnicodeDecodeError) as e:
        raise BundleError(f"file policy/witness.policy: {e}") from None
    if policy.text().encode() != files["policy/witness.policy"]:
        raise BundleError("file policy/witness.policy: not as the exporter writes it (reformatted or edited)")
    return policy


def _check_manifest(files: dict, signed: dict[str, str]) -> dict:
    """manifest.json: well formed, and its file list exactly the signed one."""
    manifest = load_json(files, "manifest.json", orjson.OPT_INDENT_2)
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or manifest.get("format") != FORMAT \
            or listed != {k: v for k, v in signed.items() if k != "manifest.json"}:
        raise BundleError("file manifest.json: not a gatewatch evidence manifest matching manifest.sig")
    return manifest


def verify_bundle(path: str, trust: Trust | None = None, require_evidence: bool = False,
                  replay: bool = False) -> Report:
    """Raise BundleError naming the first bad file or entry. With trust (pinned anchors,
    gatewatch.sinks.worm.trust.trust_from_dir) the bundle's keys and witness policy are only
    compared with it; without, the bundle's own are used and Report.pinned is False.
    require_evidence: the four evidence/ files must be there (else only reported absent). With
    replay, then every action is re-derived from its attestation (gatewatch.sinks.worm.replay)."""
    files, bundle_hash = read_bundle(path)
    policy = _policy_of(files)
    bundle_keys = load_json(files, "keys/public_keys.json", KEYS_JSON)
    if not isinstance(bundle_keys, dict):
        raise BundleError("file keys/public_keys.json: malformed or key id does not match its key")
    if trust is None:
        trust = trust_from_bundle(bundle_keys, policy)
    else:
        compare(trust, bundle_keys, policy)
    signed = check_manifest_signature(files, trust.policy.log)
    if not set(ENTRY_FILES) <= set(signed):
        raise BundleError(f"file {ENTRY_FILES[0]}: missing")
    # entries/proofs after the entry checks (which name the entry), manifest.json (derived) last
    check_hashes(files, signed, set(signed) - set(ENTRY_FILES) - {"manifest.json"})
    manifest = load_json(files, "manifest.json")
    if not isinstance(manifest, dict):  # its hash is checked last; its fields are read before that
        raise BundleError("file manifest.json: not a JSON object")
    try:
        note = cp.parse_note(files["checkpoint.note"].decode())
        c = cp.parse_checkpoint(note.body)
    except (cp.NoteError, UnicodeDecodeError, KeyError) as e:
        raise BundleError(f"file checkpoint.note: {e}") from None
    if note.text().encode() != files["checkpoint.note"]:
        raise BundleError("file checkpoint.note: not as the exporter writes it (reformatted or edited)")
    if c.origin != trust.policy.log.name:
        raise BundleError(f"file checkpoint.note: origin {c.origin!r} is not the pinned log origin "
                          f"{trust.policy.log.name!r}")
    log_ok, quorum_ok, signers = trust.policy.evaluate(note)
    if not log_ok:
        raise BundleError("file checkpoint.note: the log signature does not verify")
    if not quorum_ok:
        raise BundleError(f"file checkpoint.note: witness quorum not met ({describe(trust.policy)} required, "
                          f"valid: {', '.join(signers) or 'none'})")
    if (manifest.get("origin"), manifest.get("size"), manifest.get("root")) != \
            (c.origin, c.size, base64.b64encode(c.root).decode()):
        raise BundleError("file manifest.json: origin/size/root differ from checkpoint.note")
    ph = load_json(files, "policy_hashes.json", orjson.OPT_INDENT_2)
    if not isinstance(ph, dict) or not isinstance(ph.get("actions"), list) \
            or not all(isinstance(h, str) for h in ph["actions"]):
        raise BundleError("file policy_hashes.json: not a policy hash record")
    composed = compose_bundled(files)
    evidence_lines = check_evidence(files, composed[0] if composed else None, require_evidence)
    if (composed[0] if composed else None) != ph.get("composed"):
        raise BundleError(f"file policies/: the policy files compose to {composed[0] if composed else None}, "
                          f"policy_hashes.json says {ph.get('composed')}")
    actions, carried, decisions, deliveries = _check_entries(files, c, trust)
    check_hashes(files, signed, ENTRY_FILES)
    if composed and actions and composed[0] not in carried:
        raise BundleError(f"file policies/: the policy files compose to {composed[0]}, which no logged action carries")
    want_ph = {"actions": sorted(carried), "composed": composed[0] if composed else None,
               "files": composed[1] if composed else []}
    if ph != want_ph:
        raise BundleError("file policy_hashes.json: differs from the hashes the actions carry and the bundled policy")
    check_hashes(files, signed, ["manifest.json"])
    _check_manifest(files, signed)
    replayed = None
    if replay:
        from gatewatch.sinks.worm.replay import replay_bundle
        replayed = replay_bundle(files)

    rep = Report(bundle_hash, c.origin, c.size, base64.b64encode(c.root).decode(), signers,
                 describe(trust.policy), actions, len(files),
                 decision_root=base64.b64encode(decision_root(decisions)).decode(), pinned=trust.pinned)
    anchors = "pinned by the verifier" if trust.pinned else "taken from the bundle itself (NOT pinned)"
    rep.lines = [
        f"bundle sha256 {bundle_hash}",
        f"checkpoint {c.origin} size {c.size} root {rep.root}",
        f"keys: {anchors}",
        f"signatures: log ok, witnesses {', '.join(signers)} ({rep.quorum} required)",
        f"entries {c.size} checked (inclusion proofs), {actions} action permits valid, "
        f"{len(files)} files match the signed manifest",
        f"decision root {rep.decision_root} (the {actions} actions in id order; gatewatch replay --keys-dir prints it)",
        f"policy: {'bundled files compose to ' + composed[0] + ', carried by logged actions' if composed else 'no policy files bundled'}",
        f"deliveries: {deliveries.get('confirmed', 0)} recipient acks verified, "
        f"{deliveries.get('unconfirmed', 0)} unconfirmed, {deliveries.get('not_requested', 0)} without ack",
        *evidence_lines,
    ]
    rep.deliveries = deliveries
    if replayed is not None:
        rep.lines.append(f"replay: {replayed[1]} of {actions} actions re-derived from {replayed[0]} attestations "
                         "(pre-state and inputs hash as recorded, post-state hash and records match)")
        rep.lines += replayed[2]
    if trust.pinned:
        rep.lines.append("INV1 EvidenceBound: ok (bundle hash, Merkle root, k-of-N signatures by pinned keys)")
        rep.lines.append("verified against trusted keys")
    else:
        rep.lines.append("self-consistent, NOT verified against trusted keys: its signers are not pinned "
                         "(pass --trusted-keys DIR)")
    return rep


def _check_delivery(i: int, value: dict, trust: Trust) -> str | None:
    """A RESULT's claimed delivery: a confirmed ack must verify against the pinned key of the receipt's
    own backend, recipient-<backend> (an executor key alone cannot forge a recipient's confirmation,
    and one recipient cannot confirm a delivery to another). Returns the delivery status."""
    if value.get("type") != "RESULT":
        return None
    backend = value.get("backend")
    name = RECIPIENT_PREFIX + backend if isinstance(backend, str) else None
    pinned = trust.recipients.get(name) if name else None
    why = delivery_problem(value, {key_id(pinned): pinned} if pinned else {})
    if why == "unknown_key":
        other = next((n for n, vk in sorted(trust.recipients.items()) if key_id(vk) == value.get("ack_key_id")), None)
        if other:  # a pinned key, but another recipient's: the ack is not bound to this delivery
            raise BundleError(f"entry {i}: receipt {value.get('id')}: delivery ack refused: signed by {other}, "
                              f"not by {name or 'a recipient'} of backend {backend!r}")
        raise UntrustedError(f"entry {i}: receipt {value.get('id')}: delivery ack key {value.get('ack_key_id')} "
                             f"is not the pinned recipient key {name or '(receipt names no backend)'}")
    if why:
        raise BundleError(f"entry {i}: receipt {value.get('id')}: delivery ack refused: {why}")
    return value.get("delivery", "not_requested")


def _check_entries(files: dict, c: cp.Checkpoint, trust: Trust) -> tuple[int, set, list, dict]:
    entry_lines = files.get("entries.ndjson", b"").split(b"\n")
    proof_lines = files.get("proofs.ndjson", b"").split(b"\n")
    for name, lines in (("entries.ndjson", entry_lines), ("proofs.ndjson", proof_lines)):
        if lines[-1] != b"":
            raise BundleError(f"file {name}: does not end in a newline (not as the exporter writes it)")
        lines.pop()
    actions, carried = 0, set()  # policy hashes carried by verified (signed, logged) actions
    ids: set[str] = set()
    log_prefix = None  # GATEWATCH_TOPIC_PREFIX of the sink that wrote the log, from entry 0
    decisions: list[tuple[str, bytes]] = []
    deliveries: dict[str, int] = {}
    for i in range(max(len(entry_lines), len(proof_lines), c.size)):
        if i >= c.size:
            raise BundleError(f"entry {i}: beyond the checkpoint size {c.size} (inserted)")
        if i >= len(entry_lines) or i >= len(proof_lines):
            raise BundleError(f"entry {i}: missing (the checkpoint covers {c.size} entries)")
        why, value, topic, is_act = _check_entry(i, entry_lines[i], proof_lines[i], c, trust)
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
        status = _check_delivery(i, value, trust) if is_receipt(value) else None
        if status is not None:
            deliveries[status] = deliveries.get(status, 0) + 1
        if is_act:
            actions += 1
            carried.add(value["policy_hash"])
            decisions.append((value["id"], canonical_json(value)))
    return actions, carried, decisions, deliveries


def _check_entry(i: int, eline: bytes, pline: bytes, c: cp.Checkpoint, trust: Trust) -> tuple[str, dict, str, bool]:
    """(why the entry is bad or "", its value, its topic, whether it is an action whose permit was checked)."""
    try:
        e, p = orjson.loads(eline), orjson.loads(pline)
        value = e["value"]
        proof = [strict_b64(h) for h in p["proof"]]
        leaf_hash = strict_hex(p["leaf_hash"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return "malformed line", {}, "", False
    if e.get("index") != i or p.get("index") != i:
        return f"out of place (says index {e.get('index')}, proof {p.get('index')})", {}, "", False
    if not isinstance(value, dict) or not isinstance(value.get("id"), str) or value.get("id") != e.get("id"):
        return "id does not match its value", {}, "", False
    topic = e.get("topic")
    if not isinstance(topic, str):
        return "topic is not a string", {}, "", False
    if entry_line(i, e["id"], topic, value) != eline:
        return "entry line is not canonical (re-serialized: not the bytes the exporter writes)", {}, "", False
    if proof_line(i, leaf_hash, proof) != pline:
        return "proof line is not canonical (re-serialized: not the bytes the exporter writes)", {}, "", False
    if merkle.hash_leaf(canonical_json(value)) != leaf_hash:
        return "value does not hash to its leaf hash", {}, "", False
    if not merkle.verify_inclusion(leaf_hash, i, c.size, proof, c.root):
        return "inclusion proof does not verify against the checkpoint root", {}, "", False
    kind = next((k for k in LOGGED_KINDS if topic.endswith(k)), "")
    if not kind:  # named by the caller's topic check
        return "", value, topic, False
    why, cls = check_record(kind, topic, value, trust.decider, trust.executor)
    if why:
        return why, {}, "", False
    return "", value, topic, cls == "action"
