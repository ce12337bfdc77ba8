"""What the WORM log admits, checked the same way by the sink (before append) and by `gatewatch
verify` (for every entry): nothing unsigned or mis-identified ever occupies an id.

- gw.actions: an action record (is_action) whose id is its content hash (the engine's action_id
  over policy_hash, scope, rule id, ts, action, release) and whose permit verifies against a
  pinned decider key at the action's own ts (processors.signing.check_permit);
- gw.receipts: an executor receipt (is_receipt) whose id is its content hash and whose
  signature verifies against a pinned executor key (sinks.executor.receipts.verify_receipt);
- gw.trajectories: a diamond_candidate whose id is the content hash of the rest of it (these are
  not signed: whoever may write gw.trajectories can add one; docs/security.md).
- gw.attestations: an attestation (processors.policy.attest) whose id is the content hash of the
  rest of it (its signature aside) and whose signature verifies against a pinned decider key over
  that id (processors.signing.check_attestation_signature, a domain no permit is signed in): only
  the decider vouches for what it saw; `gatewatch verify --replay` then re-derives its actions.
- gw.shadow: a shadow decision (processors.shadow.is_shadow_decision: marked, no permit, id the
  content hash of the rest). Unsigned like diamond candidates, and never executable: its id cannot
  be an action's, and on gw.actions it is an action without a permit (refused).
Anything else is refused with a reason (sink: to gw.dlq, never appended).
"""
from __future__ import annotations

from nacl.signing import VerifyKey

from gatewatch.processors.canonical import content_id
from gatewatch.processors.policy.attest import check_id as check_attestation_id
from gatewatch.processors.policy.attest import is_attestation
from gatewatch.processors.policy.records import action_id
from gatewatch.processors.shadow import is_shadow_decision
from gatewatch.processors.signing import MAX_LIFETIME_CEILING_MS, check_attestation_signature, check_permit
from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms
from gatewatch.sinks.executor.receipts import verify_receipt
from gatewatch.sinks.worm.store import is_action, is_receipt


def expected_action_id(value: dict) -> str | None:
    rule = value.get("rule")
    fields = (value.get("policy_hash"), value.get("scope"), rule.get("id") if isinstance(rule, dict) else None,
              value.get("ts"), value.get("action"))
    release = value.get("release") or ""
    if not all(isinstance(f, str) for f in fields) or not isinstance(release, str):
        return None
    return action_id(*fields, release)


def check_record(kind: str, topic: str, value: dict, decider: dict[str, VerifyKey],
                 executor: dict[str, VerifyKey]) -> tuple[str | None, str]:
    """(refusal reason or None, class: "action" | "receipt" | "attestation" | "other") for a value logged from topic."""
    if is_receipt(value):
        if kind != "receipts":
            return f"receipt_on_{kind}", "receipt"
        why = verify_receipt(value, executor)
        return (f"receipt refused: {why}" if why else None), "receipt"
    if is_action(topic, value):
        if kind != "actions":
            return f"action_on_{kind}", "action"
        if not isinstance(value.get("policy_hash"), str):
            return "action refused: no policy hash", "action"
        want = expected_action_id(value)
        if want is None or value.get("id") != want:
            return "action refused: id is not the content hash of the action", "action"
        try:
            now_ms = parse_time_ms(value.get("ts"))
        except TimeFormatError:
            return "action refused: ts is not a timestamp", "action"
        why = check_permit(value, decider, now_ms, MAX_LIFETIME_CEILING_MS)  # the executor may allow less
        return (f"permit refused: {why}" if why else None), "action"
    if is_attestation(value):
        if kind != "attestations":
            return f"attestation_on_{kind}", "attestation"
        why = check_attestation_id(value) or check_attestation_signature(value, decider)
        return (f"attestation refused: {why}" if why else None), "attestation"
    if kind == "shadow":
        return (None if is_shadow_decision(value) else "not_a_shadow_decision"), "shadow"
    if kind != "trajectories" or value.get("type") != "diamond_candidate":
        return f"not_a_{kind[:-1]}", "other"
    if content_id({k: v for k, v in value.items() if k != "id"}) != value.get("id"):
        return "bad_id: not the content hash of the record", "other"
    return None, "other"
