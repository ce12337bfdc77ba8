"""`gatewatch verify --replay`: re-derive every logged action from its attestation.

Runs after verify_bundle's checks passed (so every entry is the logged, Merkle-bound one and every
permit verifies against the pinned decider key). For each attestation (processors.policy.attest):
the bundled policy files are loaded (overlays under policies/services/ included) and the policy
whose hash the attestation names gets a fresh, unsigned Engine; the pre-state document must hash to
the recorded pre-state hash and the inputs (all of the attestation's scope) to theirs; the engine
restores the pre-state, takes the inputs, and must derive exactly one attestation, the recorded one
field for field (its signature aside, which verify checked against the pinned decider key), with
at least one action, and, for each action the bundle holds, the very logged record, field for field
except the permit.
The permit is not re-derived: the verifier holds no decider key (Ed25519 and the permit's times are
deterministic, from the action's ts and the policy ttl, so the decider would sign the same bytes);
verify already checked it against the record digest and the pinned decider key. Every logged
action must be named by exactly one attestation in the bundle, except those logged before the
log's first attestation (reported as not attested) and those whose attestation had to leave its
pre-state out (reported as not replayable).

A failure names the action (id and scope) and what differs: BundleError, exit 1 in the CLI.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy.attest import is_attestation, not_replayable, replay
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


def _entries(files: dict[str, bytes]) -> tuple[list[dict], list[tuple[int, dict]], int | None]:
    """(attestations, [(log position, action)], log position of the first attestation or None)."""
    attestations, actions, first = [], [], None
    for pos, line in enumerate(files.get("entries.ndjson", b"").splitlines()):
        e = orjson.loads(line)
        value, topic = e["value"], e["topic"]
        if is_attestation(value):
            attestations.append(value)
            first = pos if first is None else first
        elif is_action(topic, value):
            actions.append((pos, value))
    return attestations, actions, first


def _listed(att: dict) -> list[str]:
    """The action ids an attestation lists (anything else in the list is not an id: ignored here,
    and the list then differs from what replay decides)."""
    acts = att.get("actions")
    return [a for a in acts if isinstance(a, str)] if isinstance(acts, list) else []


def _without_permit(rec: dict) -> bytes:
    return canonical_json({k: v for k, v in rec.items() if k != "permit"})


def _name(action: dict) -> str:
    return f"action {action.get('id')} (scope {action.get('scope')})"


def replay_bundle(files: dict[str, bytes]) -> tuple[int, int, list[str]]:
    """(attestations replayed, actions re-derived, one line per kind of genuine action that cannot be
    re-derived); raises BundleError naming the first action that does not replay.

    Every logged action must be listed by exactly one attestation (one decision, one account of it).
    Two kinds are reported rather than refused (their permits verified: the decider took them), each
    on its own line: actions no attestation lists that the log holds before its first attestation
    (decided by a gatewatch without attestations), and actions whose attestation left its pre-state
    out (over the size limit: processors.policy.attest.not_replayable)."""
    attestations, actions, first_att = _entries(files)
    listing: dict[str, list[str]] = {}
    for att in attestations:
        for aid in _listed(att):
            listing.setdefault(aid, []).append(str(att.get("id")))
    logged = {a["id"]: a for _, a in actions}
    unattested = []
    for pos, act in actions:
        owners = listing.get(act["id"], [])
        if len(owners) > 1:
            raise BundleError(f"{_name(act)}: listed by {len(owners)} attestations ({', '.join(owners)}); "
                              "a decision has exactly one")
        if owners:
            continue
        if first_att is None or pos < first_att:
            unattested.append(act["id"])
            continue
        raise BundleError(f"{_name(act)}: no attestation in the bundle names it (not attested, or "
                          "logged after the checkpoint the bundle ends at)")
    policies = bundled_policies(files) if attestations else {}

    def engine_for(policy_hash):
        policy = policies.get(policy_hash) if isinstance(policy_hash, str) else None
        return None if policy is None else Engine(policy)

    derived: set[str] = set()
    unreplayable: list[str] = []
    for att in attestations:
        listed = _listed(att)
        # its actions the bundle holds (a bundle cut at a checkpoint may end between the two)
        named = [logged[i] for i in listed if i in logged]
        skip = not_replayable(att)
        if skip is not None:
            unreplayable += [f"{_name(a)}: {skip}" for a in named]
            continue
        why, got, _ = replay(engine_for, att)
        if why is None:
            again = {a["id"]: a for a in got}
            for act in named:  # the recorded action itself, field for field (its permit aside)
                if _without_permit(again[act["id"]]) != _without_permit(act):
                    raise BundleError(f"{_name(act)}: the logged record differs from the one replay derives "
                                      f"from attestation {att['id']}")
                derived.add(act["id"])
            continue
        first = named[0] if named else {"id": (listed or ["?"])[0], "scope": att.get("scope")}
        raise BundleError(f"{_name(first)}: attestation {att['id']}: {why}")
    notes = []
    if unattested:
        notes.append(f"replay: {len(unattested)} actions not attested: logged before the log's first attestation "
                     f"(decided before attestations existed), not re-derived: {', '.join(unattested)}")
    notes += [f"replay: {line}" for line in unreplayable]
    return len(attestations), len(derived), notes
