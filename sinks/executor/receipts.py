"""Executor receipts (seed 004 "SIRP"): INTENT before an effect, RESULT after it, REFUSED for bad permits.

A receipt is a flat JSON object. Its "id" is the sha256 of the canonical JSON of
the receipt without "id" and "sig"; "sig" is the executor key's Ed25519
signature over those same bytes. "seq" counts the receipts of one executor
ledger from 1 and "prev" is the id of receipt seq-1 (None for the first), so a
verifier can see both tampering and gaps. Absent optional fields are left out
(not null): the Avro form carries them as null, drop nulls before hashing.
"""
from __future__ import annotations

from nacl.signing import SigningKey, VerifyKey

from gatewatch.processors.canonical import canonical_json, content_id
from gatewatch.processors.signing import key_id, sign_b64, verify_b64

TYPES = ("INTENT", "RESULT", "REFUSED")
STATUSES = ("success", "failure", "timeout")
_UNSIGNED = ("id", "sig")


def unsigned_body(receipt: dict) -> dict:
    return {k: v for k, v in receipt.items() if k not in _UNSIGNED and v is not None}


def seal(signing_key: SigningKey, body: dict) -> dict:
    """Add id and sig to a receipt body (which already carries seq and prev)."""
    body = {k: v for k, v in body.items() if v is not None}
    body["executor"] = key_id(signing_key.verify_key)
    sealed = dict(body)
    sealed["id"] = content_id(body)
    sealed["sig"] = sign_b64(signing_key, canonical_json(body))
    return sealed


def verify_receipt(receipt: dict, trusted: dict[str, VerifyKey]) -> str | None:
    """None when id and signature hold, else why not."""
    body = unsigned_body(receipt)
    if receipt.get("type") not in TYPES:
        return "bad_type"
    if content_id(body) != receipt.get("id"):
        return "bad_id"
    if not isinstance(receipt.get("executor"), str) or not isinstance(receipt.get("sig"), str):
        return "malformed_receipt"  # anyone who can write the topic can send this: refuse, never crash
    vk = trusted.get(receipt["executor"])
    if vk is None:
        return "unknown_key"
    if not verify_b64(vk, canonical_json(body), receipt["sig"]):
        return "bad_signature"
    return None


def verify_chain(receipts: list[dict], trusted: dict[str, VerifyKey] | None = None) -> str | None:
    """Check that receipts (any order, duplicates by id allowed) form one gap-free chain from seq 1.

    Returns None when they do, else a one-line reason naming the first bad seq.
    """
    by_seq: dict[int, dict] = {}
    for r in receipts:
        if trusted is not None:
            why = verify_receipt(r, trusted)
            if why:
                return f"receipt {r.get('id')}: {why}"
        seq = r.get("seq")
        if not isinstance(seq, int):
            return f"receipt {r.get('id')}: no seq"
        if seq in by_seq and by_seq[seq]["id"] != r["id"]:
            return f"seq {seq}: two different receipts"
        by_seq[seq] = r
    prev = None
    for seq in range(1, len(by_seq) + 1):
        r = by_seq.get(seq)
        if r is None:
            return f"seq {seq}: missing (gap)"
        if r.get("prev") != prev:
            return f"seq {seq}: prev does not link to seq {seq - 1}"
        prev = r["id"]
    return None
