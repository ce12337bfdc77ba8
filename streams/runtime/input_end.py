"""Where a worker's input partitions end, against where it is: whether it has caught up (to exit
idle) and its consumer lag, a Prometheus gauge per partition for the operators' dashboards."""
from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaException, TopicPartition
from prometheus_client import Gauge

from gatewatch.streams.runtime.kafka import consumer as make_consumer
from gatewatch.streams.runtime.logs import log_event

LAG = Gauge("gatewatch_worker_consumer_lag_records",
            "Records between a worker's position and its input partition's end, as its last fetch saw it",
            ["stage", "topic", "partition"])


class InputEnd:
    def __init__(self, bootstrap: str, stage: str, group: str, log: logging.Logger, lag_every_s: float = 5.0):
        self.bootstrap, self.stage, self.group, self.log = bootstrap, stage, group, log
        self.lag_every_s, self._lag_at = lag_every_s, 0.0
        self._log_end = None  # a read_uncommitted consumer that only asks for log end offsets

    def caught_up(self, consumer, positions: dict, assigned: set) -> bool:
        """Idle means nothing left to read, not a quiet spell (a leader election can pause input
        longer than the idle time). The client's position passes transaction markers. The end is
        the log end, not the last stable offset this read_committed consumer sees: behind an open
        transaction (a SIGKILLed producer's, until the broker aborts it) later commits wait unseen,
        and a worker that stopped there left them undone (scale-out chaos test, seed 5)."""
        if self._log_end is None:
            self._log_end = make_consumer(self.bootstrap, self.group, **{"isolation.level": "read_uncommitted"})
        try:
            for tp in consumer.position([TopicPartition(t, p) for t, p in sorted(assigned)]):
                pos = max(tp.offset, positions.get((tp.topic, tp.partition), 0))
                if pos < self._log_end.get_watermark_offsets(tp, timeout=5)[1]:
                    return False
        except KafkaException as e:
            log_event(self.log, "end offsets unknown, not idle", logging.INFO, error=str(e))
            return False
        return True

    def report_lag(self, consumer, positions: dict, assigned: set, force: bool = False) -> None:
        """Every lag_every_s: the partition's end from the client's cache (updated by each fetch, no
        broker round trip) minus the next offset to process. A read_committed input (the stages'
        own topics) counts its last transaction marker, so a caught-up reader may show 1."""
        now = time.monotonic()
        if not force and now - self._lag_at < self.lag_every_s:
            return
        self._lag_at = now
        for t, p in sorted(assigned):
            pos = positions.get((t, p))
            try:
                _lo, hi = consumer.get_watermark_offsets(TopicPartition(t, p), cached=True)
            except KafkaException:
                continue
            if pos is not None and pos >= 0 and hi is not None and hi >= 0:
                LAG.labels(self.stage, t, str(p)).set(max(0, hi - pos))

    def serve(self) -> None:
        """Hand its end-offset client's queued log lines to the logger (CommittedOffsets.serve)."""
        if self._log_end is not None:
            self._log_end.poll(0)

    def forget(self, tps) -> None:
        """Revoked partitions: their lag is the next owner's to report."""
        for tp in tps:
            try:
                LAG.remove(self.stage, tp.topic, str(tp.partition))
            except KeyError:
                pass

    def close(self) -> None:
        if self._log_end is not None:
            self._log_end.close()
            self._log_end = None
