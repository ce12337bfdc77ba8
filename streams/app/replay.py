"""`gatewatch replay`: the streaming path's processors over kcat -J NDJSON files, no broker.

Each input line is a kcat envelope (streams.app.kcat_files reads them). The Collector's OTLP traces and metrics topics (GATEWATCH_OTLP_TOPIC,
default `otlp_spans`; GATEWATCH_OTLP_METRICS_TOPIC, default `otlp_metrics`) are inputs too (gatewatch.streams.stages.ingest). Records run through exactly the functions
the workers run — PartitionAggregator (ingest), signal_outputs (signal stage), DecisionState +
decision_outputs (decide), record_outputs (trajectory worker, for gw.spans) — and every record the
streaming path would publish comes out as one NDJSON line {"topic","key","value"}.
"""
from __future__ import annotations

from collections import Counter
from itertools import compress, groupby, islice
from operator import attrgetter, itemgetter, le, ne
from typing import Iterable, Iterator, Sequence

import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.dlq import dlq_record
from gatewatch.processors.inputs import InputOptions
from gatewatch.processors.otlp import InputAggregator
from gatewatch.processors.policy.scoped import ScopedEngine
from gatewatch.processors.request_batch import LazyColumn
from gatewatch.processors.signals import SignalTask
from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.app.kcat_files import (
    Envelope,
    envelope_batches,
    envelope_from_dict,
    logical_name,
    read_envelopes,
    scan_sources,
    sources_of,
)
from gatewatch.streams.app.kcat_files import value_of as _value
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.topics import INPUTS
from gatewatch.streams.stages.decide import DecisionState, decision_outputs, shadow_outputs
from gatewatch.streams.stages.signals import late_records, signal_outputs

# what callers read kcat files with, from here as before the split
__all__ = ["Envelope", "Replayer", "envelope_batches", "envelope_from_dict", "feed_files", "logical_name",
           "output_line", "read_envelopes", "scan_sources", "sources_of"]


