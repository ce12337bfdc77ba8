"""CommittedOffsets (streams/runtime/committed_offsets.py) gives a group's committed offsets with
their metadata, as a member of the group would read them, without ever joining the group: asked
from inside a rebalance callback, a joined reader would itself be a member to wait for."""
from __future__ import annotations

import pytest
from confluent_kafka import OFFSET_INVALID, TopicPartition

from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.committed_offsets import CommittedOffsets
from gatewatch.streams.runtime.kafka import admin, consumer

pytestmark = pytest.mark.integration


def test_reads_the_groups_offsets_and_metadata_and_never_joins(kafka_bootstrap, topic_prefix):
    topic, group = topics.topic("metrics", topic_prefix), f"{topic_prefix}committed-offsets"
    writer = consumer(kafka_bootstrap, group)
    try:
        writer.commit(offsets=[TopicPartition(topic, 0, 5, metadata='{"max_event_ms": 1}')], asynchronous=False)
    finally:
        writer.close()
    reader = CommittedOffsets(kafka_bootstrap, group)
    try:
        [got] = reader.get([TopicPartition(topic, 0)], 30)
        assert (got.offset, got.metadata) == (5, '{"max_event_ms": 1}')
        [other] = reader.get([TopicPartition(f"{topic_prefix}never-committed", 0)], 30)
        assert other.offset == OFFSET_INVALID
        client = admin(kafka_bootstrap)  # kept: the future is served by this client's thread
        description = client.describe_consumer_groups([group])[group].result(30)
        assert description.members == []
    finally:
        reader.close()
    # closing it commits nothing either (a reader that had joined would also send a LeaveGroup)
    check = CommittedOffsets(kafka_bootstrap, group)
    try:
        assert check.get([TopicPartition(topic, 0)], 30)[0].offset == 5
    finally:
        check.close()


def test_a_reader_that_cannot_reach_its_broker_hands_its_log_lines_over_when_served(caplog):
    """librdkafka queues a client's log lines until it is polled; the worker loop serves the side
    clients each round, so a long outage does not pile them up unseen."""
    import logging
    import time

    from confluent_kafka import KafkaException

    reader = CommittedOffsets("127.0.0.1:1", "unreachable")  # nothing listens on port 1
    try:
        with pytest.raises(KafkaException):
            reader.get([TopicPartition("t", 0)], 0.5)
        with caplog.at_level(logging.DEBUG, logger="gatewatch.rdkafka"):
            time.sleep(1)
            before = len(caplog.records)
            reader.serve()
            assert len(caplog.records) > before
    finally:
        reader.close()
