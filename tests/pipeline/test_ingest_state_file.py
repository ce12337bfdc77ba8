"""Ingest's state file (for brokers that drop offset metadata) is written at most once per interval,
so after a crash it can be behind the committed offset: the restore tops it up by re-reading only
the records in between, and ends with the state a full re-read gives. A file ahead of the commit
(offsets reset) is not trusted."""
from __future__ import annotations

import orjson
import pytest
from confluent_kafka import TopicPartition

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import read_to_end
from gatewatch.streams.runtime.statefiles import read_json
from gatewatch.streams.stages import ingest
from gatewatch.streams.stages.ingest import IngestStage
from tests.pipeline.helpers import publish_inputs


class _Worker:
    def __init__(self, bootstrap: str = ""):
        self.bootstrap = bootstrap


def _state(agg) -> dict:
    return {k: v for k, v in agg.to_state().items() if k != "pending"}


@pytest.mark.integration
def test_restore_tops_up_a_stale_state_file(kafka_bootstrap, topic_prefix, tmp_path, monkeypatch):
    publish_inputs(kafka_bootstrap)
    metrics = topics.topic("metrics")
    per_partition: dict[int, int] = {}
    for m in read_to_end(kafka_bootstrap, metrics):
        per_partition[m.partition()] = per_partition.get(m.partition(), 0) + 1
    part, n = max(per_partition.items(), key=lambda kv: kv[1])
    assert n >= 40
    rereads = []
    real = ingest._reread
    monkeypatch.setattr(ingest, "_reread", lambda *a: rereads.append(a[-1]) or real(*a))
    worker, stage = _Worker(kafka_bootstrap), IngestStage(SignalConfig(), tmp_path)
    full = stage._restore(worker, TopicPartition(metrics, part, n))       # no file: from the start
    assert rereads == [None] and full.max_event_ms is not None
    half = stage._restore(worker, TopicPartition(metrics, part, n // 2))  # the state a crash left on disk
    path = stage._state_path(metrics, part)
    for stale_at, start in ((n // 2, n // 2), (n + 5, None)):  # behind the commit / ahead of it
        path.write_bytes(orjson.dumps({"next_offset": stale_at, "agg": half.to_state() if stale_at < n else {}}))
        rereads.clear()
        got = stage._restore(worker, TopicPartition(metrics, part, n))
        assert rereads == [start], "a stale file is topped up from its offset; one ahead is ignored"
        assert _state(got) == _state(full) and got.first_offset is None  # nothing pending: published before
    path.write_bytes(orjson.dumps({"next_offset": n, "agg": full.to_state()}))
    rereads.clear()
    assert _state(stage._restore(worker, TopicPartition(metrics, part, n))) == _state(full) and rereads == []


def test_state_files_are_written_per_interval_and_on_stop(tmp_path, monkeypatch):
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", "sf.")
    metrics = topics.topic("metrics")
    stage = IngestStage(SignalConfig(), tmp_path)
    stage.state_file_interval_s = 3600.0
    for p in (0, 1):
        stage.aggs[(metrics, p)] = stage._agg(metrics, p)
    stage.aggs[(metrics, 0)].max_event_ms = 1_000
    stage.after_commit(_Worker(), [TopicPartition(metrics, 0, 10), TopicPartition(metrics, 1, 4)])
    stage.aggs[(metrics, 0)].max_event_ms = 2_000
    stage.after_commit(_Worker(), [TopicPartition(metrics, 0, 25)])
    assert read_json(stage._state_path(metrics, 0)) is None  # within the interval: not yet
    stage.aggs[(metrics, 0)].max_event_ms = 3_000  # a batch in progress, not committed: never written
    stage.on_revoke(_Worker(), [TopicPartition(metrics, 1)])  # handed over: its file is current
    assert read_json(stage._state_path(metrics, 1))["next_offset"] == 4
    assert read_json(stage._state_path(metrics, 0)) is None
    stage.close(_Worker())
    saved = read_json(stage._state_path(metrics, 0))
    assert saved["next_offset"] == 25 and saved["agg"]["max_event_ms"] == 2_000
    stage.state_file_interval_s = 0.0  # every commit, as before
    stage.after_commit(_Worker(), [TopicPartition(metrics, 0, 30)])
    assert read_json(stage._state_path(metrics, 0))["next_offset"] == 30
