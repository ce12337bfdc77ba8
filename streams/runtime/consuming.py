"""Kafka facts a consumer needs besides its client: which partitions it owns, which errors are worth
retrying, a record's timestamp."""
from __future__ import annotations

import time

from confluent_kafka import KafkaError, KafkaException

from gatewatch.streams.runtime.errors import GatewatchError


def static_partitions(consumer, topic: str, wanted: list[int] | None) -> list[int]:
    """The partitions a statically assigned worker owns: `wanted`, or all of the topic's."""
    md = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        raise GatewatchError(f"topic {topic} not found (run: gatewatch topics create)")
    have = sorted(md.partitions)
    if wanted is None:
        return have
    missing = sorted(set(wanted) - set(have))
    if missing:
        raise GatewatchError(f"{topic} has no partitions {missing} (it has {have})")
    return sorted(wanted)


# configuration or permission problems a consumer would otherwise retry forever
FATAL = (KafkaError.INVALID_SESSION_TIMEOUT, KafkaError.GROUP_AUTHORIZATION_FAILED,
          KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.SASL_AUTHENTICATION_FAILED,
          KafkaError._AUTHENTICATION, KafkaError.INVALID_CONFIG)
TRANSIENT = (KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
              KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE)


# a partition created a moment ago, or whose leader is moving, has no leader a client knows for a while
LEADER_UNKNOWN = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                  KafkaError.UNKNOWN_TOPIC_OR_PART)


def retry_on_load(fn, what: str, timeout_s: float = 60.0, also: tuple = (), on_retry=None):
    """A fresh broker (or one whose coordinator just moved) answers COORDINATOR_LOAD_IN_PROGRESS,
    NOT_COORDINATOR or timeouts for a while: retry those, and the error codes in `also`.
    on_retry(error text, seconds waited so far) is called before each retry."""
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        try:
            return fn()
        except KafkaException as e:
            err = e.args[0]
            local = err.code() < 0 and not err.fatal()  # client-side: a broker went away, a timeout...
            again = err.retriable() or err.code() in TRANSIENT or err.code() in also or local
            if not again or time.monotonic() > deadline:
                raise GatewatchError(f"{what}: {err.str()}") from None
            if on_retry is not None:
                on_retry(err.str(), time.monotonic() - start)
            time.sleep(0.3)


def watermarks(consumer, topic: str, partition: int, timeout_s: float = 60.0) -> tuple[int, int]:
    """(low, high) offsets of a partition, asked of its leader. The client reports a leader it does
    not know yet as NOT_LEADER_FOR_PARTITION, not as retriable, so those are asked again too."""
    from confluent_kafka import TopicPartition
    return retry_on_load(lambda: consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10),
                         f"reading the offsets of {topic}[{partition}]", timeout_s, also=LEADER_UNKNOWN)


def logical_topic(full_name: str, prefix: str) -> str:
    return full_name[len(prefix):] if full_name.startswith(prefix) else full_name


def message_ts_ms(msg) -> int | None:
    """The record's Kafka timestamp, None when absent (type 0) or negative."""
    kind, ts = msg.timestamp()
    return ts if kind != 0 and ts > 0 else None