class Replayer:
    """`sources`: every input partition ("metrics:0", ...) the files hold (scan_sources), which the
    signals task waits for as streaming waits for every partition of the input topics; without
    it a source is waited for from its first record on."""

    def __init__(self, policy, signer=None, flush_every: int = 1000, quality_policy=None,
                 inputs: InputOptions | None = None, sources=None, shadow_policy=None):
        self.config = SignalConfig.from_policy(policy.doc, policy.hash)
        self.options = inputs or InputOptions.from_policy(policy.doc)
        self.collector = {t: lg for lg, t in topics.collector_topics().items()}  # the Collector's (not prefixed)
        self.flush_every = flush_every
        self.prefix = topics.prefix()
        self.t_signals, self.t_actions, self.t_dlq, self.t_gates, self.t_attestations = (
            topics.topic(n) for n in ("signals", "actions", "dlq", "gates", "attestations"))
        self.aggs: dict[tuple[str, int], InputAggregator] = {}
        self.ends: dict[tuple[str, int], int] = {}
        self.task = SignalTask(0, self.config)  # one task owns every scope: same signals as any split
        self.task.expect(sources or ())
        # decide is partitioned by scope in streaming; one state over all scopes gives the same
        # per-scope results because the engine keeps scopes apart.
        self.decide = DecisionState(ScopedEngine(policy, signer),
                                    shadow=ScopedEngine(shadow_policy) if shadow_policy is not None else None)
        self.t_shadow = topics.topic("shadow")
        self.quality_policy = quality_policy
        self.cycles: dict[int, object] = {}  # gw.spans partition -> SpanCycle
        self.skipped = Counter()
        self.logicals: dict[str | None, str | None] = {}  # envelope topic -> logical name

    def feed(self, env: dict | Envelope) -> list[tuple[str, bytes, bytes]]:
        return self.feed_many([env if type(env) is Envelope else envelope_from_dict(env)])

    def feed_many(self, envs: list[Envelope]) -> list[tuple[str, bytes, bytes]]:
        """Outputs of these envelopes, in order: the same lines as feeding them one by one.

        Each input partition's records go to PartitionAggregator.add_batch together, in runs cut
        where the aggregator reaches flush_every (so flushes fall on the same records), even when
        partitions interleave: an aggregator depends on its own partition's records only. What
        shares state across partitions (a flush's partial reaching the signals task and decide,
        spans) runs afterwards in record order, with the DLQ records, so the lines are the same."""
        events: list[tuple[int, int, object]] = []  # (position, _DLQ/_FLUSH/_SPAN, what)
        inputs: dict[tuple, tuple[list[Envelope], list[int]]] = {}  # (logical, partition) -> records, positions
        for (topic, part), (run, where) in _by_partition(envs).items():
            logical = self._logical(topic)
            if logical == "spans":
                events.extend((pos, _SPAN, env) for pos, env in zip(where, run))
            elif logical not in INPUTS and logical not in topics.COLLECTOR:
                self.skipped[f"topic:{topic}"] += len(run)
            elif (logical, part) in inputs:
                # another topic name of the same input (a second prefix, the Collector's name):
                # one aggregator, which must see the records of both in record order
                run0, where0 = inputs[(logical, part)]
                merged = sorted(zip(where0 + where, run0 + run), key=_FIRST)
                inputs[(logical, part)] = ([e for _, e in merged], [pos for pos, _ in merged])
            else:
                inputs[(logical, part)] = (run, where)
        for (logical, part), (run, where) in inputs.items():
            self._feed_partition(logical, part, run, where, events)
        out: list[tuple[str, bytes, bytes]] = []
        events.sort(key=_POSITION)
        for _pos, kind, what in events:
            if kind == _DLQ:
                out.append(what)
            elif kind == _FLUSH:
                out.extend(self._publish(what))
            else:
                out.extend(self._spans(what))
        return out

    def _logical(self, topic: str | None) -> str | None:
        """The logical name of an envelope's topic (memoized: one per record otherwise)."""
        logical = self.logicals.get(topic, _UNKNOWN)
        if logical is _UNKNOWN:
            full = topic or ""
            logical = self.collector.get(full) or logical_name(full, self.prefix)
            if len(self.logicals) >= 4096:
                self.logicals.clear()
            self.logicals[topic] = logical
        return logical

    def _feed_partition(self, logical: str, part: int, run: list[Envelope], where: list[int], events: list) -> None:
        """One input partition's envelopes, in runs cut where an offset does not grow (a second
        file of the partition restarting at 0?) and where the aggregator reaches flush_every;
        records behind the partition's last offset are skipped. `where`: their positions."""
        agg = self.aggs.get((logical, part))
        if agg is None:
            agg = self.aggs[(logical, part)] = InputAggregator(logical, part, self.config, self.options)
        offsets = list(map(_OFFSET, run))
        start = 0
        for stop in [*compress(range(1, len(run)), map(le, offsets[1:], offsets)), len(run)]:
            i, nxt = start, self.ends.get((logical, part), 0)
            while i < stop and offsets[i] < nxt:  # a partition's offsets only grow
                self.skipped["offset_behind"] += 1
                i += 1
            while i < stop:
                j = min(stop, i + max(1, self.flush_every - agg.pending))
                self._feed_run(agg, logical, part, run[i:j], where[i:j], events)
                i = j
            start = stop

    def _feed_run(self, agg: InputAggregator, logical: str, part: int, run: list[Envelope], where: list[int],
                  events: list) -> None:
        self.ends[(logical, part)] = run[-1].offset + 1
        binary = list(map(_B64, run)).count(None) != len(run)
        values = None
        if binary:  # a value in base64 that does not decode: the line is unreadable, counted
            values = [_value(e) for e in run]
            ok = [k for k, (e, v) in enumerate(zip(run, values)) if v is not None or e.payload_b64 is None]
            if len(ok) < len(run):
                self.skipped["bad_payload_b64"] += len(run) - len(ok)
                run, where, values = [run[k] for k in ok], [where[k] for k in ok], [values[k] for k in ok]
                if not run:
                    return
        rejects, values = _add_run(agg, run, binary, values)
        if agg.skipped:  # non-server spans, tombstones: reported with the skipped lines
            self.skipped.update(agg.take_skipped())
        if rejects:
            src = topics.input_topic(logical)
            for k, rej in rejects:
                rec = dlq_record(src, part, run[k].offset, rej.reason, values[k], rej.detail)
                events.append((where[k], _DLQ, (self.t_dlq, src.encode(), canonical_json(rec))))
        if agg.pending >= self.flush_every:
            events.append((where[-1], _FLUSH, agg.flush(wire=False)))

    def _spans(self, env: Envelope) -> list[tuple[str, bytes, bytes]]:
        from gatewatch.processors.quality import SpanCycle
        from gatewatch.streams.stages.trajectories import record_outputs
        part = env.partition
        cycle = self.cycles.get(part)
        if cycle is None:
            if self.quality_policy is None:
                from gatewatch.streams.runtime.policy_files import (
                    load_quality_policy as load_policy,
                )
                self.quality_policy = load_policy(None)
            cycle = self.cycles[part] = SpanCycle(self.quality_policy)
        raw = None if env.payload is None else env.payload.encode()
        _events, _reason, outs = record_outputs(cycle, topics.topic("spans"), part, env.offset, raw)
        out = []
        for topic, k, v in outs:
            out.append((topic, k, v))
            if topic == self.t_signals:
                out.extend(self._decide(v))
        return out

    def _decide(self, signal_value: bytes) -> list[tuple[str, bytes, bytes]]:
        try:
            actions, gates, attestations = self.decide.on_record(orjson.loads(signal_value))
        except (KeyError, TypeError, ValueError):  # the decide stage skips these too
            self.skipped["undecidable_signal"] += 1
            self.decide.take_shadow()
            return []
        return decision_outputs(actions, gates, self.t_actions, self.t_gates, attestations, self.t_attestations) + \
            shadow_outputs(*self.decide.take_shadow(), self.t_shadow)

    def _flush(self, agg: InputAggregator, caught_up: bool = False) -> list[tuple[str, bytes, bytes]]:
        partial = agg.flush(caught_up, wire=False)
        if partial is None and caught_up:  # nothing pending: say where the source ends
            partial = agg.progress(self.ends.get((agg.topic, agg.partition), 0), True)
        return [] if partial is None else self._publish(partial)

    def _publish(self, partial: dict) -> list[tuple[str, bytes, bytes]]:
        """A partial's outputs: what the signals task emits on it, and decide on those."""
        out = []
        for topic, k, v in signal_outputs(self.task, partial, self.t_signals):
            out.append((topic, k, v))
            out.extend(self._decide(v))
        for src, part, offset, detail in late_records(self.task):
            rec = dlq_record(src, part, offset, "late_at_merge", None, detail)
            out.append((self.t_dlq, src.encode(), canonical_json(rec)))
        return out

    def finish(self) -> list[tuple[str, bytes, bytes]]:
        """End of input: every source is read to its end (caught up), as streaming ends."""
        out = []
        for key in sorted(self.aggs):
            out.extend(self._flush(self.aggs[key], caught_up=True))
        return out


