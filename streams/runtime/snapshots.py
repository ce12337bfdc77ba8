"""Stages whose snapshot is the truth: per input partition, its state and the next offset together.

On assignment the stage restores each partition's snapshot and starts at its offset, or at the
beginning of the partition when there is none, rebuilding the state deterministically. At every
checkpoint (streams.runtime.worker) the dirty partitions' snapshots are written atomically, after
the outputs were flushed, and only then are the offsets committed (for operators' lag views; the
snapshot decides where to resume). A crash re-processes at most one checkpoint interval.

Snapshots are files `<state_dir>/<stage>-<topic>-<partition>.json`, keyed by the partition they
cover: instances that share the directory (one host, or a shared volume) hand state over with
the partitions on a rebalance; an instance without the file rebuilds from the partition's start.
"""
from __future__ import annotations

from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from gatewatch.streams.runtime.statefiles import read_json, write_json_atomic
from gatewatch.streams.runtime.worker import Stage


class SnapshotStage(Stage):
    """Subclasses give new_state / load_state / dump_state and handle(state, msg) -> outputs."""

    def __init__(self, input_topic: str, state_dir: str | Path, group: str, *,
                 snapshot_interval_s: float = 2.0, batch_size: int = 2000):
        self.input_topic, self.group = input_topic, group
        self.state_dir = Path(state_dir)
        self.checkpoint_interval_s, self.batch_size = snapshot_interval_s, batch_size
        self.states: dict[int, object] = {}
        self.next_offset: dict[int, int] = {}
        self.dirty: set[int] = set()

    # ---- to implement ----
    def new_state(self, worker, partition: int):
        raise NotImplementedError

    def load_state(self, worker, partition: int, doc: dict):
        raise NotImplementedError

    def dump_state(self, state) -> dict:
        raise NotImplementedError

    def handle(self, worker, state, msg) -> list[tuple[str, bytes, bytes]]:
        """Apply one input record; return (topic, key, value) records to publish."""
        raise NotImplementedError

    # ---- the Stage protocol ----
    def input_topics(self, worker) -> list[str]:
        return [self.input_topic]

    def _path(self, partition: int) -> Path:
        return self.state_dir / f"{self.name}-{self.input_topic}-{partition}.json"

    def on_assign(self, worker, tps):
        placed = []
        for tp in tps:
            doc = read_json(self._path(tp.partition))
            if doc is None:
                self.states[tp.partition] = self.new_state(worker, tp.partition)
                placed.append(TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING))
            else:
                self.states[tp.partition] = self.load_state(worker, tp.partition, doc["state"])
                self.next_offset[tp.partition] = doc["next_offset"]
                placed.append(TopicPartition(tp.topic, tp.partition, doc["next_offset"]))
        return placed

    def on_revoke(self, worker, tps) -> None:
        for tp in tps:
            self.states.pop(tp.partition, None)
            self.next_offset.pop(tp.partition, None)
            self.dirty.discard(tp.partition)

    def process(self, worker, msgs) -> None:
        for m in msgs:
            p = m.partition()
            state = self.states.get(p)
            if state is None:  # a revoke raced the batch: the new owner reads it
                continue
            for topic, key, value in self.handle(worker, state, m):
                worker.produce(topic, key, value)
            self.next_offset[p] = m.offset() + 1
            self.dirty.add(p)

    def checkpoint(self, worker) -> list[TopicPartition]:
        """The dirty partitions' snapshots written; then the offset of every owned partition that
        has one (its snapshot's): the worker commits those that changed, and all once a day
        (streams.runtime.offset_commits), so a quiet partition's lag view outlives Kafka's offsets
        retention."""
        for p in sorted(self.dirty):
            if p in self.states:
                write_json_atomic(self._path(p), {"next_offset": self.next_offset[p],
                                                  "state": self.dump_state(self.states[p])})
        self.dirty.clear()
        return [TopicPartition(self.input_topic, p, self.next_offset[p])
                for p in sorted(self.states) if p in self.next_offset]
