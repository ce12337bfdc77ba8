"""Signals stage: gw.partials -> gw.signals. One SignalTask per gw.partials partition (the scopes it
owns, merged from every source partition: processors.signals.task).

A task waits for every partition of the input topics (metrics, rum, cdc, and the OTLP topic when it
exists, or once a partial from it arrives), so two instances started minutes apart still compute
each window from all of its data. Data a task had to drop as late goes to gw.dlq (reason late_at_merge).
"""
from __future__ import annotations

import orjson
from prometheus_client import Counter, Gauge

from gatewatch.processors.partial_check import partial_problem
from gatewatch.processors.signal_merge import wire_records
from gatewatch.processors.signals import SignalConfig, SignalTask, batch_domain
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.snapshots import SnapshotStage

SOURCE = "signals"  # the signal records' source: one task owns a scope, whatever the partitioning
SIGNALS = Counter("gatewatch_signals_emitted_total", "Signals published", ["domain"])
PARTIALS_IN = Counter("gatewatch_signals_partials_total", "Partials applied (re-deliveries included)")
BAD_PARTIALS = Counter("gatewatch_signals_bad_partials_total", "Partials the task cannot apply: to gw.dlq (bad_partial)")
LATE = Counter("gatewatch_signals_late_samples_total", "Samples dropped: behind what the task had emitted")
WATERMARK = Gauge("gatewatch_signals_watermark_seconds", "Event-time watermark of a signals task", ["task"])
WAITING = Gauge("gatewatch_signals_waiting_sources", "Source partitions holding a task's watermark back", ["task"])


def signal_outputs(task: SignalTask, partial: dict, signals_topic: str) -> list[tuple[str, bytes, bytes]]:
    """Apply a partial; the emitted batches as gw.signals records (shared with replay)."""
    out = []
    for batch in task.apply(partial):
        if not batch:
            continue
        domain = batch_domain(batch)
        SIGNALS.labels(domain).inc(len(batch))
        out.extend((signals_topic, k, v) for k, v in wire_records(batch, domain, SOURCE))
    return out


def late_records(task: SignalTask) -> list[tuple[str, int, int | None, str]]:
    """(source topic, partition, first offset, detail) of what the task dropped as late."""
    out = []
    for late in task.take_late():
        LATE.inc(late["samples"])
        logical, _, part = late["source"].rpartition(":")
        detail = (f"{late['samples']} samples in {late['buckets']} buckets behind the task's emitted "
                  f"windows (offsets {late['first_offset']}..{late['last_offset']})")
        out.append((topics.input_topic(logical), int(part), late["first_offset"], detail))
    return out


class SignalStage(SnapshotStage):
    name = "signals"

    def __init__(self, config: SignalConfig, state_dir, **kw):
        super().__init__(topics.topic("partials"), state_dir, group=topics.group_id("signals"), **kw)
        self.config = config
        self.signals_topic = topics.topic("signals")
        self._expected: dict[str, int] = {}  # input topic (logical) -> partitions

    def _sources(self, worker, logical: str) -> list[str]:
        if logical not in self._expected:
            self._expected[logical] = worker.partition_count(topics.input_topic(logical))
        return [f"{logical}:{p}" for p in range(self._expected[logical])]

    def input_topics(self, worker) -> list[str]:
        # the input partitions every task waits for, looked up here, before the group join: the
        # rebalance callback (new_state/load_state) must not call the consumer (list_topics there
        # aborted the process on a confluent-kafka assertion, CallState_get, under load)
        for logical in topics.INPUTS:
            self._sources(worker, logical)
        for logical, t in topics.collector_topics().items():
            if worker.topic_exists(t):  # ingest reads it when it exists, so wait for it too
                self._sources(worker, logical)
        return super().input_topics(worker)

    def _expect_inputs(self, task: SignalTask) -> None:
        for logical, n in self._expected.items():
            task.expect([f"{logical}:{p}" for p in range(n)])

    def new_state(self, worker, partition):
        task = SignalTask(partition, self.config)
        self._expect_inputs(task)
        return task

    def load_state(self, worker, partition, doc):
        task = SignalTask.from_state(doc, self.config)
        self._expect_inputs(task)
        return task

    def dump_state(self, state):
        return state.to_state()

    def handle(self, worker, task, msg):
        problem = partial_problem(msg.value())  # before the task: a partial failing halfway would stop the worker
        if problem is not None:
            BAD_PARTIALS.inc()
            worker.dlq(msg.topic(), msg.partition(), msg.offset(), "bad_partial", msg.value(), problem)
            return []
        partial = orjson.loads(msg.value())
        source = partial.get("source") or f"{partial['topic']}:{partial['partition']}"
        logical = source.rpartition(":")[0]
        PARTIALS_IN.inc()
        if logical in topics.COLLECTOR and logical not in self._expected:
            for t in self.states.values():  # an optional input appeared: wait for all of its partitions
                t.expect(self._sources(worker, logical))
        out = signal_outputs(task, partial, self.signals_topic)
        for source_topic, part, offset, detail in late_records(task):
            worker.dlq(source_topic, part, offset, "late_at_merge", None, detail)
        wm = task.watermark()
        if wm is not None:
            WATERMARK.labels(str(task.task)).set(wm / 1000)
        WAITING.labels(str(task.task)).set(len(task.waiting_for()) if wm is None else 0)
        return out
