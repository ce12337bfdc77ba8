"""`gatewatch replay`: the streaming path's processors over kcat -J NDJSON files, no broker.

Each input line is a kcat envelope {"topic","partition","offset","ts","key","payload"} (payload =
the record value as a string, null for a tombstone; a binary value such as an otlp_proto record
may come as "payload_b64" instead). The OTLP traces topic (GATEWATCH_OTLP_TOPIC, default
`otlp_spans`) is an input too (streams.ingest). Records run through exactly the functions
the workers run — PartitionAggregator (ingest), signal_outputs (signal stage), DecisionState +
action_outputs (decide), record_outputs (trajectory worker, for gw.spans) — and every record the
streaming path would publish comes out as one NDJSON line {"topic","key","value"}.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, Iterator

import orjson

from processors.canonical import canonical_json
from processors.dlq import dlq_record
from processors.inputs import InputOptions
from processors.otlp import OTLP_TOPIC, InputAggregator
from processors.policy.engine import Engine
from processors.signals import PartitionSignals
from processors.windows import SignalConfig
from streams import topics
from streams.decide import DecisionState, action_outputs
from streams.ingest import INPUTS, otlp_topic_name
from streams.signal_stage import signal_outputs


def logical_name(full: str, prefix: str) -> str | None:
    if full.startswith(prefix) and full[len(prefix):] in topics.BY_NAME:
        return full[len(prefix):]
    tail = full.rsplit(".", 1)[-1]
    return tail if tail in topics.BY_NAME else None


class Replayer:
    def __init__(self, policy, signer=None, flush_every: int = 1000, quality_policy=None,
                 inputs: InputOptions | None = None):
        self.config = SignalConfig.from_policy(policy.doc, policy.hash)
        self.options = inputs or InputOptions.from_policy(policy.doc)
        self.otlp_topic = otlp_topic_name()  # the Collector's traces topic (not prefixed)
        self.flush_every = flush_every
        self.prefix = topics.prefix()
        self.t_signals, self.t_actions, self.t_dlq = (topics.topic(n) for n in ("signals", "actions", "dlq"))
        self.aggs: dict[tuple[str, int], InputAggregator] = {}
        self.sigs: dict[str, PartitionSignals] = {}
        # decide is partitioned by scope in streaming; one state over all scopes gives the same
        # per-scope results because the engine keeps scopes apart.
        self.decide = DecisionState(Engine(policy, signer))
        self.quality_policy = quality_policy
        self.cycles: dict[int, object] = {}  # gw.spans partition -> SpanCycle
        self.skipped = Counter()

    def feed(self, env: dict) -> list[tuple[str, bytes, bytes]]:
        return self.feed_many([env])

    def feed_many(self, envs: list[dict]) -> list[tuple[str, bytes, bytes]]:
        """Outputs of these envelopes, in order: the same lines as feeding them one by one.
        Consecutive records of one input partition go to PartitionAggregator.add_batch together,
        cut where the aggregator reaches flush_every (so flushes fall on the same records)."""
        out: list[tuple[str, bytes, bytes]] = []
        i, n = 0, len(envs)
        while i < n:
            env = envs[i]
            full = str(env.get("topic", ""))
            logical = OTLP_TOPIC if full == self.otlp_topic else logical_name(full, self.prefix)
            if logical == "spans":
                out.extend(self._spans(env))
                i += 1
                continue
            if logical not in INPUTS and logical != OTLP_TOPIC:
                self.skipped[f"topic:{env.get('topic')}"] += 1
                i += 1
                continue
            part = int(env["partition"])
            agg = self.aggs.get((logical, part))
            if agg is None:
                agg = self.aggs[(logical, part)] = InputAggregator(logical, part, self.config, self.options)
            j, room = i + 1, self.flush_every - agg.pending
            while j < n and j - i < room and envs[j].get("topic") == env.get("topic") \
                    and envs[j].get("partition") == env.get("partition"):
                j += 1
            run = envs[i:j]
            offsets = [int(e["offset"]) for e in run]
            values = [_value(e) for e in run]
            rejects = agg.add_batch(offsets, [None if e.get("key") is None else str(e["key"]).encode() for e in run],
                                    values, [_record_ts(e) for e in run])
            if agg.skipped:  # non-server spans, tombstones: reported with the skipped lines
                self.skipped.update(agg.take_skipped())
            if rejects:
                src = self.otlp_topic if logical == OTLP_TOPIC else topics.topic(logical)
                for k, rej in rejects:
                    rec = dlq_record(src, part, offsets[k], rej.reason, values[k], rej.detail)
                    out.append((self.t_dlq, src.encode(), canonical_json(rec)))
            if agg.pending >= self.flush_every:
                out.extend(self._flush(agg))
            i = j
        return out

    def _spans(self, env: dict) -> list[tuple[str, bytes, bytes]]:
        from processors.quality import SpanCycle
        from streams.trajectory_worker import record_outputs
        part = int(env["partition"])
        cycle = self.cycles.get(part)
        if cycle is None:
            if self.quality_policy is None:
                from streams.cmd_quality import load_policy
                self.quality_policy = load_policy(None)
            cycle = self.cycles[part] = SpanCycle(self.quality_policy)
        payload = env.get("payload")
        raw = None if payload is None else str(payload).encode()
        _events, _reason, outs = record_outputs(cycle, topics.topic("spans"), part, int(env["offset"]), raw)
        out = []
        for topic, k, v in outs:
            out.append((topic, k, v))
            if topic == self.t_signals:
                out.extend(self._decide(v))
        return out

    def _decide(self, signal_value: bytes) -> list[tuple[str, bytes, bytes]]:
        try:
            actions = self.decide.on_record(orjson.loads(signal_value))
        except (KeyError, TypeError, ValueError):  # the decide stage skips these too
            self.skipped["undecidable_signal"] += 1
            return []
        return action_outputs(actions, self.t_actions)

    def _flush(self, agg: InputAggregator) -> list[tuple[str, bytes, bytes]]:
        partial = agg.flush()
        if partial is None:
            return []
        src = f"{agg.topic}:{agg.partition}"
        ps = self.sigs.get(src)
        if ps is None:
            ps = self.sigs[src] = PartitionSignals(agg.topic, agg.partition, self.config)
        out = []
        for topic, k, v in signal_outputs(ps, partial, self.t_signals):
            out.append((topic, k, v))
            out.extend(self._decide(v))
        return out

    def finish(self) -> list[tuple[str, bytes, bytes]]:
        out = []
        for key in sorted(self.aggs):
            out.extend(self._flush(self.aggs[key]))
        return out


def _record_ts(env: dict) -> int | None:
    ts = env.get("ts")  # kcat: the record timestamp in ms (-1 or absent: none)
    return ts if type(ts) is int and ts >= 0 else None


def _value(env: dict) -> bytes | None:
    if env.get("payload_b64") is not None:  # binary values (otlp_proto): base64 in the envelope
        import base64
        return base64.b64decode(env["payload_b64"])
    payload = env.get("payload")
    return None if payload is None else str(payload).encode()


def read_envelopes(lines: Iterable[bytes], bad: Counter) -> Iterator[dict]:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            env = orjson.loads(line)
            if not isinstance(env, dict) or "partition" not in env or "offset" not in env:
                raise ValueError("not a kcat -J envelope")
            int(env["partition"]), int(env["offset"])
        except (orjson.JSONDecodeError, ValueError, TypeError):
            bad["bad_envelope"] += 1
            continue
        yield env


def output_line(topic: str, key: bytes, value: bytes) -> bytes:
    return orjson.dumps({"topic": topic, "key": key.decode(), "value": orjson.Fragment(value)}) + b"\n"
