"""Action records with permits, as the policy engine makes them."""
from __future__ import annotations

import time

from nacl.signing import SigningKey

from gatewatch.processors.canonical import content_id
from gatewatch.processors.signing import issue_permit, key_id
from gatewatch.processors.timefmt import format_ts

HOUR_MS = 3_600_000


def now_ms() -> int:
    return int(time.time() * 1000)


def action_record(n: int, scope: str = "checkout", action: str = "rollback", kind: str = "abort") -> dict:
    body = {
        "kind": kind, "action": action, "scope": scope,
        "rule": {"id": f"r{n}", "text": "err5xx_rate >= 0.001 for 5m"},
        "severity": "page", "signals": [{"name": "err5xx_rate", "value": 0.002, "n": n}],
        "policy_hash": "ab" * 32, "ts": format_ts(1_767_225_600_000 + n * 1000),
    }
    return {"id": content_id(body), **body}


def permitted(decider: SigningKey, record: dict, expires_ms: int | None = None) -> dict:
    expires = now_ms() + HOUR_MS if expires_ms is None else expires_ms
    return {**record, "permit": issue_permit(decider, record, expires)}


def trusted(*keys: SigningKey) -> dict:
    return {key_id(k.verify_key): k.verify_key for k in keys}
