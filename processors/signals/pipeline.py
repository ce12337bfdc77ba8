"""run_pipeline: ingest aggregation and one signals task over records in memory, no broker.

What replay and the tests use to get the signals of a record sequence exactly as the streaming path
computes them: per source partition an aggregator flushed every `flush_every` records, one task
owning every scope (a scope's signals do not depend on how many tasks there are), every source
expected from the start, and all of them caught up at the end of input.
"""
from __future__ import annotations

from gatewatch.processors.dlq import dlq_record
from gatewatch.processors.partials import PartitionAggregator
from gatewatch.processors.signals.task import SignalTask
from gatewatch.processors.windows import SignalConfig


def run_pipeline(records, config: SignalConfig | None = None, flush_every: int = 1000):
    """Feed (topic, partition, offset, key, value, kafka_ts_ms) records through per-partition
    aggregators and a signals task like the runtime. Returns (signal_batches, rejections):
    batches in emission order and rejections as gw.dlq records in input order. Neither depends
    on flush_every."""
    records = list(records)
    cfg = config or SignalConfig()
    task = SignalTask(0, cfg)
    task.expect(f"{r[0]}:{r[1]}" for r in records)
    aggs: dict[tuple, PartitionAggregator] = {}
    ends: dict[tuple, int] = {}
    batches: list = []
    rejections: list[dict] = []

    def flush(tp, caught_up=False):
        partial = aggs[tp].flush(caught_up)
        if partial is None and caught_up:  # nothing pending: say where the source ends
            partial = aggs[tp].progress(ends[tp], True)
        if partial is not None:
            batches.extend(task.apply(partial))

    for topic, partition, offset, key, value, kafka_ts in records:
        tp = (topic, partition)
        agg = aggs.get(tp)
        if agg is None:
            agg = aggs[tp] = PartitionAggregator(topic, partition, cfg)
        ends[tp] = offset + 1
        rej = agg.add(offset, key, value, kafka_ts)
        if rej is not None:
            rejections.append(dlq_record(topic, partition, offset, rej.reason, value, rej.detail))
        if agg.records >= flush_every:
            flush(tp)
    for tp in sorted(aggs):
        flush(tp, caught_up=True)
    return batches, rejections
