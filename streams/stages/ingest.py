"""Ingest stage: confluent-kafka batches of gw.metrics / gw.rum / gw.cdc -> partials on gw.partials.

Also the OpenTelemetry Collector's traces topic (GATEWATCH_OTLP_TOPIC, default the kafka
exporter's `otlp_spans`, not prefixed) when it exists: its SERVER spans become request samples
(gatewatch.processors.otlp) aggregated per OTLP partition under the logical topic "otlp". Records skipped
without a rejection (non-server spans, Debezium tombstones) are counted in
gatewatch_ingest_skipped_total{topic,reason}.

Per consumed batch: decode + validate + pre-aggregate each record into its source partition's
PartitionAggregator (gatewatch.processors.partials); rejects go to gw.dlq; one partial per touched
partition goes to gw.partials; partials, DLQ records and the consumed offsets are committed in
one Kafka transaction.

The aggregator's only durable state is the partition's max event time (its watermark). tansu
drops offset-commit metadata, so it lives in a small state file written after each commit:
{"next_offset", "agg"}. On assignment the file is used when it matches the committed offset;
otherwise the max event time is recomputed by reading the partition up to the committed offset
(pure and deterministic, so the result is the same, only slower). A failed transaction stops the
worker: restart restores exactly this way.
"""
from __future__ import annotations

import logging
import time
import uuid
from operator import methodcaller
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.dlq import dlq_record
from gatewatch.processors.inputs import InputOptions
from gatewatch.processors.otlp import DEFAULT_KAFKA_TOPIC, OTLP_TOPIC, InputAggregator
from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import consumer as make_consumer
from gatewatch.streams.runtime.kafka import producer as make_producer
from gatewatch.streams.runtime.ops import log_event
from gatewatch.streams.runtime.worker import (
    IdleClock,
    StopFlag,
    logical_topic,
    message_ts_ms,
    read_json,
    write_json_atomic,
)

LOG = logging.getLogger("gatewatch.ingest")
INPUTS = ("metrics", "rum", "cdc")


def otlp_topic_name() -> str:
    """The Kafka topic the Collector's kafka exporter writes traces to ("" = no OTLP input)."""
    import os
    return os.environ.get("GATEWATCH_OTLP_TOPIC", DEFAULT_KAFKA_TOPIC)


