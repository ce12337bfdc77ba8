"""OffsetCommits (streams/runtime/offset_commits.py) sends what differs from the last successful
commit, in offset or metadata: a failed commit is sent again at the next checkpoint, an unchanged
one is not, and new metadata alone (the executor's ledger head) is a commit."""
from __future__ import annotations

import logging

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import consumer
from gatewatch.streams.runtime.offset_commits import OffsetCommits

pytestmark = pytest.mark.integration


def test_a_failed_commit_is_sent_again_and_an_unchanged_one_is_not(kafka_bootstrap, topic_prefix):
    topic = topics.topic("actions", topic_prefix)

    def sent() -> float:
        return REGISTRY.get_sample_value("gatewatch_worker_offset_commits_total", {"stage": topic_prefix}) or 0.0

    c = consumer(kafka_bootstrap, f"{topic_prefix}offset-commits")
    commits = OffsetCommits(topic_prefix, logging.getLogger("test"))
    before = sent()
    try:
        # the topic has no partition 99: the broker refuses the commit
        commits.commit(c, [TopicPartition(topic, 0, 5, metadata="a"), TopicPartition(topic, 99, 5)])
        assert sent() == before
        commits.commit(c, [TopicPartition(topic, 0, 5, metadata="a")])  # nothing recorded: sent again
        commits.commit(c, [TopicPartition(topic, 0, 5, metadata="a")])  # recorded: not sent
        assert sent() == before + 1
        commits.commit(c, [TopicPartition(topic, 0, 5, metadata="b")])  # new metadata alone
        assert sent() == before + 2
        [got] = c.committed([TopicPartition(topic, 0)], timeout=30)
        assert (got.offset, got.metadata) == (5, "b")
    finally:
        c.close()
