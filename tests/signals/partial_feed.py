"""Records through per-partition aggregators as the ingest stage cuts them: a partial every
`flush_every` records of a partition, then every partition's last one, caught up."""
from __future__ import annotations

from gatewatch.processors.partials import PartitionAggregator


def feed_partials(records, config, flush_every: int, apply, wire: bool = True) -> None:
    """apply(partial) for each partial of (topic, partition, offset, key, value, kafka ts) records;
    wire=False: partials as replay hands them over (PartitionAggregator.flush)."""
    aggs, ends = {}, {}
    for topic, part, off, key, value, kts in records:
        tp = (topic, part)
        agg = aggs.setdefault(tp, PartitionAggregator(topic, part, config))
        agg.add(off, key, value, kts)
        ends[tp] = off + 1
        if agg.records >= flush_every:
            p = agg.flush(False, wire)
            if p is not None:
                apply(p)
    for tp in sorted(aggs):
        apply(aggs[tp].flush(True, wire) or aggs[tp].progress(ends[tp], True))
