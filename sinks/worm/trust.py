"""Trust anchors for `gatewatch verify`: what the verifier pins, never what a bundle says.

A Trust holds the checkpoint policy (log origin + key, witness keys, k-of-N quorum) and the
decider and executor keys. Pinned anchors come from the verifier's side: a keys directory
(log.pub, witness-*.pub, decider.pub, executor.pub, recipient-<name>.pub for the webhook recipients
whose signed delivery acks receipts carry) and optionally a checkpoint policy file
that overrides the witness set and quorum. Everything inside a bundle (keys/public_keys.json,
policy/witness.policy) is only compared with the anchors: a bundle naming other witnesses, a
lower quorum or other keys is refused. Without anchors the bundle's own keys are used and the
result is "self-consistent", never "verified" (Trust.pinned is False).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nacl.signing import VerifyKey

from gatewatch.processors.signing import key_id
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.bundle import BundleError, strict_hex
from gatewatch.streams.runtime.errors import GatewatchError


class UntrustedError(BundleError):
    """The bundle's signers or witness policy are not the pinned ones (exit 3 of `gatewatch verify`)."""


@dataclass(frozen=True)
class Trust:
    policy: cp.Policy              # log origin + key, witnesses, quorum
    decider: dict[str, VerifyKey]  # key id -> key: action permits
    executor: dict[str, VerifyKey]  # key id -> key: receipts
    pinned: bool                   # True only for anchors the verifier supplied
    recipients: dict[str, VerifyKey] = field(default_factory=dict)  # "recipient-<backend>" -> key: delivery acks


RECIPIENT_PREFIX = "recipient-"  # <keys dir>/recipient-<name>.pub: a webhook recipient's ack key


def quorum_k(policy: cp.Policy) -> int:
    return policy.groups.get(policy.quorum, (1, ()))[0]


def describe(policy: cp.Policy) -> str:
    return f"{quorum_k(policy)}-of-{len(policy.witnesses)}"


def trust_from_dir(keys_dir: str, origin: str = cp.DEFAULT_ORIGIN, quorum: int = 2,
                   policy_text: str | None = None, policy_name: str = "policy") -> Trust:
    """Pinned anchors: decider/executor, every recipient-<name>.pub (and, without a policy file,
    log + witness-1..3) from keys_dir."""
    from gatewatch.streams.runtime.keys import load_verify_key
    if policy_text is not None:
        try:
            policy = cp.parse_policy(policy_text)
        except cp.NoteError as e:  # the verifier's own file, not the bundle: not a sign of tampering
            raise GatewatchError(f"file {policy_name}: {e}") from None
    else:
        policy = cp.default_policy(origin, keys_dir, quorum)
    dk, ek = load_verify_key("decider", keys_dir), load_verify_key("executor", keys_dir)
    recipients = {p.stem: load_verify_key(p.stem, keys_dir)
                  for p in sorted(Path(keys_dir).glob(RECIPIENT_PREFIX + "*.pub"))}
    return Trust(policy, {key_id(dk): dk}, {key_id(ek): ek}, pinned=True, recipients=recipients)


def bundle_roles(keys: dict) -> dict[str, VerifyKey]:
    """keys/public_keys.json parsed: role -> key, each key id checked against its key."""
    try:
        by_role = {r: VerifyKey(strict_hex(v["public_key"])) for r, v in keys.items()}
        if any(key_id(vk) != keys[r]["key_id"] for r, vk in by_role.items()):
            raise ValueError
    except (ValueError, TypeError, KeyError, AttributeError):
        raise BundleError("file keys/public_keys.json: malformed or key id does not match its key") from None
    return by_role


def trust_from_bundle(keys: dict, policy: cp.Policy) -> Trust:
    """Unpinned: the bundle's own keys, cross-checked with its own policy (self-consistency only)."""
    by_role = bundle_roles(keys)
    want = {"log": policy.log.key, **{n: v.key for n, v in policy.witnesses.items()}}
    for role, vk in want.items():
        if role not in by_role or by_role[role].encode() != vk.encode():
            raise BundleError(f"file keys/public_keys.json: {role} key differs from policy/witness.policy")
    if "decider" not in by_role:
        raise BundleError("file keys/public_keys.json: no decider key")
    ex = by_role.get("executor")
    return Trust(policy, {key_id(by_role["decider"]): by_role["decider"]},
                 {key_id(ex): ex} if ex else {}, pinned=False,
                 recipients={r: vk for r, vk in by_role.items() if r.startswith(RECIPIENT_PREFIX)})


def compare(trust: Trust, keys: dict, policy: cp.Policy) -> None:
    """Refuse a bundle whose keys or witness policy differ from the pinned anchors (one line, naming the file)."""
    pin = trust.policy
    if (policy.log.name, policy.log.key.encode()) != (pin.log.name, pin.log.key.encode()):
        raise UntrustedError(f"file policy/witness.policy: log {policy.log.name!r} or its key differs from the pinned "
                          f"log {pin.log.name!r}")
    for name, v in sorted(policy.witnesses.items()):
        p = pin.witnesses.get(name)
        if p is None or p.key.encode() != v.key.encode() or p.name != v.name:
            raise UntrustedError(f"file policy/witness.policy: witness {name!r} is not a pinned witness (key not trusted)")
    if quorum_k(policy) < quorum_k(pin):
        raise UntrustedError(f"file policy/witness.policy: quorum {describe(policy)} is lower than the pinned "
                          f"{describe(pin)} (downgrade refused)")
    if policy.text() != pin.text():
        raise UntrustedError("file policy/witness.policy: differs from the pinned checkpoint policy")
    by_role = bundle_roles(keys)
    pinned_roles = {"log": pin.log.key, **{n: v.key for n, v in pin.witnesses.items()}}
    pinned_roles.update({"decider": next(iter(trust.decider.values()))} if trust.decider else {})
    pinned_roles.update({"executor": next(iter(trust.executor.values()))} if trust.executor else {})
    pinned_ids = {key_id(vk) for vk in trust.recipients.values()}
    for role, vk in sorted(by_role.items()):  # a recipient key the bundle names must be a pinned one
        if role.startswith(RECIPIENT_PREFIX) and key_id(vk) not in pinned_ids:
            raise UntrustedError(f"file keys/public_keys.json: {role} key is not a pinned recipient key")
    for role, vk in sorted(pinned_roles.items()):
        got = by_role.get(role)
        if got is not None and got.encode() != vk.encode():
            raise UntrustedError(f"file keys/public_keys.json: {role} key differs from the trusted keys")
