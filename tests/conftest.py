"""The Kafka fixtures come from gatewatch's pytest plugin (gatewatch.streams.app.pytest_plugin,
installed as a pytest11 entry point): kafka_bootstrap is KAFKA_BOOTSTRAP_SERVERS -> testcontainers
Kafka (Docker) -> Apache Kafka from Maven jars (Java) -> embedded tansu."""
from __future__ import annotations

import pytest


@pytest.fixture
def topic_prefix(gatewatch_topics):
    """A fresh topic prefix with the whole catalogue created under it, so tests never share topics."""
    return gatewatch_topics


# a WormSink fed fake messages (tests/worm/fake_sink.py), for the admission tests of tests/security and tests/worm
from tests.worm.fake_sink import sink  # noqa: E402, F401
