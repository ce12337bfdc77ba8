"""Ingest stage: batches of gw.metrics / gw.rum / gw.cdc (+ the Collector's OTLP traces topic, when it
exists) -> partials on gw.partials, rejects on gw.dlq, in one Kafka transaction per batch.

Per consumed batch: decode + validate + pre-aggregate each record into its source partition's
aggregator (processors.partials; OTLP SERVER spans become request samples, processors.otlp); one
partial per touched source partition, cut into one partial per signals task (processors.routing:
the task that owns a scope is its gw.partials partition) and produced to that partition, keyed by
the source. Partials, DLQ records and the consumed offsets commit together (streams.runtime.worker).
A source partition the consumer has read to its end says so ("caught up"), and an idle one says it
once with a progress partial, so the signals tasks do not wait for it (processors.signals.task).
Records skipped without a rejection (non-server spans, Debezium tombstones) are counted in
gatewatch_ingest_skipped_total{topic,reason}.

State: a source partition's max event time (its watermark) and first event time. It is committed
with the offsets as their metadata, so it moves with the partition to whichever member gets it;
also written to a state file (for brokers that drop offset metadata: tansu), at most once per
`state_file_interval_s` (and on revoke and stop) with the offset of the last commit it reflects:
its fsyncs were most of ingest's time when written after every commit. A file behind the
committed offset (a crash) is topped up by re-reading only the records in between (the state is a
fold over the records: max event time, first event time); without a usable file, the partition is
re-read from its start up to the committed offset.
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from itertools import groupby
from operator import itemgetter, methodcaller
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from prometheus_client import Counter, Gauge

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.inputs import InputOptions
from gatewatch.processors.otlp import InputAggregator
from gatewatch.processors.policy import PolicyError
from gatewatch.processors.request_batch import LazyColumn
from gatewatch.processors.routing import split_partial
from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.consuming import message_ts_ms, retry_on_load, watermarks
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import consumer as make_consumer
from gatewatch.streams.runtime.logs import log_event
from gatewatch.streams.runtime.policy_files import PolicyWatch, load_policy_dir
from gatewatch.streams.runtime.statefiles import read_json, write_json_atomic
from gatewatch.streams.runtime.worker import Stage

LOG = logging.getLogger("gatewatch.ingest")
REJECTS = Counter("gatewatch_ingest_rejected_total", "Input records sent to the DLQ", ["topic", "reason"])
PARTIALS = Counter("gatewatch_ingest_partials_total", "Partials published", ["topic"])
SKIPPED = Counter("gatewatch_ingest_skipped_total",
                  "Input records or spans skipped without a rejection (non-server spans, tombstones)",
                  ["topic", "reason"])
WATERMARK = Gauge("gatewatch_ingest_watermark_seconds", "Event-time watermark per source partition",
                  ["topic", "partition"])


_OFFSET, _KEY, _VALUE = methodcaller("offset"), methodcaller("key"), methodcaller("value")
_TOPIC, _PARTITION, _TIMESTAMP = methodcaller("topic"), methodcaller("partition"), methodcaller("timestamp")
_KIND, _MS = itemgetter(0), itemgetter(1)


def partition_runs(msgs) -> list[tuple[tuple[str, int], list]]:
    """Consecutive messages of one partition (a consumed batch comes in such runs), cut in C."""
    return [((topic, partition), run)
            for partition, same_partition in groupby(msgs, _PARTITION)
            for topic, run in ((t, list(g)) for t, g in groupby(same_partition, _TOPIC))]


def kafka_timestamps(run: list) -> list[int | None]:
    """The messages' timestamps in ms, None where there is none (message_ts_ms of each)."""
    stamps = list(map(_TIMESTAMP, run))
    if all(map(_KIND, stamps)) and min(map(_MS, stamps)) > 0:  # the usual batch: every one stamped
        return list(map(_MS, stamps))
    return [t if kind != 0 and t > 0 else None for kind, t in stamps]