def feed_files(rp: Replayer, paths: Iterable[str], bad: Counter) -> Iterator[list[tuple[str, bytes, bytes]]]:
    """rp's outputs for the kcat -J files, chunk by chunk, then its finish(): what `gatewatch
    replay` prints and `policy shadow` compares. Unreadable lines are counted in `bad`."""
    for path in paths:
        with open(path, "rb") as f:
            for chunk in envelope_batches(f, bad, 4096):
                if chunk:
                    yield rp.feed_many(chunk)
    yield rp.finish()


_OFFSET, _TS, _PAYLOAD, _B64 = (attrgetter(f) for f in ("offset", "ts", "payload", "payload_b64"))
_WHERE = attrgetter("topic", "partition")
_UNKNOWN = object()
_DLQ, _FLUSH, _SPAN = 0, 1, 2  # event kinds; at one position a DLQ line comes before its run's flush
_POSITION = itemgetter(0, 1)
_FIRST = itemgetter(0)


def _by_partition(envs: list[Envelope]) -> dict[tuple, tuple[list[Envelope], list[int]]]:
    """(topic, partition) -> its envelopes and their positions in envs, in order. Runs of one
    partition (as a consumer's fetches return them) are cut in C; partitions that interleave
    record by record (a sample of the head says which) are gathered one by one, cheaper then."""
    parts: dict[tuple, tuple[list[Envelope], list[int]]] = {}
    head = list(map(_WHERE, islice(envs, 64)))
    if sum(map(ne, head, head[1:])) > 4:
        positions: dict[tuple, list[int]] = {}
        for pos, where in enumerate(map(_WHERE, envs)):
            got = positions.get(where)
            if got is None:
                got = positions[where] = []
            got.append(pos)
        return {where: (list(map(envs.__getitem__, ps)), ps) for where, ps in positions.items()}
    pos = 0
    for where, group in groupby(envs, _WHERE):
        run = list(group)
        got = parts.get(where)
        if got is None:
            parts[where] = (run, list(range(pos, pos + len(run))))
        else:
            got[0].extend(run)
            got[1].extend(range(pos, pos + len(run)))
        pos += len(run)
    return parts


def _add_run(agg: InputAggregator, run: list[Envelope], binary: bool | None = None,
             values: list | None = None) -> tuple[list, Sequence[bytes | None]]:
    """agg.add_batch over consecutive envelopes of one partition: (its rejections, the record
    values as bytes). Columns are built in C where they can be: the metrics fast path decodes the
    payload strings as they are (msgspec takes str), and reads the keys, offsets and bytes of only
    the records it hands to add(). `binary`: whether a value comes in base64 (found when None);
    `values`: the records' values as bytes, when the caller has them already."""
    n = len(run)
    kafka_ts = list(map(_TS, run))
    if kafka_ts.count(None) or min(kafka_ts) <= 0:  # the record timestamp, when it has one
        kafka_ts = [t if t is not None and t > 0 else None for t in kafka_ts]
    if binary is None:
        binary = list(map(_B64, run)).count(None) != n
    if agg.fast_path and not binary:
        raw = LazyColumn(run, _value)
        return agg.add_batch(LazyColumn(run, _OFFSET), LazyColumn(run, _key), list(map(_PAYLOAD, run)),
                             kafka_ts, raw), raw
    if values is None:
        values = [_value(e) for e in run]
    return agg.add_batch([e.offset for e in run], [_key(e) for e in run], values, kafka_ts), values


def _key(env: Envelope) -> bytes | None:
    return None if env.key is None else env.key.encode()


def output_line(topic: str, key: bytes, value: bytes) -> bytes:
    return orjson.dumps({"topic": topic, "key": key.decode(), "value": orjson.Fragment(value)}) + b"\n"
