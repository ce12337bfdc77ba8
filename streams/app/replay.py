"""`gatewatch replay`: the streaming path's processors over kcat -J NDJSON files, no broker.

Each input line is a kcat envelope {"topic","partition","offset","ts","key","payload"} (payload =
the record value as a string, null for a tombstone; a binary value such as an otlp_proto record
may come as "payload_b64" instead). The Collector's OTLP traces and metrics topics (GATEWATCH_OTLP_TOPIC,
default `otlp_spans`; GATEWATCH_OTLP_METRICS_TOPIC, default `otlp_metrics`) are inputs too (gatewatch.streams.stages.ingest). Records run through exactly the functions
the workers run — PartitionAggregator (ingest), signal_outputs (signal stage), DecisionState +
decision_outputs (decide), record_outputs (trajectory worker, for gw.spans) — and every record the
streaming path would publish comes out as one NDJSON line {"topic","key","value"}.
"""
from __future__ import annotations

from collections import Counter
from itertools import islice
from typing import Iterable, Iterator

import msgspec
import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.dlq import dlq_record
from gatewatch.processors.inputs import InputOptions
from gatewatch.processors.otlp import InputAggregator
from gatewatch.processors.policy.scoped import ScopedEngine
from gatewatch.processors.signals import SignalTask
from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.topics import INPUTS
from gatewatch.streams.stages.decide import DecisionState, decision_outputs, shadow_outputs
from gatewatch.streams.stages.signals import late_records, signal_outputs


class Envelope(msgspec.Struct, kw_only=True):
    """One kcat -J line. msgspec decodes the usual shape in C; other lines go through
    `envelope_from_dict` (a string partition, a non-string key...). Fields we do not read (tstype,
    broker, headers) are skipped unchecked: a line with invalid UTF-8 there still replays."""
    partition: int
    offset: int
    topic: str | None = None
    ts: int | None = None
    key: str | None = None
    payload: str | None = None
    payload_b64: str | None = None


_decode_envelope = msgspec.json.Decoder(Envelope).decode


def envelope_from_dict(d: dict) -> Envelope:
    """The envelope of a decoded kcat -J object; ValueError/TypeError when it is not one."""
    if not isinstance(d, dict) or "partition" not in d or "offset" not in d:
        raise ValueError("not a kcat -J envelope")
    ts, key, payload, b64 = d.get("ts"), d.get("key"), d.get("payload"), d.get("payload_b64")
    topic = d.get("topic")
    return Envelope(partition=int(d["partition"]), offset=int(d["offset"]), topic=None if topic is None else str(topic),
                    ts=ts if type(ts) is int else None, key=None if key is None else str(key),
                    payload=None if payload is None else str(payload), payload_b64=None if b64 is None else str(b64))


