"""Which card payments a release can be blamed for: the part of the example YAML cannot express.

A payment authorization answers with an ISO 8583 response code (field 39). Most declines are the
customer's (insufficient funds, expired card, suspected fraud) and say nothing about a release; a
few are technical (a malformed request, a system error, a timeout towards the issuer) and rise
when a new version of the payment service talks to the processor wrongly. The agent publishes 1.0
per technical decline and 0.0 per any other answer, so the declared signal's mean over its window
is the technical decline ratio.
"""
from __future__ import annotations

APPROVED = frozenset({"00", "08", "10", "11"})
# format error, invalid transaction, re-enter, issuer or switch inoperative, routing error,
# duplicate transmission, system malfunction: the request or our side of the link is at fault
TECHNICAL = frozenset({"06", "12", "19", "30", "91", "92", "94", "96"})


def technical_decline(response_code: str | None, timed_out: bool = False) -> bool:
    """True when the payment failed for a technical reason; a timeout (no response) is one too.
    An unknown code counts as the customer's: the ratio must not rise on a processor's new codes."""
    if timed_out or response_code is None:
        return True
    return response_code in TECHNICAL
