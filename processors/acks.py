"""Signed delivery acknowledgements (seed 004 "signed delivery"): the recipient's own word that it got an action.

A webhook recipient answers a gatewatch action with a JSON body

    {"ack": {"action_id", "idempotency_key", "outcome", "recipient", "ts"}, "key_id", "sig"}

where every ack field is a string, `outcome` is "success" (the recipient answers 2xx) or
"failure" (it answers 4xx/5xx), and `sig` is base64 Ed25519 by the recipient's key over the
canonical JSON of "ack" (sorted keys, no whitespace: gatewatch.processors.canonical). The
executor checks it against the recipient key configured for the backend and writes the
outcome into the RESULT receipt as flat fields:

    delivery         confirmed | unconfirmed | not_requested (no recipient key configured)
    delivery_reason  why unconfirmed (UNCONFIRMED_REASONS)
    ack, ack_key_id, ack_sig   the verified ack, copied verbatim (confirmed only)

`gatewatch verify` re-checks every confirmed ack against the pinned recipient keys with
delivery_problem(). Pure: no I/O, no clock.
"""
from __future__ import annotations

import orjson
from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.signing import key_id, sign_b64, verify_b64

ACK_FIELDS = ("action_id", "idempotency_key", "outcome", "recipient", "ts")
OUTCOMES = ("success", "failure")
CONFIRMED, UNCONFIRMED, NOT_REQUESTED = "confirmed", "unconfirmed", "not_requested"
UNCONFIRMED_REASONS = ("missing_ack", "malformed_ack", "unknown_key", "bad_signature",
                       "mismatch_action_id", "mismatch_idempotency_key", "mismatch_outcome")
_MAX_FIELD = 512  # longest ack field kept: a recipient cannot bloat the receipt


def sign_ack(signing_key: SigningKey, action_id: str, idempotency_key: str, outcome: str, recipient: str,
             ts: str) -> dict:
    """The response body a recipient returns (the demo's deploy webhook and the tests use this)."""
    ack = {"action_id": action_id, "idempotency_key": idempotency_key, "outcome": outcome,
           "recipient": recipient, "ts": ts}
    return {"ack": ack, "key_id": key_id(signing_key.verify_key), "sig": sign_b64(signing_key, canonical_json(ack))}


def _why_not(ack, kid, sig, keys: dict[str, VerifyKey], action_id: str, idempotency_key: str,
             outcome: str) -> str | None:
    if not isinstance(ack, dict) or set(ack) != set(ACK_FIELDS) or not all(
            isinstance(ack[f], str) and len(ack[f]) <= _MAX_FIELD for f in ACK_FIELDS) \
            or not isinstance(kid, str) or not isinstance(sig, str) or ack["outcome"] not in OUTCOMES:
        return "malformed_ack"
    vk = keys.get(kid)
    if vk is None:
        return "unknown_key"
    if not verify_b64(vk, canonical_json(ack), sig):
        return "bad_signature"
    for field, want in (("action_id", action_id), ("idempotency_key", idempotency_key), ("outcome", outcome)):
        if ack[field] != want:
            return f"mismatch_{field}"
    return None


def check_response(body: bytes, keys: dict[str, VerifyKey], action_id: str, idempotency_key: str,
                   outcome: str) -> dict:
    """The delivery fields of a RESULT receipt for a recipient's response body, judged against the
    configured recipient keys and what the executor itself saw (action id, key, success/failure)."""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or "ack" not in doc:
        return {"delivery": UNCONFIRMED, "delivery_reason": "missing_ack"}
    why = _why_not(doc["ack"], doc.get("key_id"), doc.get("sig"), keys, action_id, idempotency_key, outcome)
    if why:
        return {"delivery": UNCONFIRMED, "delivery_reason": why}
    return {"delivery": CONFIRMED, "ack": doc["ack"], "ack_key_id": doc["key_id"], "ack_sig": doc["sig"]}


def delivery_problem(receipt: dict, keys: dict[str, VerifyKey]) -> str | None:
    """For `verify`: None when a receipt claims no confirmed delivery or its ack holds against the
    pinned recipient keys; else why not ("unknown_key" when the ack's key is not pinned)."""
    if receipt.get("delivery") != CONFIRMED:
        return None
    return _why_not(receipt.get("ack"), receipt.get("ack_key_id"), receipt.get("ack_sig"), keys,
                    receipt.get("action_id"), receipt.get("idempotency_key"), outcome_of(receipt.get("status")))


def outcome_of(status: str) -> str:
    """The ack outcome matching an executor status: the recipient answered 2xx or it did not."""
    return "success" if status == "success" else "failure"