def logical_name(full: str, prefix: str) -> str | None:
    if full.startswith(prefix) and full[len(prefix):] in topics.BY_NAME:
        return full[len(prefix):]
    tail = full.rsplit(".", 1)[-1]
    return tail if tail in topics.BY_NAME else None


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

    def feed(self, env: dict | Envelope) -> list[tuple[str, bytes, bytes]]:
        return self.feed_many([env if type(env) is Envelope else envelope_from_dict(env)])

    def feed_many(self, envs: list[Envelope]) -> list[tuple[str, bytes, bytes]]:
        """Outputs of these envelopes, in order: the same lines as feeding them one by one.
        Consecutive records of one input partition go to PartitionAggregator.add_batch together,
        cut where the aggregator reaches flush_every (so flushes fall on the same records)."""
        out: list[tuple[str, bytes, bytes]] = []
        i, n = 0, len(envs)
        while i < n:
            env = envs[i]
            full = env.topic or ""
            logical = self.collector.get(full) or logical_name(full, self.prefix)
            if logical == "spans":
                out.extend(self._spans(env))
                i += 1
                continue
            if logical not in INPUTS and logical not in topics.COLLECTOR:
                self.skipped[f"topic:{env.topic}"] += 1
                i += 1
                continue
            part = env.partition
            agg = self.aggs.get((logical, part))
            if agg is None:
                agg = self.aggs[(logical, part)] = InputAggregator(logical, part, self.config, self.options)
            nxt = self.ends.get((logical, part), 0)
            if env.offset < nxt:  # a partition's offsets only grow: a second file of it restarting at 0?
                self.skipped["offset_behind"] += 1
                i += 1
                continue
            j, end = i + 1, min(n, i + self.flush_every - agg.pending)
            while j < end and envs[j].topic == env.topic and envs[j].partition == part \
                    and envs[j].offset > envs[j - 1].offset:
                j += 1
            run = envs[i:j]
            offsets = [e.offset for e in run]
            self.ends[(logical, part)] = offsets[-1] + 1
            values = [_value(e) for e in run]
            rejects = agg.add_batch(offsets, [None if e.key is None else e.key.encode() for e in run], values,
                                    [e.ts if e.ts is not None and e.ts > 0 else None for e in run])
            if agg.skipped:  # non-server spans, tombstones: reported with the skipped lines
                self.skipped.update(agg.take_skipped())
            if rejects:
                src = topics.input_topic(logical)
                for k, rej in rejects:
                    rec = dlq_record(src, part, offsets[k], rej.reason, values[k], rej.detail)
                    out.append((self.t_dlq, src.encode(), canonical_json(rec)))
            if agg.pending >= self.flush_every:
                out.extend(self._flush(agg))
            i = j
        return out

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
        partial = agg.flush(caught_up)
        if partial is None and caught_up:  # nothing pending: say where the source ends
            partial = agg.progress(self.ends[(agg.topic, agg.partition)], True)
        if partial is None:
            return []
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
            envs = read_envelopes(f, bad)
            while chunk := list(islice(envs, 4096)):
                yield rp.feed_many(chunk)
    yield rp.finish()


def _value(env: Envelope) -> bytes | None:
    if env.payload_b64 is not None:  # binary values (otlp_proto): base64 in the envelope
        import base64
        return base64.b64decode(env.payload_b64)
    return None if env.payload is None else env.payload.encode()


class _Where(msgspec.Struct):
    partition: int
    topic: str | None = None


_decode_where = msgspec.json.Decoder(_Where).decode


def sources_of(envs: Iterable) -> list[str]:
    """The input partitions ("metrics:0", "otlp:1", ...) among these envelopes (anything with .topic
    and .partition): what the signals task waits for, as streaming waits for every partition of
    the input topics."""
    prefix, seen = topics.prefix(), set()
    collector = {t: lg for lg, t in topics.collector_topics().items()}
    for w in envs:
        full = w.topic or ""
        logical = collector.get(full) or logical_name(full, prefix)
        if logical in INPUTS or logical in topics.COLLECTOR:
            seen.add(f"{logical}:{w.partition}")
    return sorted(seen)


def scan_sources(paths: Iterable[str]) -> list[str]:
    """sources_of the kcat -J files' lines, reading only their topic and partition."""
    def wheres():
        for path in paths:
            with open(path, "rb") as f:
                for line in f:
                    try:
                        yield _decode_where(line)
                    except (msgspec.DecodeError, ValueError):
                        try:
                            yield envelope_from_dict(orjson.loads(line))
                        except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError, RecursionError):
                            continue
    return sources_of(wheres())


def read_envelopes(lines: Iterable[bytes], bad: Counter) -> Iterator[Envelope]:
    for line in lines:
        try:
            yield _decode_envelope(line)
            continue
        except (msgspec.DecodeError, ValueError, RecursionError):  # orjson and the checks below decide
            pass
        line = line.strip()
        if not line:
            continue
        try:
            yield envelope_from_dict(orjson.loads(line))
        except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError, RecursionError):
            bad["bad_envelope"] += 1


def output_line(topic: str, key: bytes, value: bytes) -> bytes:
    return orjson.dumps({"topic": topic, "key": key.decode(), "value": orjson.Fragment(value)}) + b"\n"
