"""Attested decisions (seed 001 PROMOTE_ATTEST): for every action, an attestation record with the
hash of the engine's scope state before and after the signal batch that produced it, and what an
auditor needs to re-run that batch: the pre-state document and the input batch.

Unit of attestation: one Engine.on_batch call and one scope (the decide stage calls it once per
(scope, domain, step) batch). pre = the scope's state before the call's first signal of that
scope, post = after the call. Only calls that produced actions are attested (gate transitions
are actions: advance/promote); the gw.gates status records are not logged in the WORM and carry
nothing new.

State hash: sha256 of the canonical JSON of Engine.scope_state(scope) (version, frontier,
pending steps, rule and gate units, policy hash): exactly what the batch can change, and what
load_scope_state restores. Its size is NOT bounded: pending steps are (evaluation.max_pending_steps),
but a scope keeps one unit per release it ever saw and each unit every action it took (measured:
~1.35 KB per release, ~155 bytes per action of a unit). A record over MAX_ATTESTATION_BYTES (well
under Kafka's 1 MB default) leaves its pre-state document out, marked in `omitted`, and verify
--replay names its actions "not replayable" instead of decide stalling on a publish that cannot
succeed (from ~350 releases of one scope on). Pruning finished units would change what a late signal
of a finished release decides, so it is not done here.

Signature: the decider key signs b"gatewatch-attestation-v1\0" + id (processors.signing); the id
covers everything but the id and the signature. The WORM log admits signed attestations only.

Randomness: the engine draws none (the request-delta intervals are distribution-free order
statistics; the RUM bootstrap runs in the signals stage with a seed derived from the policy hash
and the window, and reaches the engine as input values). The record says so (`rng`) rather than
leaving it out.

The attestation record (topic attestations, logged by the WORM sink):
  {"type": "attestation", "id", "scope", "policy_hash", "state_version", "ts" (of the last action),
   "pre_state": canonical JSON text, "inputs": canonical JSON text of the call's signals of the scope,
   "hashes": {"pre_state", "post_state", "inputs"}, "actions": [ids in order], "rng": {...},
   "omitted": null | {"pre_state_bytes", "inputs_bytes", "limit"}, "signature": null | {alg, key_id, sig}}
id = content_id of the record without id and signature. The documents are JSON text so that their hashes are
over the very bytes recorded.

Why the action records do not carry the hashes themselves: a state hash depends on how the
domains' batches interleaved on the way in (what else was pending), while an action must not
(INV4: the same signals give the same decisions, byte for byte, whatever the interleaving; its id,
permit and the decision root rest on that). The attestation names the actions by id, and an
action id is the content hash of the decision, so each action maps to the attestation that
produced it; `gatewatch verify --replay` checks that mapping by re-deriving the actions.
"""
from __future__ import annotations

import orjson

from gatewatch.processors.canonical import canonical_json, content_id, sha256_hex

TYPE = "attestation"
RNG = {"draws": 0, "seeds": [],
       "note": "the engine draws no random numbers; upstream intervals arrive as input values"}
_STATE_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
# Kafka's default message limit is 1 MB; the record is kept well under it (key and headers aside).
MAX_ATTESTATION_BYTES = 512 * 1024
OVERHEAD_BYTES = 256  # the signature field added after the content id


def state_bytes(engine, scope: str) -> bytes:
    """canonical_json(engine.scope_state(scope)) without its deep copy: orjson writes the int step
    keys as strings and sorts them as strings, as canonical JSON of the copy does."""
    st = engine.scopes.get(scope)
    if st is None:
        return canonical_json(engine.scope_state(scope))
    return orjson.dumps({**st, "policy_hash": engine.policy.hash}, option=_STATE_OPTS)


def seal(engine, signals: list, pre: dict[str, bytes], made: list[tuple[str, dict]]) -> None:
    """Append one attestation record per scope that acted in this call to engine.attestations,
    signed when the engine's signer can sign attestations (the decider's; replay's engine has none)."""
    sign = getattr(engine.signer, "attestation_signature", None)
    for scope in dict.fromkeys(s for s, _ in made):
        recs = [rec for s, rec in made if s == scope]
        inputs = canonical_json([s for s in signals if isinstance(s, dict) and s.get("scope") == scope])
        att = attestation(engine.policy.hash, scope, pre[scope], state_bytes(engine, scope),
                          inputs, [rec["id"] for rec in recs], recs[-1]["ts"])
        engine.attestations.append({**att, "signature": sign(att["id"]) if sign else None})


