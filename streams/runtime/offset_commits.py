"""The offset commits of a non-transactional stage (streams.runtime.worker): what differs from the
last successful commit, in offset or metadata (the executor's ledger head), so a failed commit is
tried again at the next checkpoint and an unchanged one is not sent."""
from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException, TopicPartition
from prometheus_client import Counter

from gatewatch.streams.runtime.logs import log_event

COMMITS = Counter("gatewatch_worker_offset_commits_total", "Offset commits that succeeded (non-transactional stages)",
                  ["stage"])
# Kafka drops a member-less group's offsets (static assignment) offsets.retention.minutes (7 days by
# default) after their last commit: once a day, what the stage returns is committed changed or not
# (the executor and the snapshot stages return every partition they own).
OFFSETS_REFRESH_S = 24 * 3600


class OffsetCommits:
    def __init__(self, stage_name: str, log: logging.Logger):
        self.stage_name, self.log = stage_name, log
        self._last: dict[tuple[str, int], tuple] = {}  # (topic, partition) -> (offset, metadata) committed
        self._refresh_at = time.monotonic() + OFFSETS_REFRESH_S

    def commit(self, consumer, offsets: list[TopicPartition]) -> None:
        if time.monotonic() >= self._refresh_at:
            self._last.clear()
            self._refresh_at = time.monotonic() + OFFSETS_REFRESH_S
        offsets = [tp for tp in offsets if self._last.get((tp.topic, tp.partition)) != (tp.offset, tp.metadata)]
        if not offsets:
            return
        try:  # raises when the whole request fails; a partition's own failure is on its entry
            failed = {(tp.topic, tp.partition): tp.error.str()
                      for tp in consumer.commit(offsets=offsets, asynchronous=False) or () if tp.error}
        except KafkaException as e:  # e.g. after a rebalance: the state is durable, the next one commits
            log_event(self.log, "offset commit failed", logging.WARNING, error=str(e))
            return
        done = {(tp.topic, tp.partition): (tp.offset, tp.metadata) for tp in offsets
                if (tp.topic, tp.partition) not in failed}
        if done:
            COMMITS.labels(self.stage_name).inc()
            self._last.update(done)
        if failed:
            log_event(self.log, "offset commit failed for some partitions", logging.WARNING,
                      partitions={f"{t}[{p}]": e for (t, p), e in failed.items()})

    def forget(self, topic: str, partition: int) -> None:
        """A partition this worker no longer owns."""
        self._last.pop((topic, partition), None)
