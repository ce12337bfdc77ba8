"""Through the ingest worker: Debezium tombstones are counted, not dead-lettered; a schema-change
event is accepted."""
import threading

import pytest

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import producer
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.ingest import SKIPPED, IngestStage
from tests.inputs.test_rum_cdc import KTS, _col, _row, schema_change
from tests.pipeline.helpers import read_topic

pytestmark = pytest.mark.integration


def test_tombstones_counted_not_dead_lettered(kafka_bootstrap, topic_prefix, tmp_path):
    p = producer(kafka_bootstrap)
    t = topics.topic("cdc")
    p.produce(t, key=b"k", value=_row(1, KTS, id=1), partition=0, timestamp=KTS)
    p.produce(t, key=b"k", value=None, partition=0, timestamp=KTS)
    p.produce(t, key=b"k", value=b'{"schema":null,"payload":null}', partition=0, timestamp=KTS)
    p.produce(t, key=b"k", value=schema_change("ALTER", [_col("id", "INT")], KTS), partition=0, timestamp=KTS)
    p.produce(t, key=b"k", value=b"not json", partition=0, timestamp=KTS)
    assert p.flush(10) == 0
    before = SKIPPED.labels("cdc", "tombstone")._value.get()
    w = Worker(IngestStage(SignalConfig(), tmp_path), kafka_bootstrap, exit_when_idle_s=3,
               stop=StopFlag(install=False), partitions=[0])
    th = threading.Thread(target=w.run, daemon=True)
    th.start()
    th.join(60)
    assert not th.is_alive()
    assert SKIPPED.labels("cdc", "tombstone")._value.get() - before == 2
    dlq = read_topic(kafka_bootstrap, "dlq")
    assert len(dlq) == 1 and b"not_json" in dlq[0][3]