def attestation(policy_hash: str, scope: str, pre: bytes, post: bytes, inputs: bytes, action_ids: list[str],
                ts: str, limit: int | None = None) -> dict:
    """The attestation record; when it would exceed `limit` bytes (default MAX_ATTESTATION_BYTES) its
    pre-state document (then, if still too big, its inputs) is left out and `omitted` says so with
    the left-out sizes: the hashes stay, so the record still binds them, but it cannot be replayed.
    A record over Kafka's message limit would stop decide (it never checkpoints past a failed publish)."""
    from gatewatch.processors.policy.engine import STATE_VERSION
    limit = MAX_ATTESTATION_BYTES if limit is None else limit
    doc = {"type": TYPE, "scope": scope, "policy_hash": policy_hash, "state_version": STATE_VERSION,
           "ts": ts, "pre_state": pre.decode("utf-8"), "inputs": inputs.decode("utf-8"),
           "hashes": {"pre_state": sha256_hex(pre), "post_state": sha256_hex(post), "inputs": sha256_hex(inputs)},
           "actions": list(action_ids), "rng": dict(RNG), "omitted": None}
    if len(canonical_json(doc)) + OVERHEAD_BYTES > limit:
        doc["pre_state"], doc["omitted"] = None, {"pre_state_bytes": len(pre), "inputs_bytes": None, "limit": limit}
        if len(canonical_json(doc)) + OVERHEAD_BYTES > limit:
            doc["inputs"], doc["omitted"]["inputs_bytes"] = None, len(inputs)
    return {"id": content_id(doc), **doc}


def is_attestation(value) -> bool:
    return isinstance(value, dict) and value.get("type") == TYPE


def _content(value: dict) -> dict:
    """What the id is the content hash of: everything but the id and the signature over it."""
    return {k: v for k, v in value.items() if k not in ("id", "signature")}


def check_id(value: dict) -> str | None:
    """None if the attestation's id is the content hash of the rest of it, else why not."""
    if content_id(_content(value)) != value.get("id"):
        return "bad_id: not the content hash of the attestation"
    return None


def not_replayable(record: dict) -> str | None:
    """Why a (signed, size-guarded) attestation cannot be replayed, or None."""
    om = record.get("omitted")
    if not isinstance(om, dict):
        return None
    sizes = [f"{name} of {om.get(k)} bytes" for k, name in (("pre_state_bytes", "pre-state"), ("inputs_bytes", "inputs"))
             if om.get(k) is not None]
    return f"not replayable: {' and '.join(sizes) or 'a document'} left out (attestation over {om.get('limit')} bytes)"


def replay(engine_factory, record: dict) -> tuple[str | None, list[dict], str]:
    """Re-run one attestation: (why it does not replay or None, the re-derived actions, post hash).
    Replay must derive exactly one attestation, and it must be the recorded record itself, every
    field (its signature aside: the verifier holds no key; verify checks it against the pinned
    decider key): `why` names the fields that differ.

    engine_factory(policy_hash) -> a fresh unsigned Engine for that policy, or None if unknown.
    Checks the recorded documents against their recorded hashes, that the inputs are all of the
    record's scope and that it lists at least one action, restores the pre-state, feeds the inputs
    and returns what the engine decides (permit null: the verifier holds no key)."""
    hashes = record.get("hashes") if isinstance(record.get("hashes"), dict) else {}
    pre, inputs, scope = record.get("pre_state"), record.get("inputs"), record.get("scope")
    if not isinstance(pre, str) or not isinstance(inputs, str):
        return "pre_state and inputs must be JSON text", [], ""
    if not isinstance(record.get("actions"), list) or not record["actions"]:
        return "an attestation must list the actions it accounts for (it lists none)", [], ""
    if sha256_hex(pre.encode("utf-8")) != hashes.get("pre_state"):
        return "the recorded pre-state does not hash to the recorded pre-state hash", [], ""
    if sha256_hex(inputs.encode("utf-8")) != hashes.get("inputs"):
        return "the recorded inputs do not hash to the recorded inputs hash", [], ""
    engine = engine_factory(record.get("policy_hash"))
    if engine is None:
        return (f"policy {record.get('policy_hash')} is not among the bundled policies (the attestation was made "
                "under it: export with --policy the policy files in force then)"), [], ""
    try:
        state, batch = orjson.loads(pre), orjson.loads(inputs)
        if not isinstance(batch, list) or not all(isinstance(s, dict) and s.get("scope") == scope for s in batch):
            return f"the recorded inputs are not all signals of scope {scope}", [], ""
        engine.load_scope_state(scope, state)
        if state_bytes(engine, scope) != pre.encode("utf-8"):
            return "the recorded pre-state is not an engine state as the engine writes it", [], ""
        actions = engine.on_batch(batch)
        engine.take_gate_records()
        engine.take_dropped()
        made = engine.take_attestations()
    except Exception as e:  # noqa: BLE001 - a recorded document the engine cannot run: say so, never a traceback
        return f"the recorded pre-state or inputs do not run ({type(e).__name__}: {e})"[:300], [], ""
    if len(made) != 1:
        return f"replay derives {len(made)} attestations from the recorded inputs, not one", actions, ""
    post = made[0]["hashes"]["post_state"]
    if post != hashes.get("post_state"):
        return f"replay from the pre-state gives post-state hash {post}, not the recorded {hashes.get('post_state')}", \
            actions, post
    if made[0]["actions"] != record["actions"]:
        return (f"replay decides {', '.join(made[0]['actions'])}, the attestation records "
                f"{', '.join(map(str, record['actions']))}"), actions, post
    recorded = {k: v for k, v in record.items() if k != "signature"}
    derived = {k: v for k, v in made[0].items() if k != "signature"}
    if derived != recorded:
        fields = sorted(k for k in set(derived) | set(recorded) if derived.get(k) != recorded.get(k))
        return f"the recorded attestation differs from the one replay derives in {', '.join(fields)}", actions, post
    return None, actions, post
