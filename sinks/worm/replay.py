"""`gatewatch verify --replay`: re-derive every logged action from its attestation.

Runs after verify_bundle's checks passed (so every entry is the logged, Merkle-bound one and every
permit verifies against the pinned decider key). For each attestation (processors.policy.attest):
the bundled policy files are loaded (overlays under policies/services/ included) and the policy
whose hash the attestation names gets a fresh, unsigned Engine; the pre-state document must hash to
the recorded pre-state hash and the inputs to theirs; the engine restores the pre-state, takes the
inputs, and must give the recorded post-state hash, the actions the attestation lists (in order)
and, for each of them the bundle holds, the very logged record, field for field except the permit.
The permit is not re-derived: the verifier holds no decider key (Ed25519 and the permit's times are
deterministic, from the action's ts and the policy ttl, so the decider would sign the same bytes);
verify already checked it against the record digest and the pinned decider key. Every logged
action must be named by an attestation in the bundle.

A failure names the action (id and scope) and what differs: BundleError, exit 1 in the CLI.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy.attest import is_attestation, replay
from gatewatch.processors.policy.engine import Engine
from gatewatch.sinks.worm.bundle import BundleError
from gatewatch.sinks.worm.store import is_action


def bundled_policies(files: dict[str, bytes]) -> dict[str, object]:
    """{policy hash: Policy} of the bundle's policies/ files: the base and each overlay, composed as
    the decide stage composes its --policy directory."""
    from gatewatch.processors.policy import PolicyError
    from gatewatch.streams.runtime.errors import GatewatchError
    from gatewatch.streams.runtime.policy_files import load_policy_dir
    members = {k[len("policies/"):]: v for k, v in files.items() if k.startswith("policies/")}
    if not members:
        raise BundleError("file policies/: --replay needs the policy files (export with --policy DIR)")
    with tempfile.TemporaryDirectory(prefix="gatewatch-replay-") as tmp:
        for rel, data in members.items():
            p = Path(tmp, rel)
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise BundleError(f"file policies/{rel}: not a plain path")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        try:
            base = load_policy_dir(tmp)
        except (PolicyError, GatewatchError) as e:
            raise BundleError(f"file policies/: the policy files do not load ({e})") from None
    out = {base.hash: base}
    for o in getattr(base, "overlays", ()):
        out[o.policy.hash] = o.policy
    return out


def _entries(files: dict[str, bytes]) -> tuple[list[dict], list[dict]]:
    """(attestations, actions) among the bundle's entries, in log order."""
    attestations, actions = [], []
    for line in files.get("entries.ndjson", b"").splitlines():
        e = orjson.loads(line)
        value, topic = e["value"], e["topic"]
        if is_attestation(value):
            attestations.append(value)
        elif is_action(topic, value):
            actions.append(value)
    return attestations, actions


def _listed(att: dict) -> list[str]:
    """The action ids an attestation lists (anything else in the list is not an id: ignored here,
    and the list then differs from what replay decides)."""
    acts = att.get("actions")
    return [a for a in acts if isinstance(a, str)] if isinstance(acts, list) else []


def _without_permit(rec: dict) -> bytes:
    return canonical_json({k: v for k, v in rec.items() if k != "permit"})


def _name(action: dict) -> str:
    return f"action {action.get('id')} (scope {action.get('scope')})"


def replay_bundle(files: dict[str, bytes]) -> tuple[int, int]:
    """(attestations replayed, actions re-derived); raises BundleError naming the first action that
    does not replay."""
    attestations, actions = _entries(files)
    attested = {aid for att in attestations for aid in _listed(att)}
    logged = {a["id"]: a for a in actions}
    for act in actions:  # every decision must be attested, by an attestation the bundle holds
        if act["id"] not in attested:
            raise BundleError(f"{_name(act)}: no attestation in the bundle names it (not attested, or "
                              "logged after the checkpoint the bundle ends at)")
    policies = bundled_policies(files) if attestations else {}

    def engine_for(policy_hash):
        policy = policies.get(policy_hash) if isinstance(policy_hash, str) else None
        return None if policy is None else Engine(policy)

    derived: set[str] = set()
    for att in attestations:
        listed = _listed(att)
        # its actions the bundle holds (a bundle cut at a checkpoint may end between the two)
        named = [logged[i] for i in listed if i in logged]
        why, got, post = replay(engine_for, att)
        if why is None and post != att["hashes"].get("post_state"):
            why = f"replay from the pre-state gives post-state hash {post}, not the recorded {att['hashes'].get('post_state')}"
        again = {a["id"]: a for a in got}
        if why is None and list(again) != att.get("actions"):
            why = f"replay decides {', '.join(again) or 'nothing'}, the attestation records {', '.join(map(str, listed))}"
        if why is None:
            for act in named:  # the recorded action itself, field for field (its permit aside)
                if _without_permit(again[act["id"]]) != _without_permit(act):
                    raise BundleError(f"{_name(act)}: the logged record differs from the one replay derives "
                                      f"from attestation {att['id']}")
                derived.add(act["id"])
            continue
        first = named[0] if named else {"id": (listed or ["?"])[0], "scope": att.get("scope")}
        raise BundleError(f"{_name(first)}: attestation {att['id']}: {why}")
    return len(attestations), len(derived)
