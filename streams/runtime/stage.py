"""A stateful confluent-kafka stage whose snapshot is the truth: state + input position together.

Per input partition the stage keeps a state object. After a batch, outputs are produced; every
`snapshot_interval_s` the producer is flushed (outputs durable), then each dirty partition's
state is written atomically with the next input offset, then offsets are committed (only so
lag is visible to operators). On assignment the stage seeks to the snapshot's offset — or to the
beginning when there is none, rebuilding state deterministically. A crash therefore re-processes
at most one snapshot interval; outputs are content-identical, and every consumer dedupes.

Assignment: "static" (default) owns the listed partitions (all when none are listed) without
group membership — nothing to rebalance, and no wait on members that died without leaving
(tansu stalls JoinGroup on those); "group" subscribes for elastic scale-out on real Kafka.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from gatewatch.streams.runtime.kafka import consumer as make_consumer
from gatewatch.streams.runtime.kafka import producer as make_producer
from gatewatch.streams.runtime.ops import log_event
from gatewatch.streams.runtime.worker import (
    IdleClock,
    StopFlag,
    read_json,
    write_json_atomic,
)


class SnapshotStage:
    name = "stage"

    def __init__(self, bootstrap: str, input_topic: str, state_dir: str | Path, group: str,
                 snapshot_interval_s: float = 2.0, batch_size: int = 2000, poll_timeout_s: float = 0.05,
                 exit_when_idle_s: float | None = None, stop: StopFlag | None = None,
                 assignment: str = "static", partitions: list[int] | None = None):
        self.bootstrap, self.input_topic, self.group = bootstrap, input_topic, group
        self.assignment, self.partitions = assignment, partitions
        self.state_dir = Path(state_dir)
        self.snapshot_interval_s, self.batch_size, self.poll_timeout_s = snapshot_interval_s, batch_size, poll_timeout_s
        self.idle = IdleClock(exit_when_idle_s)
        self.stop = stop or StopFlag()
        self.log = logging.getLogger(f"gatewatch.{self.name}")
        self.states: dict[int, object] = {}
        self.next_offset: dict[int, int] = {}
        self.dirty: set[int] = set()
        self.assigned = False
        self.producer = None

    # ---- to implement ----
    def new_state(self, partition: int):
        raise NotImplementedError

    def load_state(self, partition: int, doc: dict):
        raise NotImplementedError

    def dump_state(self, state) -> dict:
        raise NotImplementedError

    def handle(self, state, msg) -> list[tuple[str, bytes, bytes]]:
        """Apply one input record; return (topic, key, value) records to publish."""
        raise NotImplementedError

    # ---- machinery ----
    def _path(self, partition: int) -> Path:
        return self.state_dir / f"{self.name}-{self.input_topic}-{partition}.json"

    def _on_assign(self, consumer, partitions) -> None:
        placed = []
        for tp in partitions:
            doc = read_json(self._path(tp.partition))
            if doc is None:
                self.states[tp.partition] = self.new_state(tp.partition)
                placed.append(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
            else:
                self.states[tp.partition] = self.load_state(tp.partition, doc["state"])
                self.next_offset[tp.partition] = doc["next_offset"]
                placed.append(TopicPartition(tp.topic, tp.partition, doc["next_offset"]))
        consumer.assign(placed)
        self.assigned = True
        log_event(self.log, "partitions assigned", topic=self.input_topic,
                  positions={tp.partition: tp.offset for tp in placed})

    def _on_revoke(self, consumer, partitions) -> None:
        self.snapshot(consumer)
        for tp in partitions:
            self.states.pop(tp.partition, None)
            self.next_offset.pop(tp.partition, None)
        consumer.unassign()

    def snapshot(self, consumer=None) -> None:
        if not self.dirty:
            return
        if self.producer is not None and self.producer.flush(30):
            raise RuntimeError("outputs not delivered within 30s; not snapshotting past them")
        commits = []
        for p in sorted(self.dirty):
            if p in self.states:
                write_json_atomic(self._path(p), {"next_offset": self.next_offset[p],
                                                  "state": self.dump_state(self.states[p])})
                commits.append(TopicPartition(self.input_topic, p, self.next_offset[p]))
        self.dirty.clear()
        if consumer is not None and commits:
            consumer.commit(offsets=commits, asynchronous=True)

    def producer_config(self) -> dict:
        return {"linger.ms": 5}

    def run(self) -> None:
        consumer = make_consumer(self.bootstrap, self.group)
        self.producer = make_producer(self.bootstrap, **self.producer_config())
        if self.assignment == "group":
            consumer.subscribe([self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        else:
            parts = static_partitions(consumer, self.input_topic, self.partitions)
            self._on_assign(consumer, [TopicPartition(self.input_topic, p) for p in parts])
        log_event(self.log, f"{self.name} started", input=self.input_topic, group=self.group)
        last_snap = time.monotonic()
        try:
            while not self.stop:
                msgs = consumer.consume(self.batch_size, self.poll_timeout_s)
                for m in msgs:
                    if m.error():
                        self.log.warning("consume error: %s", m.error())
                        continue
                    p = m.partition()
                    state = self.states.get(p)
                    if state is None:
                        continue
                    for topic, key, value in self.handle(state, m):
                        self._produce(topic, key, value)
                    self.next_offset[p] = m.offset() + 1
                    self.dirty.add(p)
                if msgs:
                    self.idle.saw_input()
                    self.producer.poll(0)
                if time.monotonic() - last_snap >= self.snapshot_interval_s:
                    self.snapshot(consumer)
                    last_snap = time.monotonic()
                if not msgs and self.assigned and self.idle.expired():
                    break
            self.snapshot(consumer)
        finally:
            self.producer.flush(10)
            consumer.close()
            log_event(self.log, f"{self.name} stopped")

    def _produce(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value)
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.1)


def static_partitions(consumer, topic: str, wanted: list[int] | None) -> list[int]:
    """The partitions a statically assigned worker owns: `wanted`, or all of the topic's."""
    from gatewatch.streams.runtime.errors import GatewatchError
    md = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        raise GatewatchError(f"topic {topic} not found (run: gatewatch topics create)")
    have = sorted(md.partitions)
    if wanted is None:
        return have
    missing = sorted(set(wanted) - set(have))
    if missing:
        raise GatewatchError(f"{topic} has no partitions {missing} (it has {have})")
    return sorted(wanted)
