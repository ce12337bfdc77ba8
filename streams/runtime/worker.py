"""The one consume loop every gatewatch consumer runs on; a stage is its function and its state.

    Worker(stage, bootstrap, assignment="group").run()

Per batch: consume -> `stage.process(worker, msgs)` (outputs through `worker.produce`, rejects
through `worker.dlq`) -> make it count, in one of two ways:
- transactional stages (ingest): the batch's outputs, DLQ records and consumed offsets go in one
  Kafka transaction sent with the consumer group metadata (KIP-447: a member that lost its
  partitions is fenced and its transaction aborted); then `stage.after_commit(offsets)`.
- every other stage: each `checkpoint_interval_s` (and on revoke and stop) the producer is flushed
  (outputs durable), `stage.checkpoint()` makes the state durable and returns the offsets that are
  now safe to commit, and those are committed. A crash re-processes at most what came after the
  last checkpoint; outputs are content-identical and every consumer dedupes by content id.
Assignment: "static" owns `partitions` (default all) without group membership; "group" joins a
consumer group (cooperative-sticky) for elastic scale-out; `stage.on_assign` restores state for
the partitions it gets and says where to start, `stage.on_revoke` hands them back.
Also here, once for every stage: SIGTERM/SIGINT, back-pressure (BufferError, `stage.busy()`), idle
exit once caught up, and the worker metrics (docs/architecture.md).
"""
from __future__ import annotations

import logging
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, OFFSET_STORED, KafkaError, KafkaException, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.dlq import dlq_record
from gatewatch.streams.runtime import topics, transactions
from gatewatch.streams.runtime.committed_offsets import CommittedOffsets
from gatewatch.streams.runtime.consuming import FATAL, retry_on_load, static_partitions, watermarks
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.input_end import InputEnd
from gatewatch.streams.runtime.kafka import consumer as make_consumer
from gatewatch.streams.runtime.kafka import producer as make_producer
from gatewatch.streams.runtime.lifecycle import IdleClock, StopFlag
from gatewatch.streams.runtime.logs import log_event
from gatewatch.streams.runtime.offset_commits import OffsetCommits

