"""The faust app factory with gatewatch's Kafka settings, and the one way an agent feeds a rule.

    from gatewatch.streams.ext import SignalInput, app
    kit = app("payment-declines")                      # KAFKA_BOOTSTRAP_SERVERS + the security settings
    declined = SignalInput(kit, metric="payment_tech_declined", source="payment-declines")
    ...
    await declined.publish(service="checkout", value=1.0, ts_ms=event_ms, cohort="canary")

An agent's value reaches the policy as a *declared signal input* (docs/extensions.md): a gauge
sample on gw.metrics under the metric a `signals.declared` entry names. The signals stage windows
it like any other input (watermark, lateness, DLQ), the engine reads it in the gauges domain the
signals stage completes at every step (so a quiet agent never stalls a decision), and replaying
gw.metrics reproduces the decisions.
"""
from __future__ import annotations

import math
import os
import re

import orjson

from gatewatch.processors.names import valid_name, why_not
from gatewatch.streams.ext.faust_import import faust
from gatewatch.streams.ext.records import REQUIRED, GaugeSample
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import SESSION_TIMEOUT_MS, faust_app_kwargs, security_settings

SOURCE_HEADER = "gatewatch-source"
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")  # schemas/gauge_sample.json `name`


def app(app_id: str, *, bootstrap: str | None = None, env: dict | None = None, **overrides) -> faust.App:
    """A faust.App on gatewatch's Kafka: broker from `bootstrap` or KAFKA_BOOTSTRAP_SERVERS, and the
    same security settings as every gatewatch client (GATEWATCH_KAFKA_CONFIG and the KAFKA_* variables,
    streams.runtime.kafka) as faust broker_credentials. Defaults suit a stateless agent beside
    gatewatch: in-memory store, no web server, gatewatch's session timeout, and topics are not
    declared (gatewatch creates its own: `gatewatch topics create`). `overrides` are faust settings."""
    env = os.environ if env is None else env
    bootstrap = bootstrap or env.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        raise GatewatchError("no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or pass bootstrap=")
    settings = dict(faust_app_kwargs(bootstrap, security_settings(env)),
                    broker_client_id=app_id, store="memory://", web_enabled=False, topic_allow_declare=False,
                    broker_session_timeout=SESSION_TIMEOUT_MS / 1000,
                    broker_heartbeat_interval=max(0.5, SESSION_TIMEOUT_MS / 6000))
    settings.update(overrides)
    return faust.App(app_id, **settings)


def encode(record: faust.Record) -> bytes:
    """A Record as gatewatch's decoders read it: plain JSON; an optional field that is None is left
    out, a required one (its schema says so, e.g. a signal's null `value`) is kept as null."""
    required = REQUIRED.get(type(record), frozenset())
    return orjson.dumps({k: v for k, v in record.asdict().items() if v is not None or k in required})


class SignalInput:
    """Publishes an agent's values as gauge samples on gw.metrics under one metric name, keyed by
    service (the topic's key: one service's samples stay in order on one partition), each with the
    header gatewatch-source: <source> naming the agent that computed it."""

    def __init__(self, kit: faust.App, metric: str, source: str, topic_prefix: str | None = None):
        if not _METRIC.match(metric):
            raise GatewatchError(f"metric {metric!r}: not a gauge name ([A-Za-z_][A-Za-z0-9_.:-]{{0,63}})")
        if not valid_name(source):
            raise GatewatchError(f"source {source!r}: {why_not(source)}")
        self.metric, self.source = metric, source
        self.topic = kit.topic(topics.topic("metrics", topic_prefix), key_serializer="raw", value_serializer="raw")

    def sample(self, service: str, value: float, ts_ms: int, cohort: str | None = None,
               release: str | None = None) -> GaugeSample:
        """The gauge sample for one value; refused here (ValueError, one line) where ingest would
        dead-letter it. ts_ms is the event time of what the value describes, never the wall clock."""
        if not valid_name(service):
            raise ValueError(f"service {service!r}: {why_not(service)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{self.metric}: value must be a finite number, got {value!r}")
        if isinstance(ts_ms, bool) or not isinstance(ts_ms, int) or ts_ms <= 0:
            raise ValueError(f"{self.metric}: ts_ms must be epoch milliseconds, got {ts_ms!r}")
        if cohort is not None and not cohort:
            raise ValueError(f"{self.metric}: cohort is None or a name, not empty")
        if release is not None and not 0 < len(release) <= 128:
            raise ValueError(f"{self.metric}: release is None or 1..128 characters")
        return GaugeSample(name=self.metric, value=float(value), type="gauge", service=service, cohort=cohort,
                           release=release, ts=ts_ms)

    async def publish(self, service: str, value: float, ts_ms: int, cohort: str | None = None,
                      release: str | None = None):
        """Send one sample (awaits the producer buffer, not the broker's ack: faust flushes)."""
        rec = self.sample(service, value, ts_ms, cohort, release)
        return await self.topic.send(key=service.encode(), value=encode(rec),
                                     headers=[(SOURCE_HEADER, self.source.encode())])