RECORDS = Counter("gatewatch_ingest_records_total", "Input records consumed", ["topic"])
REJECTS = Counter("gatewatch_ingest_rejected_total", "Input records sent to the DLQ", ["topic", "reason"])
PARTIALS = Counter("gatewatch_ingest_partials_total", "Partials published", ["topic"])
BATCH_SECONDS = Histogram("gatewatch_ingest_batch_seconds", "Consume-to-commit time of one batch",
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
SKIPPED = Counter("gatewatch_ingest_skipped_total",
                  "Input records or spans skipped without a rejection (non-server spans, tombstones)",
                  ["topic", "reason"])
WATERMARK = Gauge("gatewatch_ingest_watermark_seconds", "Event-time watermark per source partition",
                  ["topic", "partition"])


class _Lazy:
    """get(run[i]) on demand, as a sequence: add_batch reads offsets and keys only for the first
    and last record and for the records its fast loop does not take."""
    __slots__ = ("run", "get")

    def __init__(self, run: list, get):
        self.run, self.get = run, get

    def __len__(self) -> int:
        return len(self.run)

    def __getitem__(self, i: int):
        return self.get(self.run[i])


_OFFSET, _KEY = methodcaller("offset"), methodcaller("key")


def _partition_runs(msgs) -> list[tuple[tuple[str, int], list]]:
    """Consecutive messages of one partition (a consumed batch comes in such runs), errors logged."""
    runs: list[tuple[tuple[str, int], list]] = []
    key, run = None, None
    for m in msgs:
        if m.error():
            LOG.warning("consume error: %s", m.error())
            continue
        k = (m.topic(), m.partition())
        if k != key:
            key, run = k, []
            runs.append((k, run))
        run.append(m)
    return runs


class IngestWorker:
    def __init__(self, bootstrap: str, config: SignalConfig, state_dir: str | Path,
                 group: str = "gatewatch-ingest", batch_size: int = 10_000, poll_timeout_s: float = 0.1,
                 exit_when_idle_s: float | None = None, stop: StopFlag | None = None,
                 assignment: str = "static", partitions: list[int] | None = None,
                 inputs: InputOptions | None = None):
        self.bootstrap, self.config, self.group = bootstrap, config, group
        self.assignment, self.partitions = assignment, partitions
        self.state_dir = Path(state_dir)
        self.batch_size, self.poll_timeout_s = batch_size, poll_timeout_s
        self.idle = IdleClock(exit_when_idle_s)
        self.stop = stop or StopFlag()
        self.prefix = topics.prefix()
        self.inputs = [topics.topic(t) for t in INPUTS]
        self.options = inputs or InputOptions()
        self.otlp_topic = otlp_topic_name()
        self.partials_topic, self.dlq_topic = topics.topic("partials"), topics.topic("dlq")
        self.aggs: dict[tuple[str, int], InputAggregator] = {}
        self.assigned = False

    # ---- state ----
    def _state_path(self, topic: str, partition: int) -> Path:
        return self.state_dir / f"ingest-{topic}-{partition}.json"

    def _logical(self, full: str) -> str:
        return OTLP_TOPIC if full == self.otlp_topic else logical_topic(full, self.prefix)

    def _agg(self, logical: str, partition: int, state: dict | None = None) -> InputAggregator:
        if state is None:
            return InputAggregator(logical, partition, self.config, self.options)
        agg = InputAggregator.from_state(state, self.config)
        agg.options = self.options
        return agg

    def _otlp_exists(self, consumer) -> bool:
        if not self.otlp_topic:
            return False
        md = consumer.list_topics(self.otlp_topic, timeout=10).topics.get(self.otlp_topic)
        return md is not None and md.error is None and bool(md.partitions)

    def _restore(self, tp: TopicPartition, committed: int) -> InputAggregator:
        logical = self._logical(tp.topic)
        saved = read_json(self._state_path(tp.topic, tp.partition))
        if committed == OFFSET_INVALID or committed < 0:
            return self._agg(logical, tp.partition)
        if saved and saved.get("next_offset") == committed:
            return self._agg(logical, tp.partition, saved["agg"])
        start = saved["next_offset"] if saved and saved.get("next_offset", committed + 1) < committed else None
        agg = (self._agg(logical, tp.partition, saved["agg"]) if start is not None
               else self._agg(logical, tp.partition))
        replayed = self._replay_into(agg, tp, start, committed)
        agg.take_skipped()  # counted when these records were first consumed
        log_event(LOG, "restored watermark by re-reading input", topic=tp.topic, partition=tp.partition,
                  records=replayed, committed=committed)
        agg.flush()  # the partials of these records were published before the restart
        return agg

    def _replay_into(self, agg: InputAggregator, tp: TopicPartition, start: int | None, end: int) -> int:
        """Feed records [start or earliest, end) into agg, only to recompute its stream time."""
        c = make_consumer(self.bootstrap, f"{self.group}-restore-{uuid.uuid4().hex[:8]}")
        n = 0
        try:
            lo, _hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            pos = max(lo, start if start is not None else lo)
            if pos >= end:
                return 0
            c.assign([TopicPartition(tp.topic, tp.partition, pos)])
            deadline = time.monotonic() + 120
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

    def _on_assign(self, consumer, partitions) -> None:
        committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(partitions, timeout=30)}
        for tp in partitions:
            self.aggs[(tp.topic, tp.partition)] = self._restore(tp, committed[(tp.topic, tp.partition)])
        if self.assignment != "group":
            consumer.assign([TopicPartition(tp.topic, tp.partition,
                                            c if c >= 0 else OFFSET_BEGINNING)
                             for tp, c in ((tp, committed[(tp.topic, tp.partition)]) for tp in partitions)])
        self.assigned = True
        log_event(LOG, "partitions assigned", partitions=[f"{t.topic}[{t.partition}]" for t in partitions])

    def _on_revoke(self, consumer, partitions) -> None:
        for tp in partitions:
            self.aggs.pop((tp.topic, tp.partition), None)

    # ---- loop ----
    def process(self, producer, consumer, msgs) -> int:
        t0 = time.monotonic()
        producer.begin_transaction()
        touched: dict[tuple[str, int], int] = {}
        counts: dict[str, int] = {}
        for (topic, partition), run in _partition_runs(msgs):
            agg = self.aggs.get((topic, partition))
            if agg is None:  # assignment raced a revoke; the new owner will read it
                continue
            if agg.fast_path:  # its loop reads the offsets and keys of few records
                offsets, keys = _Lazy(run, _OFFSET), _Lazy(run, _KEY)
            else:
                offsets, keys = [m.offset() for m in run], [m.key() for m in run]
            values = [m.value() for m in run]
            kafka_ts = [t if kind != 0 and t >= 0 else None  # message_ts_ms, inlined
                        for kind, t in (m.timestamp() for m in run)]
            rejects = agg.add_batch(offsets, keys, values, kafka_ts)
            for i, rej in rejects:
                REJECTS.labels(agg.topic, rej.reason.split(":")[0]).inc()
                rec = dlq_record(topic, partition, offsets[i], rej.reason, values[i], rej.detail)
                producer.produce(self.dlq_topic, key=topic.encode(), value=canonical_json(rec))
            counts[agg.topic] = counts.get(agg.topic, 0) + len(run)
            touched[(topic, partition)] = offsets[-1]
        for logical, n in counts.items():
            RECORDS.labels(logical).inc(n)
        for key in touched:
            agg = self.aggs[key]
            if agg.skipped:
                for reason, n in agg.take_skipped().items():
                    SKIPPED.labels(agg.topic, reason.split(":", 1)[-1]).inc(n)
            partial = agg.flush()
            if partial is not None:
                producer.produce(self.partials_topic, key=f"{agg.topic}:{agg.partition}".encode(),
                                 value=canonical_json(partial))
                PARTIALS.labels(agg.topic).inc()
        offsets = [TopicPartition(t, p, off + 1) for (t, p), off in touched.items()]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        for (t, p), off in touched.items():
            agg = self.aggs[(t, p)]
            write_json_atomic(self._state_path(t, p), {"next_offset": off + 1, "agg": agg.to_state()})
            if agg.watermark_ms is not None:
                WATERMARK.labels(agg.topic, str(p)).set(agg.watermark_ms / 1000)
        BATCH_SECONDS.observe(time.monotonic() - t0)
        return len(msgs)

    def run(self) -> None:
        consumer = make_consumer(self.bootstrap, self.group, **{"fetch.max.bytes": 52_428_800})
        producer = make_producer(self.bootstrap, **{"transactional.id": f"{self.group}-{uuid.uuid4().hex[:12]}",
                                                    "linger.ms": 20})
        producer.init_transactions(30)
        if self._otlp_exists(consumer):
            self.inputs.append(self.otlp_topic)
        if self.assignment == "group":
            consumer.subscribe(self.inputs, on_assign=self._on_assign, on_revoke=self._on_revoke)
        else:
            from gatewatch.streams.runtime.stage import static_partitions
            self._on_assign(consumer, [TopicPartition(t, p) for t in self.inputs
                                       for p in static_partitions(consumer, t, self.partitions)])
        log_event(LOG, "ingest started", inputs=self.inputs, group=self.group)
        try:
            while not self.stop:
                msgs = consumer.consume(self.batch_size, self.poll_timeout_s)
                if msgs:
                    self.idle.saw_input()
                    self.process(producer, consumer, msgs)
                elif self.assigned and self.idle.expired():
                    break
        finally:
            producer.flush(10)
            consumer.close()
            log_event(LOG, "ingest stopped")