RECORDS = Counter("gatewatch_worker_records_total", "Records consumed", ["stage"])
BATCHES = Histogram("gatewatch_worker_batch_seconds", "Time to process and commit one consumed batch", ["stage"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
PRODUCED = Counter("gatewatch_worker_produced_total", "Records produced", ["stage", "topic"])
DLQ = Counter("gatewatch_worker_dlq_total", "Records sent to the DLQ", ["stage", "reason"])
CONSUME_ERRORS = Counter("gatewatch_worker_consume_errors_total", "Consumer errors (logged, not fatal)", ["stage"])
ASSIGNED = Gauge("gatewatch_worker_assigned_partitions", "Input partitions this worker owns", ["stage"])
CHECKPOINTS = Counter("gatewatch_worker_checkpoints_total", "State made durable and offsets committed", ["stage"])


class Stage:
    """What a stage provides; every method but process() has a default."""
    name = "stage"
    group = "gatewatch"
    transactional = False
    checkpoint_interval_s = 2.0
    batch_size = 2000
    poll_timeout_s = 0.05

    def input_topics(self, worker: "Worker") -> list[str]:
        raise NotImplementedError

    def consumer_config(self) -> dict:
        return {}

    def producer_config(self) -> dict:
        return {"linger.ms": 5}

    def on_assign(self, worker: "Worker", tps: list[TopicPartition]) -> list[TopicPartition]:
        """Restore state for these partitions; return them with the offsets to start at
        (OFFSET_STORED: the group's committed offset)."""
        return [TopicPartition(tp.topic, tp.partition, OFFSET_STORED) for tp in tps]

    def on_revoke(self, worker: "Worker", tps: list[TopicPartition]) -> None:
        """Drop the state of partitions handed to another member (after the last checkpoint)."""

    def process(self, worker: "Worker", msgs: list) -> dict[tuple[str, int], int] | None:
        """Apply a batch. May return each partition's next offset after the batch (a stage that
        walks the batch by partition knows them; the worker then skips its own pass)."""
        raise NotImplementedError

    def checkpoint(self, worker: "Worker") -> list[TopicPartition]:
        """Make the state durable; return the offsets now safe to commit (non-transactional)."""
        return worker.consumed_offsets()

    def after_commit(self, worker: "Worker", offsets: list[TopicPartition]) -> None:
        """Transactional stages: the batch's transaction committed with these offsets."""

    def tick(self, worker: "Worker") -> None:
        """Called on every loop turn (timers, periodic work)."""

    def busy(self) -> bool:
        """True pauses consumption (e.g. too much in flight) and keeps the worker from idling out."""
        return False

    def idle_ok(self) -> bool:
        """False keeps the worker from idling out (work still in flight)."""
        return True

    def finish(self, worker: "Worker") -> None:
        """The loop ended: settle work in flight before the final checkpoint."""

    def close(self, worker: "Worker") -> None:
        """The loop ended: release resources (the final checkpoint already ran)."""


class Worker:
    def __init__(self, stage: Stage, bootstrap: str, *, assignment: str = "static",
                 partitions: list[int] | None = None, stop: StopFlag | None = None,
                 exit_when_idle_s: float | None = None):
        if assignment not in ("static", "group"):
            raise GatewatchError(f"assignment must be static or group, got {assignment!r}")
        self.stage, self.bootstrap = stage, bootstrap
        self.assignment, self.partitions = assignment, partitions
        self.stop = stop if stop is not None else StopFlag()
        self.idle = IdleClock(exit_when_idle_s)
        self.log = logging.getLogger(f"gatewatch.{stage.name}")
        self.dlq_topic = topics.topic("dlq")
        self.consumer = None
        self.producer = None
        self.inputs: list[str] = []
        self.assigned: set[tuple[str, int]] = set()
        self.ready = False
        self._positions: dict[tuple[str, int], int] = {}
        self.input_end = InputEnd(bootstrap, stage.name, stage.group, self.log)  # caught up? lag
        self.committed_offsets = CommittedOffsets(bootstrap, stage.group)  # where assigned partitions start
        self._commits = OffsetCommits(stage.name, self.log)
        self._last_checkpoint = time.monotonic()
        self._delivery_error: str | None = None
        self._produced: dict[str, object] = {}  # topic -> its PRODUCED child (labels() per record was costly)

    # ---- what stages call --------------------------------------------------------------
    def produce(self, topic: str, key: bytes | None, value: bytes, partition: int | None = None,
                on_delivery=None) -> None:
        kw = {"key": key, "value": value, "on_delivery": on_delivery or self._delivered}
        if partition is not None:
            kw["partition"] = partition
        while True:
            try:
                self.producer.produce(topic, **kw)
                break
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.1)
        counter = self._produced.get(topic)
        if counter is None:
            counter = self._produced[topic] = PRODUCED.labels(self.stage.name, topic)
        counter.inc()

    def _delivered(self, err, msg) -> None:
        if err is not None and self._delivery_error is None:
            self._delivery_error = f"{msg.topic()}: {err.str()}"

    def dlq(self, source_topic: str, partition: int, offset: int | None, reason: str, value: bytes | None,
            detail: str = "") -> None:
        """A rejected record to gw.dlq with its reason (key = the source topic)."""
        DLQ.labels(self.stage.name, reason.split(":")[0]).inc()
        rec = dlq_record(source_topic, partition, offset, reason, value, detail)
        self.produce(self.dlq_topic, source_topic.encode(), canonical_json(rec))

    def in_transaction(self, fn) -> None:
        """Run fn() (which produces) in a transaction of its own: committed, or aborted and raised."""
        self.producer.begin_transaction()
        try:
            fn()
        except BaseException as e:
            transactions.abort(self.producer, self.log, e)
            raise
        try:
            transactions.commit(self.producer, self.log, self.stage.name)
        except KafkaException as e:  # not retriable (commit() raised those as undecided)
            transactions.abort(self.producer, self.log, e)
            raise

    def consumed_offsets(self) -> list[TopicPartition]:
        """The next offset of every owned partition this worker consumed from."""
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self._positions.items()) if (t, p) in self.assigned]

    def topic_exists(self, topic: str) -> bool:
        md = self.consumer.list_topics(topic, timeout=10).topics.get(topic) if topic else None
        return md is not None and md.error is None and bool(md.partitions)

    def add_inputs(self, new_topics: list[str]) -> None:
        """Start consuming more topics (an optional input that appeared)."""
        if self.assignment == "group":
            self.consumer.subscribe(sorted(set(self.inputs) | set(new_topics)), on_assign=self._on_assign,
                                    on_revoke=self._on_revoke, on_lost=self._on_lost)
        else:
            self._on_assign(self.consumer, [TopicPartition(t, p) for t in new_topics
                                            for p in static_partitions(self.consumer, t, self.partitions)])
        self.inputs = sorted(set(self.inputs) | set(new_topics))

    def partition_count(self, topic: str) -> int:
        md = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            raise GatewatchError(f"topic {topic} not found (run: gatewatch topics create)")
        return len(md.partitions)

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        st = self.stage
        cconf = dict(st.consumer_config())
        if self.assignment == "group":  # incremental rebalances: members keep what they are not asked to move
            cconf.setdefault("partition.assignment.strategy", "cooperative-sticky")
        self.consumer = make_consumer(self.bootstrap, st.group, **cconf)
        pconf = dict(st.producer_config())
        if st.transactional:
            pconf.setdefault("transactional.id", f"{st.group}-{uuid.uuid4().hex[:12]}")
        self.producer = make_producer(self.bootstrap, **pconf)
        try:
            if st.transactional:
                retry_on_load(lambda: self.producer.init_transactions(30), "init_transactions")
            self.inputs = inputs = st.input_topics(self)
            if self.assignment == "group":
                self.consumer.subscribe(inputs, on_assign=self._on_assign, on_revoke=self._on_revoke,
                                        on_lost=self._on_lost)
            else:
                tps = [TopicPartition(t, p) for t in inputs for p in static_partitions(self.consumer, t, self.partitions)]
                self._on_assign(self.consumer, tps)
            log_event(self.log, f"{st.name} started", inputs=inputs, group=st.group, assignment=self.assignment)
            self.ready = True
            self.idle.saw_input()  # idleness counts from here, not from a slow start (transactions, joins)
            self._loop()
            self.input_end.report_lag(self.consumer, self._positions, self.assigned, force=True)
            st.finish(self)
            self.checkpoint()
        finally:
            self.ready = False
            try:
                st.close(self)
            finally:
                try:
                    self.producer.flush(10)
                except KafkaException as e:  # a fenced transactional producer: nothing left to deliver
                    log_event(self.log, "final flush refused", logging.WARNING, error=str(e))
                try:
                    self.consumer.close()  # re-raises what a revoke callback raised (a failed checkpoint)
                finally:
                    self.input_end.close()
                    self.committed_offsets.close()
                log_event(self.log, f"{st.name} stopped")

    def _loop(self) -> None:
        st = self.stage
        while not self.stop:
            busy = st.busy()
            msgs = [] if busy else self.consumer.consume(st.batch_size, st.poll_timeout_s)
            if busy:
                time.sleep(0.01)
            good = []
            for m in msgs:
                if m.error() is None:
                    good.append(m)
                elif m.error().code() != KafkaError._PARTITION_EOF:
                    CONSUME_ERRORS.labels(st.name).inc()
                    if m.error().fatal() or m.error().code() in FATAL:  # retrying cannot help
                        raise GatewatchError(f"{st.name}: {m.error().str()}")
                    self.log.warning("consume error: %s", m.error())
            if good:
                self.idle.saw_input()
                self._process(good)
            self.producer.poll(0)
            self.committed_offsets.serve()
            self.input_end.serve()
            self.input_end.report_lag(self.consumer, self._positions, self.assigned)
            st.tick(self)
            if not st.transactional and time.monotonic() - self._last_checkpoint >= st.checkpoint_interval_s:
                self.checkpoint()
            if not good and not busy and self.assigned and st.idle_ok() and self.idle.expired():
                if self.input_end.caught_up(self.consumer, self._positions, self.assigned):
                    break
                self.idle.saw_input()  # input is paused, not over: look again after another idle spell

    def _process(self, msgs: list) -> None:
        st, t0 = self.stage, time.monotonic()
        RECORDS.labels(st.name).inc(len(msgs))
        if not st.transactional:
            self._advance(msgs, st.process(self, msgs))
        else:
            self.producer.begin_transaction()
            try:
                offsets = self._transaction_offsets(self._advance(msgs, st.process(self, msgs)))
                group = self.consumer.consumer_group_metadata()
                transactions.retried(lambda: self.producer.send_offsets_to_transaction(offsets, group, 30), self.log)
                transactions.commit(self.producer, self.log, st.name)
            except KafkaException as e:
                # read_committed readers never see this batch. A rebalance (KIP-447: this member's
                # generation is stale) or a transaction coordinator still gone after the retries is
                # routine: rewind to the committed offsets and go on; any other failure (fenced: a
                # zombie) stops the worker, and a restart resumes there.
                transactions.abort(self.producer, self.log, e)
                if not (e.args[0].txn_requires_abort() or e.args[0].retriable()):
                    raise GatewatchError(f"{st.name}: transaction failed: {e.args[0].str()}") from None
                self._rewind()
                return
            except transactions.CommitUndecided:  # no abort may follow it
                raise
            except BaseException as e:
                transactions.abort(self.producer, self.log, e)
                raise
            st.after_commit(self, offsets)
        BATCHES.labels(st.name).observe(time.monotonic() - t0)

    def _rewind(self) -> None:
        """After an aborted batch: the owned partitions' state and positions as committed."""
        tps = [TopicPartition(t, p) for t, p in sorted(self.assigned)]
        log_event(self.log, "rewinding to the committed offsets", logging.WARNING, partitions=len(tps))
        self.stage.on_revoke(self, tps)
        for tp in self._resolve(self.consumer, self.stage.on_assign(self, tps)):
            self._positions[(tp.topic, tp.partition)] = tp.offset
            try:
                self.consumer.seek(tp)
            except KafkaException:  # being revoked right now: the next owner starts at the commit
                pass

    def _advance(self, msgs: list, nexts: dict[tuple[str, int], int] | None = None) -> list[tuple[str, int]]:
        """Each partition of the batch: next offset after its last message (as the stage returned
        them, or found here); the partitions, sorted."""
        if nexts is None:
            nexts = {(m.topic(), m.partition()): m.offset() + 1 for m in msgs}  # one pass: the last one wins
        self._positions.update(nexts)
        return sorted(nexts)

    def _transaction_offsets(self, touched: list[tuple[str, int]]) -> list[TopicPartition]:
        meta = getattr(self.stage, "offset_metadata", None)
        out = []
        for t, p in touched:
            if meta is not None:
                out.append(TopicPartition(t, p, self._positions[(t, p)], metadata=meta(t, p)))
            else:
                out.append(TopicPartition(t, p, self._positions[(t, p)]))
        return out

    def checkpoint(self) -> None:
        """Outputs durable, then state, then offsets (non-transactional stages)."""
        self._last_checkpoint = time.monotonic()
        if self.stage.transactional or self.producer is None:
            return
        if self.producer.flush(30):
            raise GatewatchError("outputs not delivered within 30 s; not checkpointing past them")
        if self._delivery_error:  # stop: a restart re-processes from the last checkpoint
            raise GatewatchError(f"publishing failed ({self._delivery_error}); not checkpointing past it")
        self._commits.commit(self.consumer, self.stage.checkpoint(self))
        CHECKPOINTS.labels(self.stage.name).inc()

    # ---- assignment --------------------------------------------------------------------
    def _on_assign(self, consumer, tps) -> None:
        placed = self._resolve(consumer, self.stage.on_assign(self, list(tps)))
        for tp in placed:
            self.assigned.add((tp.topic, tp.partition))
            if tp.offset >= 0:
                self._positions[(tp.topic, tp.partition)] = tp.offset
        if self.assignment == "group":
            consumer.incremental_assign(placed)
        else:
            consumer.assign(placed)
        ASSIGNED.labels(self.stage.name).set(len(self.assigned))
        self.idle.saw_input()  # a (slow) group join is not idleness
        log_event(self.log, "partitions assigned", partitions={f"{tp.topic}[{tp.partition}]": tp.offset for tp in placed})

    def _resolve(self, consumer, placed: list[TopicPartition]) -> list[TopicPartition]:
        """Logical start offsets (stored, beginning) as numbers: librdkafka resolves a logical one
        with a ListOffsets round that takes half a second on Apache Kafka; this takes one query."""
        stored = [tp for tp in placed if tp.offset == OFFSET_STORED]
        committed = {}
        if stored:
            try:
                got = retry_on_load(lambda: self.committed_offsets.get(stored, 10), "reading committed offsets", 20)
                committed = {(tp.topic, tp.partition): tp.offset for tp in got}
            except GatewatchError as e:  # a slow coordinator mid-rebalance: librdkafka resolves them itself
                log_event(self.log, "committed offsets left to the client", logging.WARNING, error=str(e))
                return placed
        out = []
        for tp in placed:
            off = committed.get((tp.topic, tp.partition), tp.offset) if tp.offset == OFFSET_STORED else tp.offset
            if off < 0:  # nothing committed, or the beginning: the partition's low watermark
                try:
                    off = watermarks(consumer, tp.topic, tp.partition, 20)[0]
                except GatewatchError as e:  # e.g. metadata still settling after a failover
                    log_event(self.log, "start offset left to the client", logging.WARNING, error=str(e))
                    off = OFFSET_BEGINNING
            out.append(TopicPartition(tp.topic, tp.partition, off))
        return out

    def _on_revoke(self, consumer, tps) -> None:
        if not self.stage.transactional:
            self.checkpoint()  # hand over with the state and offsets of everything processed
        self._drop(consumer, tps)

    def _on_lost(self, consumer, tps) -> None:  # not ours any more: nothing may be committed for them
        self._drop(consumer, tps)

    def _drop(self, consumer, tps) -> None:
        self.stage.on_revoke(self, list(tps))
        for tp in tps:
            self.assigned.discard((tp.topic, tp.partition))
            self._positions.pop((tp.topic, tp.partition), None)
            self._commits.forget(tp.topic, tp.partition)
        consumer.incremental_unassign(list(tps))
        self.input_end.forget(tps)
        ASSIGNED.labels(self.stage.name).set(len(self.assigned))
        log_event(self.log, "partitions revoked", partitions=[f"{tp.topic}[{tp.partition}]" for tp in tps])
