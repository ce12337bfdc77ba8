"""Shared fixtures. `kafka_bootstrap`: KAFKA_BOOTSTRAP_SERVERS -> testcontainers Kafka (when a
Docker engine answers) -> embedded tansu. The same integration tests run on all three."""
from __future__ import annotations

import os
import uuid

import pytest

from gatewatch.streams.runtime.broker import EmbeddedBroker
from gatewatch.streams.runtime.kafka import create_topics, wait_ready


def _docker_answers() -> bool:
    try:
        import docker
        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap():
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        wait_ready(env, 30)
        yield env
        return
    if os.environ.get("GATEWATCH_TEST_BROKER", "auto") != "embedded" and _docker_answers():
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # testcontainers < 4.10
            from testcontainers.kafka import KafkaContainer
        with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka:
            bs = kafka.get_bootstrap_server()
            wait_ready(bs, 60)
            yield bs
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap


@pytest.fixture
def topic_prefix(kafka_bootstrap, monkeypatch):
    """A fresh topic prefix with the whole catalogue created under it, so tests never share topics."""
    pfx = f"t{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", pfx)
    create_topics(kafka_bootstrap, pfx)
    return pfx
