"""All Kafka client construction lives here: one place for settings and defaults.

Defaults suit both real Kafka and the embedded tansu broker: short session
timeouts (tansu's first JoinGroup waits session.timeout/2), manual commits.
"""
from __future__ import annotations

import logging
import os
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics as catalogue
from streams.errors import GatewatchError

SESSION_TIMEOUT_MS = int(os.environ.get("GATEWATCH_SESSION_TIMEOUT_MS", "6000"))


# librdkafka logs go through logging, so a stopped broker does not spray stderr.
_RDKAFKA_LOG = logging.getLogger("gatewatch.rdkafka")


def client_config(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, "logger": _RDKAFKA_LOG}


def producer(bootstrap: str, **overrides) -> Producer:
    conf = client_config(bootstrap)
    conf.update({"linger.ms": 5, "enable.idempotence": "transactional.id" in overrides})
    conf.update(overrides)
    return Producer(conf)


def consumer(bootstrap: str, group: str, **overrides) -> Consumer:
    conf = client_config(bootstrap)
    conf.update({
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": max(500, SESSION_TIMEOUT_MS // 6),
        "enable.partition.eof": False,
    })
    conf.update(overrides)
    return Consumer(conf)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient(client_config(bootstrap))


def wait_ready(bootstrap: str, timeout_s: float = 20.0) -> None:
    """Block until the cluster answers a metadata request."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            a.list_topics(timeout=2)
            return
        except KafkaException as e:
            last = e
            time.sleep(0.2)
    raise GatewatchError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {last}")


def create_topics(bootstrap: str, pfx: str | None = None, partitions: int | None = None,
                  replication: int | None = None, include_internal: bool = True) -> dict[str, str]:
    """Create the catalogue's topics; existing ones are left as they are. Returns {topic: created|exists}."""
    a = admin(bootstrap)
    rf = replication if replication is not None else int(os.environ.get("GATEWATCH_REPLICATION_FACTOR", "1"))
    existing = set(a.list_topics(timeout=10).topics)
    wanted = [s for s in catalogue.CATALOGUE if include_internal or not s.internal]
    new, result = [], {}
    for spec in wanted:
        name = catalogue.topic(spec.name, pfx)
        if name in existing:
            result[name] = "exists"
            continue
        n = partitions if (partitions and spec.partitions > 1) else spec.partitions
        new.append(NewTopic(name, n, rf, config=catalogue.topic_configs(spec)))
    if new:
        for name, fut in a.create_topics(new, request_timeout=15).items():
            try:
                fut.result()
                result[name] = "created"
            except KafkaException as e:
                if e.args[0].code() == 36:  # TOPIC_ALREADY_EXISTS: a concurrent creator won
                    result[name] = "exists"
                else:
                    raise GatewatchError(f"creating topic {name}: {e.args[0].str()}") from None
    return dict(sorted(result.items()))
