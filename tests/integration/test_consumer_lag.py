"""gatewatch_worker_consumer_lag_records: a worker stopped after its first batch reports, per input
partition, exactly the records it has not processed; one that ran to the end reports 0."""

import pytest
from prometheus_client import REGISTRY

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.consuming import watermarks
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
                out[(name, p)] = watermarks(c, name, p)[1]
        return out
    finally:
        c.close()


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
