"""gatewatch_worker_consumer_lag_records: a worker stopped after its first batch reports, per input
partition, exactly the records it has not processed; one that ran to the end reports 0."""
import time

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from prometheus_client import REGISTRY

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import consumer
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.ingest import IngestStage
from tests.pipeline.helpers import publish_inputs

pytestmark = pytest.mark.integration
INPUTS = ("metrics", "rum", "cdc")


class StopsAfterFirstBatch(IngestStage):
    processed = 0

    def process(self, worker, msgs):
        nexts = super().process(worker, msgs)
        self.processed += len(msgs)
        worker.stop.stop()
        return nexts


def lag(stage: str, topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("gatewatch_worker_consumer_lag_records",
                                     {"stage": stage, "topic": topic, "partition": str(partition)})


def ends(bootstrap: str) -> dict[tuple[str, int], int]:
    c = consumer(bootstrap, "lag-ends")
    try:
        out = {}
        for logical in INPUTS:
            name = topics.topic(logical)
            for p in c.list_topics(name, timeout=10).topics[name].partitions:
                out[(name, p)] = _high(c, TopicPartition(name, p))
        return out
    finally:
        c.close()


_LEADER_UNKNOWN = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                   KafkaError.UNKNOWN_TOPIC_OR_PART)


def _high(c, tp: TopicPartition) -> int:
    """The partition's end offset; a retriable error right after the topics were made (the leader
    not known yet: NOT_LEADER_FOR_PARTITION) is asked again, for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return c.get_watermark_offsets(tp, timeout=10)[1]
        except KafkaException as e:
            again = e.args[0].retriable() or e.args[0].code() in _LEADER_UNKNOWN
            if not again or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_lag_is_what_is_left_to_process_and_zero_once_caught_up(kafka_bootstrap, topic_prefix, tmp_path):
    total = publish_inputs(kafka_bootstrap)
    end = ends(kafka_bootstrap)
    stage = StopsAfterFirstBatch(SignalConfig(), tmp_path / "ingest", batch_size=300)
    Worker(stage, kafka_bootstrap, stop=StopFlag(install=False)).run()
    assert 0 < stage.processed < total
    reported = {tp: lag("ingest", *tp) for tp in end}
    assert None not in reported.values(), reported
    assert sum(reported.values()) == sum(end.values()) - stage.processed

    Worker(IngestStage(SignalConfig(), tmp_path / "ingest", batch_size=300), kafka_bootstrap, exit_when_idle_s=2,
           stop=StopFlag(install=False)).run()
    assert {tp: lag("ingest", *tp) for tp in end} == {tp: 0 for tp in end}
