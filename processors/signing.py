"""Ed25519 key ids, detached signatures and action permits (seed 004).

Pure: keys come in as pynacl objects; nothing here reads files or clocks.
A permit binds exactly one action id, its scope and action, a not-before, an
expiry and a nonce. Its life is bounded: expires - not_before <= the verifier's maximum
lifetime (default 1 h; never above the 24 h ceiling, whatever a caller asks), and the
tolerated clock skew (leeway) is capped at 10 minutes. The nonce is derived from the action id and the key, so the same
decision always yields byte-identical permits (INV4) while two different
actions never share one.
"""
from __future__ import annotations

import base64
import hashlib

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.timefmt import TimeFormatError, format_ts, parse_time_ms

PERMIT_FIELDS = ("action_id", "scope", "action", "digest", "not_before", "expires", "nonce")
DEFAULT_MAX_LIFETIME_MS = 3_600_000      # 1 h: the executor's default, the policy's default ttl
MAX_LIFETIME_CEILING_MS = 86_400_000     # 24 h: no configuration goes above it
MAX_LEEWAY_MS = 600_000                  # 10 min of tolerated decider/executor clock skew


def key_id(verify_key: VerifyKey | bytes) -> str:
    raw = verify_key.encode() if isinstance(verify_key, VerifyKey) else bytes(verify_key)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def sign_b64(signing_key: SigningKey, message: bytes) -> str:
    return base64.b64encode(signing_key.sign(message).signature).decode()


def verify_b64(verify_key: VerifyKey, message: bytes, sig_b64: str) -> bool:
    try:
        sig = base64.b64decode(sig_b64, validate=True)
        verify_key.verify(message, sig)
        return True
    except (BadSignatureError, ValueError, TypeError):
        return False


def permit_message(permit: dict) -> bytes:
    return canonical_json({k: permit[k] for k in PERMIT_FIELDS})


def record_digest(record: dict) -> str:
    """sha256 of the canonical JSON of the record without its permit: binds every field."""
    return hashlib.sha256(canonical_json({k: v for k, v in record.items() if k != "permit"})).hexdigest()


def issue_permit(signing_key: SigningKey, record: dict, expires_ms: int, not_before_ms: int | None = None) -> dict:
    """A permit for an action record (which must carry id, scope and action), valid from
    not_before_ms (default: expires_ms minus the default lifetime) until expires_ms."""
    if not_before_ms is None:
        not_before_ms = expires_ms - DEFAULT_MAX_LIFETIME_MS
    action_id, scope, action = record["id"], record["scope"], record["action"]
    vk = signing_key.verify_key
    nonce = hashlib.sha256(b"gatewatch-permit-nonce\0" + action_id.encode() + vk.encode()).hexdigest()[:32]
    permit = {
        "alg": "ed25519",
        "key_id": key_id(vk),
        "action_id": action_id,
        "scope": scope,
        "action": action,
        "digest": record_digest(record),
        "not_before": format_ts(not_before_ms),
        "expires": format_ts(expires_ms),
        "nonce": nonce,
    }
    permit["sig"] = sign_b64(signing_key, permit_message(permit))
    return permit


def check_permit(record: dict, trusted: dict[str, VerifyKey], now_ms: int,
                 max_lifetime_ms: int = DEFAULT_MAX_LIFETIME_MS, leeway_ms: int = 0) -> str | None:
    """None when the record's permit is valid for it at now_ms, else a refusal reason.

    Reasons: missing_permit, malformed_permit, unknown_key, bad_signature,
    mismatch_<field> (action_id, scope, action, digest: any altered field), lifetime_too_long
    (expires - not_before above max_lifetime_ms, itself capped at 24 h), not_yet_valid, expired
    (both judged with leeway_ms of clock skew, capped at 10 min). Whether the nonce was seen before
    is the executor's (stateful) check.
    """
    max_lifetime_ms = min(max_lifetime_ms, MAX_LIFETIME_CEILING_MS)
    leeway_ms = max(0, min(leeway_ms, MAX_LEEWAY_MS))
    permit = record.get("permit")
    if not isinstance(permit, dict):
        return "missing_permit"
    if permit.get("alg") != "ed25519" or not all(isinstance(permit.get(k), str) for k in PERMIT_FIELDS + ("sig", "key_id")):
        return "malformed_permit"
    vk = trusted.get(permit["key_id"])
    if vk is None:
        return "unknown_key"
    if not verify_b64(vk, permit_message(permit), permit["sig"]):
        return "bad_signature"
    for field, rec_field in (("action_id", "id"), ("scope", "scope"), ("action", "action")):
        if permit[field] != record.get(rec_field):
            return f"mismatch_{field}"
    if permit["digest"] != record_digest(record):
        return "mismatch_digest"
    try:
        not_before, expires = parse_time_ms(permit["not_before"]), parse_time_ms(permit["expires"])
    except TimeFormatError:
        return "malformed_permit"
    if expires < not_before:
        return "malformed_permit"
    if expires - not_before > max_lifetime_ms:
        return "lifetime_too_long"
    if now_ms + leeway_ms < not_before:
        return "not_yet_valid"
    if now_ms - leeway_ms > expires:
        return "expired"
    return None


# Attestations (processors.policy.attest) are signed by the decider key over their content id
# with this prefix: a permit message is canonical JSON (it starts with "{"), so no attestation
# signature is ever a valid permit signature, nor the reverse.
ATTESTATION_DOMAIN = b"gatewatch-attestation-v1\0"


def attestation_message(att_id: str) -> bytes:
    return ATTESTATION_DOMAIN + att_id.encode("utf-8")


def sign_attestation(signing_key: SigningKey, att_id: str) -> dict:
    """The `signature` field of an attestation whose content id is att_id."""
    return {"alg": "ed25519", "key_id": key_id(signing_key.verify_key),
            "sig": sign_b64(signing_key, attestation_message(att_id))}


def check_attestation_signature(record: dict, trusted: dict[str, VerifyKey]) -> str | None:
    """None when the attestation's signature is a pinned decider key's over its id, else why not."""
    sig = record.get("signature")
    if not isinstance(sig, dict):
        return "missing_signature"
    if sig.get("alg") != "ed25519" or not isinstance(sig.get("key_id"), str) or not isinstance(sig.get("sig"), str) \
            or not isinstance(record.get("id"), str):
        return "malformed_signature"
    vk = trusted.get(sig["key_id"])
    if vk is None:
        return "unknown_key"
    if not verify_b64(vk, attestation_message(record["id"]), sig["sig"]):
        return "bad_signature"
    return None