class IngestStage(Stage):
    name = "ingest"
    transactional = True
    poll_timeout_s = 0.1
    progress_interval_s = 0.5
    state_file_interval_s = 1.0

    def __init__(self, config: SignalConfig, state_dir: str | Path, inputs: InputOptions | None = None,
                 group: str | None = None, batch_size: int = 10_000, policy_dir: str | Path | None = None):
        self.config, self.group, self.batch_size = config, group or topics.group_id("ingest"), batch_size
        # decoding options (cohort tables, route templates, label mappings, cdc.services) follow
        # the policy directory live; windows and steps need a restart (the signals state uses them)
        self._watch = PolicyWatch(policy_dir) if policy_dir is not None else None
        self._last_policy_check = 0.0
        self.state_dir = Path(state_dir)
        self.options = inputs or InputOptions()
        self.partials_topic = topics.topic("partials")
        self.aggs: dict[tuple[str, int], InputAggregator] = {}
        self.position: dict[tuple[str, int], int | None] = {}  # next offset to read, when known
        self.reported: dict[tuple[str, int], bool] = {}        # last caught-up flag sent
        self.tasks = 1
        self._last_progress = self._last_otlp_check = 0.0
        # fault injection for the zombie test: hold the 3rd batch's open transaction this long
        self._hold_s = float(os.environ.get("GATEWATCH_INGEST_HOLD_BEFORE_COMMIT_S", "0"))
        self._batches = 0
        # committed but not yet in a state file: partition -> (next offset, state at that commit)
        self._unsaved: dict[tuple[str, int], tuple[int, dict]] = {}
        self._last_state_write = time.monotonic()

    def input_topics(self, worker) -> list[str]:
        self.tasks = worker.partition_count(self.partials_topic)
        names = [topics.topic(t) for t in topics.INPUTS]
        names += [t for t in topics.collector_topics().values() if worker.topic_exists(t)]
        return names

    def consumer_config(self) -> dict:
        return {"fetch.max.bytes": 52_428_800}

    def producer_config(self) -> dict:
        # a member stopped longer than this (SIGSTOP, a GC pause) finds its transaction aborted
        return {"linger.ms": 20, "transaction.timeout.ms": 10_000}

    # ---- state ----
    def _state_path(self, topic: str, partition: int) -> Path:
        return self.state_dir / f"ingest-{topic}-{partition}.json"

    def _agg(self, full: str, partition: int, state: dict | None = None) -> InputAggregator:
        logical = topics.input_logical(full)
        if state is None:
            return InputAggregator(logical, partition, self.config, self.options)
        agg = InputAggregator.from_state({**state, "topic": logical, "partition": partition}, self.config)
        agg.options = self.options
        return agg

    def _maybe_reload(self) -> None:
        if not self._watch.changed():
            return
        try:
            opts = InputOptions.from_policy(load_policy_dir(self._watch.path).doc)
        except (PolicyError, GatewatchError, ValueError) as e:  # keep the last good options
            log_event(LOG, "policy reload refused, keeping the decoding options in force", logging.ERROR,
                      error=str(e))
            return
        self.options = opts
        for agg in self.aggs.values():
            agg.options = opts
        log_event(LOG, "policy reloaded: decoding options (cohorts, routes, mappings) now in force")

    def offset_metadata(self, topic: str, partition: int) -> str:
        agg = self.aggs[(topic, partition)]
        return orjson.dumps({"max_event_ms": agg.max_event_ms, "origin_ms": agg.origin_ms}).decode()

    def on_assign(self, worker, tps):
        # committed offsets are read stable (KIP-447): while a killed member's transaction on these
        # partitions is still open, the broker answers only once it has timed out and been aborted
        # (transaction.timeout.ms below plus the coordinator's cleanup interval), later on a loaded host
        def waiting(error: str, waited_s: float) -> None:  # a worker silent for minutes looks dead
            log_event(LOG, "still waiting for the committed offsets", logging.WARNING, error=error,
                      waited_s=round(waited_s, 1), partitions=[f"{tp.topic}[{tp.partition}]" for tp in tps])
        committed = retry_on_load(lambda: worker.committed_offsets.get(tps, 30), "reading committed offsets",
                                  180, on_retry=waiting)
        placed = []
        for tp in committed:
            key = (tp.topic, tp.partition)
            self.aggs[key] = self._restore(worker, tp)
            self.position[key] = tp.offset if tp.offset >= 0 else None
            self.reported[key] = False
            placed.append(TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING))
        return placed

    def _restore(self, worker, tp: TopicPartition) -> InputAggregator:
        if tp.offset < 0:
            return self._agg(tp.topic, tp.partition)
        if tp.metadata:
            try:
                return self._agg(tp.topic, tp.partition, orjson.loads(tp.metadata))
            except (orjson.JSONDecodeError, TypeError, KeyError):
                pass  # not ours: recompute below
        saved = read_json(self._state_path(tp.topic, tp.partition))
        saved_at = saved.get("next_offset") if isinstance(saved, dict) else None
        if saved_at == tp.offset:
            return self._agg(tp.topic, tp.partition, saved["agg"])
        if type(saved_at) is int and 0 <= saved_at < tp.offset:  # behind the commit: top it up
            agg = self._agg(tp.topic, tp.partition, saved["agg"])
        else:  # none, or ahead of the commit (offsets reset, topic re-created): from the start
            agg, saved_at = self._agg(tp.topic, tp.partition), None
        n = _reread(worker.bootstrap, self.group, agg, tp, saved_at)
        agg.take_skipped()  # counted when these records were first consumed
        agg.flush()         # their partials were published before
        log_event(LOG, "restored watermark by re-reading input", topic=tp.topic, partition=tp.partition,
                  records=n, committed=tp.offset, state_file_offset=saved_at)
        return agg

    def on_revoke(self, worker, tps) -> None:
        self._write_state_files([(tp.topic, tp.partition) for tp in tps])  # for the next owner
        for tp in tps:
            key = (tp.topic, tp.partition)
            for d in (self.aggs, self.position, self.reported):
                d.pop(key, None)

    # ---- the batch ----
    def process(self, worker, msgs) -> dict[tuple[str, int], int]:
        """Returns each owned partition's next offset after the batch (the worker's offsets to commit)."""
        touched, nexts = [], {}
        for (topic, partition), run in partition_runs(msgs):
            agg = self.aggs.get((topic, partition))
            if agg is None:  # a revoke raced the batch: the new owner reads it from the committed offset
                continue
            nexts[(topic, partition)] = run[-1].offset() + 1  # a later run of the partition wins
            if agg.fast_path:  # its loop reads the offsets and keys of few records
                offsets, keys = LazyColumn(run, _OFFSET), LazyColumn(run, _KEY)
            else:
                offsets, keys = list(map(_OFFSET, run)), list(map(_KEY, run))
            values = list(map(_VALUE, run))
            for i, rej in agg.add_batch(offsets, keys, values, kafka_timestamps(run)):
                REJECTS.labels(agg.topic, rej.reason.split(":")[0]).inc()
                worker.dlq(topic, partition, offsets[i], rej.reason, values[i], rej.detail)
            self.position[(topic, partition)] = nexts[(topic, partition)]
            touched.append((topic, partition))
        for key in touched:
            agg = self.aggs[key]
            if agg.skipped:
                for reason, n in agg.take_skipped().items():
                    SKIPPED.labels(agg.topic, reason.split(":", 1)[-1]).inc(n)
            caught_up = self._at_end(worker, key)
            partial = agg.flush(caught_up)
            if partial is not None:
                self._publish(worker, partial)
                self.reported[key] = caught_up
        self._batches += 1
        if self._hold_s and self._batches == 3:
            worker.producer.flush(10)
            log_event(LOG, "holding the open transaction (fault injection)", seconds=self._hold_s)
            time.sleep(self._hold_s)
        return nexts

    def _at_end(self, worker, key: tuple[str, int]) -> bool:
        """Whether this partition was read to its end, as far as the last fetch told."""
        _lo, hi = worker.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
        pos = self.position.get(key)
        if pos is None:
            pos = _lo if _lo is not None and _lo >= 0 else None
        return hi is not None and hi >= 0 and pos is not None and pos >= hi

    def _publish(self, worker, partial: dict) -> None:
        key = partial["source"].encode()
        for t, part in enumerate(split_partial(partial, self.tasks)):
            worker.produce(self.partials_topic, key, canonical_json(part), partition=t)
        PARTIALS.labels(partial["topic"]).inc()

    def after_commit(self, worker, offsets) -> None:
        for tp in offsets:
            agg = self.aggs.get((tp.topic, tp.partition))
            if agg is None:
                continue
            self._unsaved[(tp.topic, tp.partition)] = (tp.offset, agg.to_state())
            if agg.watermark_ms is not None:
                WATERMARK.labels(agg.topic, str(tp.partition)).set(agg.watermark_ms / 1000)
        if time.monotonic() - self._last_state_write >= self.state_file_interval_s:
            self._write_state_files()

    def _write_state_files(self, keys=None) -> None:
        """The committed states not yet on disk (all, or those of `keys`), each with its offset."""
        if keys is None:
            self._last_state_write = time.monotonic()
            keys = list(self._unsaved)
        for key in sorted(k for k in keys if k in self._unsaved):
            offset, state = self._unsaved.pop(key)
            write_json_atomic(self._state_path(*key), {"next_offset": offset, "agg": state})

    def close(self, worker) -> None:
        self._write_state_files()

    def tick(self, worker) -> None:
        """Idle partitions read to their end say so once (a transaction of progress partials); the
        OTLP topic is taken on when it appears; a changed policy's decoding options apply."""
        now = time.monotonic()
        if self._unsaved and now - self._last_state_write >= self.state_file_interval_s:
            self._write_state_files()  # the last commits before a quiet spell
        if self._watch is not None and now - self._last_policy_check >= 2:
            self._last_policy_check = now
            self._maybe_reload()
        absent = [t for t in topics.collector_topics().values() if t not in worker.inputs]
        if absent and now - self._last_otlp_check >= 30:
            self._last_otlp_check = now
            for t in absent:
                if worker.topic_exists(t):
                    log_event(LOG, "OpenTelemetry Collector topic appeared: reading it", topic=t)
                    worker.add_inputs([t])
        if now - self._last_progress < self.progress_interval_s:
            return
        self._last_progress = now
        due = [k for k in self.aggs if not self.reported.get(k) and self._at_end(worker, k)]
        if not due:
            return
        def publish():
            for key in due:
                pos = self.position.get(key)
                if pos is None:
                    pos = worker.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)[0]
                self._publish(worker, self.aggs[key].progress(pos, True))
        worker.in_transaction(publish)
        for key in due:
            self.reported[key] = True


def _reread(bootstrap: str, group: str, agg: InputAggregator, tp: TopicPartition, start: int | None = None) -> int:
    """Feed records [start or earliest, tp.offset) into agg, only to recompute its stream time."""
    c = make_consumer(bootstrap, f"{group}-restore-{uuid.uuid4().hex[:8]}")
    n, end = 0, tp.offset
    try:
        lo, _hi = watermarks(c, tp.topic, tp.partition)
        if start is not None:
            lo = max(lo, start)
        if lo >= end:
            return 0
        c.assign([TopicPartition(tp.topic, tp.partition, lo)])
        pos, deadline = lo, time.monotonic() + 120
        while pos < end and time.monotonic() < deadline:
            for m in c.consume(10_000, 1.0):
                if m.error() or m.offset() >= end:
                    continue
                agg.add(m.offset(), m.key(), m.value(), message_ts_ms(m))
                pos, n = m.offset() + 1, n + 1
        if pos < end:
            raise RuntimeError(f"could not re-read {tp.topic}[{tp.partition}] up to offset {end}")
    finally:
        c.close()
    return n
