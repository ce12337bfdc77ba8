"""The topic catalogue (README "Topics"): one place for names, keys, partitions, retention.

Names are <prefix><name>; the prefix is GATEWATCH_TOPIC_PREFIX or "gw.".
"""
from __future__ import annotations

import os
from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    name: str          # without prefix
    key: str           # what the record key is
    value: str         # what the value is (schema name in schemas/)
    partitions: int
    cleanup: str       # delete | compact
    retention_ms: int  # -1 = forever
    flow: str          # from -> to
    internal: bool = False


CATALOGUE: tuple[TopicSpec, ...] = (
    TopicSpec("metrics", "service", "request_sample", 3, "delete", 7 * DAY_MS, "services / OTel -> SLI processors"),
    TopicSpec("rum", "route", "web_vitals", 3, "delete", 7 * DAY_MS, "RUM collector -> CWV processor"),
    TopicSpec("cdc", "db.table", "debezium_envelope", 3, "delete", 7 * DAY_MS, "Debezium -> CDC processor"),
    TopicSpec("spans", "tenant", "canonical_span", 3, "delete", 7 * DAY_MS, "apps -> trajectory linker"),
    TopicSpec("signals", "scope", "signal", 3, "delete", 7 * DAY_MS, "processors -> policy engine"),
    TopicSpec("trajectories", "tenant", "trajectory_event", 3, "delete", 7 * DAY_MS, "linker, quality -> meter, WORM"),
    TopicSpec("actions", "scope", "action", 3, "delete", 30 * DAY_MS, "policy engine -> executor, WORM"),
    TopicSpec("receipts", "action id", "receipt", 3, "delete", 30 * DAY_MS, "executor -> WORM"),
    TopicSpec("attestations", "scope", "attestation", 3, "delete", 30 * DAY_MS, "policy engine -> WORM"),
    TopicSpec("checkpoints", "log origin", "checkpoint", 1, "delete", -1, "WORM sink <-> witnesses"),
    TopicSpec("dlq", "source topic", "dlq_record", 1, "delete", 14 * DAY_MS, "all -> operators"),
    TopicSpec("partials", "source topic:partition", "partial", 3, "delete", 7 * DAY_MS,
              "ingest stage -> signal stage (internal)", internal=True),
    TopicSpec("gates", "scope@release", "gate_record", 3, "compact", -1, "decide -> gatewatch serve"),
    # a candidate policy's decisions (key scope) and gate records (key scope@release), unsigned:
    # never read by the executor or serve. The name must not end in "actions" (sinks.worm.store.is_action).
    TopicSpec("shadow", "scope | scope@release", "shadow_decision", 3, "delete", 30 * DAY_MS,
              "decide (shadow policy) -> WORM, `gatewatch policy shadow --live`"),
)

BY_NAME = {t.name: t for t in CATALOGUE}


def prefix() -> str:
    return os.environ.get("GATEWATCH_TOPIC_PREFIX", "gw.")


def group_id(stage: str) -> str:
    """A stage's consumer group: `gatewatch-<stage>` under the default prefix (the name deployments
    have), `<prefix>gatewatch-<stage>` under another. Stacks sharing a cluster under different
    prefixes then never share a group: a member of one would join the other's rebalances, and each
    rebalance fences the in-flight transactions of every member (ILLEGAL_GENERATION)."""
    pfx = prefix()
    return f"gatewatch-{stage}" if pfx == "gw." else f"{pfx}gatewatch-{stage}"


def topic(name: str, pfx: str | None = None) -> str:
    """Full topic name of a catalogue entry, e.g. topic("metrics") -> "gw.metrics"."""
    if name not in BY_NAME:
        raise KeyError(f"unknown topic {name!r}; catalogue: {', '.join(BY_NAME)}")
    return (prefix() if pfx is None else pfx) + name


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    return {"cleanup.policy": spec.cleanup, "retention.ms": str(spec.retention_ms)}


# ---- the inputs ingest reads (and the signals stage waits for) ----------------------------------
INPUTS = ("metrics", "rum", "cdc")
OTLP = "otlp"                      # logical name of the OpenTelemetry Collector's traces topic
OTLP_METRICS = "otlp_metrics"      # ... and of its metrics topic
OTLP_DEFAULT_TOPIC = "otlp_spans"  # the Collector kafka exporter's default; not prefixed
# The Collector's topics (logical name -> env variable, the kafka exporter's default topic): not
# prefixed, read by ingest once they exist.
COLLECTOR = {OTLP: ("GATEWATCH_OTLP_TOPIC", OTLP_DEFAULT_TOPIC),
             OTLP_METRICS: ("GATEWATCH_OTLP_METRICS_TOPIC", "otlp_metrics")}


def collector_topic(logical: str) -> str:
    """The Kafka topic the Collector's kafka exporter writes `logical` to ("" = not read)."""
    env, default = COLLECTOR[logical]
    return os.environ.get(env, default)


def collector_topics() -> dict[str, str]:
    """{logical: Kafka topic} of the Collector's topics gatewatch reads."""
    return {lg: t for lg in COLLECTOR if (t := collector_topic(lg))}


def otlp_topic() -> str:
    """The Kafka topic the Collector's kafka exporter writes traces to ("" = no OTLP input)."""
    return collector_topic(OTLP)


def input_topic(logical: str, pfx: str | None = None) -> str:
    """The Kafka topic of an ingest input: a catalogue name, or a Collector topic's logical name."""
    return collector_topic(logical) if logical in COLLECTOR else topic(logical, pfx)


def input_logical(full: str, pfx: str | None = None) -> str | None:
    """The logical input name of a Kafka topic ("metrics", ..., "otlp"), None when it is no input."""
    for logical, t in collector_topics().items():
        if full == t:
            return logical
    p = prefix() if pfx is None else pfx
    name = full[len(p):] if full.startswith(p) else None
    return name if name in INPUTS else None
