"""The payment-declines agent: reads payment authorizations, publishes one gauge sample per payment
(1.0 technical decline, 0.0 otherwise) as the declared signal input `payment_tech_declined`.

    KAFKA_BOOTSTRAP_SERVERS=... PAYMENTS_TOPIC=payments python agent.py worker --without-web

Stateless: the window and the ratio are gatewatch's (the policy's `signals.declared` entry takes
the mean over 5 minutes), so a restart loses nothing and replaying gw.metrics gives the same rule
decisions. Each sample carries the payment's own time, so the agent never moves event time.
"""
from __future__ import annotations

import os
from typing import Optional

import faust
from declines import technical_decline  # this directory is on sys.path when run as a script

from gatewatch.streams.ext import SignalInput, app

kit = app(os.environ.get("APP_ID", "payment-declines"))


class Payment(faust.Record, serializer="json", include_metadata=False):
    """What the payment service logs per authorization (its own topic, keyed by service)."""
    service: str
    ts: int                               # epoch ms of the authorization answer
    response_code: Optional[str] = None   # ISO 8583 field 39; None when the processor never answered
    timed_out: bool = False
    cohort: Optional[str] = None          # canary / baseline, as the service's request samples say
    release: Optional[str] = None


payments = kit.topic(os.environ.get("PAYMENTS_TOPIC", "payments"), value_type=Payment)
declined = SignalInput(kit, metric="payment_tech_declined", source="payment-declines")  # under GATEWATCH_TOPIC_PREFIX


@kit.agent(payments)
async def classify(stream):
    async for p in stream:
        try:
            await declined.publish(p.service, 1.0 if technical_decline(p.response_code, p.timed_out) else 0.0,
                                   p.ts, p.cohort, p.release)
        except ValueError as e:  # a malformed payment: say so in one line and go on
            kit.log.warning("payment-declines: skipped a payment: %s", e)


if __name__ == "__main__":
    kit.main()
