"""The trajectory stage: gw.spans -> gatewatch.processors.quality.SpanCycle -> gw.trajectories (+ gw.dlq).

It runs on the worker skeleton (streams.runtime.worker) in a consumer group. Per batch: decode + validate + link + score every record in
offset order (the same SpanCycle.process call as `gatewatch quality simulate`) and produce the
events (key = tenant), the DLQ records (key = source topic) and the trajectory_quality_* signal
batches (gw.signals, key = tenant as scope, domain "trajectories", source "spans:<partition>"). Every --snapshot-interval seconds,
when idle, before partitions are revoked and on a graceful stop: flush, then snapshot, then commit.

State is per partition: one SpanCycle per assigned partition of gw.spans. gw.spans is keyed by
tenant and all cycle state is per tenant, so this equals one cycle over the whole stream (what
`quality simulate` runs) while letting partitions move between workers.

How state survives a restart (including SIGKILL) and a rebalance:
- The state directory (--state) holds one snapshot per partition, `<topic>.<partition>.json`:
  the partition's SpanCycle.to_state() (open trajectories, meters, guardrail counters) and the next
  offset to apply. Written atomically (temp file, fsync, rename, directory fsync) and only after
  every event produced so far was acknowledged by the broker.
- On assignment each partition is positioned at its snapshot's next offset, or at the beginning when
  there is no snapshot: the snapshot, not the committed group offset, is the source of truth
  (committed offsets serve lag monitoring). Records below the next offset are skipped.
- On revocation the worker checkpoints, then forgets the partition: the next owner (sharing the
  directory) resumes from that snapshot. Eager rebalancing revokes everywhere before assigning.
- A kill between produce and snapshot re-applies those records from the previous snapshot: the cycle
  is deterministic, so it re-emits the identical events (same content ids); consumers dedupe by id.
  Nothing is lost, nothing changes.
"""
from __future__ import annotations

import logging
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from gatewatch.processors.quality import CyclePolicy, SpanCycle
from gatewatch.processors.signal_merge import wire_records
from gatewatch.processors.spans import dlq_record
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.logs import log_event
from gatewatch.streams.runtime.statefiles import write_json_atomic
from gatewatch.streams.runtime.worker import Stage

log = logging.getLogger("gatewatch.trajectories")

SPANS = Counter("gatewatch_trajectory_spans_total", "Spans consumed, by outcome",
                ["outcome"])  # linked | excepted | late | rejected | disabled
ACTIVE = Gauge("gatewatch_trajectories_active", "Open trajectories")
CLOSED = Counter("gatewatch_trajectories_closed_total", "Closed trajectories, by reason", ["reason"])
SCORES = Histogram("gatewatch_trajectory_quality_score", "Quality scores of closed trajectories",
                   buckets=(10, 20, 30, 40, 50, 60, 70, 80, 90, 100))
CANDIDATES = Counter("gatewatch_diamond_candidates_total", "diamond_candidate events emitted")
SHARE = Gauge("gatewatch_diamond_candidate_share", "Candidates / scored trajectories, per tenant", ["tenant"])
QUANTILE = Gauge("gatewatch_trajectory_quality_quantile", "Current quality score quantile, per tenant",
                 ["tenant", "quantile"])
SHED = Counter("gatewatch_derived_shed_total", "Derived events shed by the guardrail, by type", ["type"])


def snapshot_path(state_dir: Path, topic: str, partition: int) -> Path:
    return state_dir / f"{topic}.{partition}.json"


def load_snapshot(path: Path, policy: CyclePolicy, topic: str, partition: int,
                  allow_policy_change: bool = False) -> tuple[SpanCycle, int | None]:
    """(cycle, next offset) from a partition snapshot; (new cycle, None) when there is none."""
    if not path.exists():
        return SpanCycle(policy), None
    try:
        doc = orjson.loads(path.read_bytes())
        if (doc.get("topic"), doc.get("partition")) != (topic, partition):
            raise ValueError(f"it belongs to {doc.get('topic')!r} partition {doc.get('partition')!r}")
        cycle = SpanCycle.from_state(policy, doc["cycle"], allow_policy_change)
        if doc["cycle"].get("policy_hash") != policy.policy_hash():
            log_event(log, "policy changed since the snapshot", logging.WARNING, partition=partition,
                      was=doc["cycle"].get("policy_hash"), now=policy.policy_hash())
        return cycle, int(doc["next_offset"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        hint = "; --allow-policy-change carries the state over" if "policy hash" in str(e) else ""
        raise GatewatchError(f"state {path}: {e} (move it away to start that partition over{hint})") from None


def write_snapshot(path: Path, cycle: SpanCycle, topic: str, partition: int, next_offset: int) -> None:
    """Atomic: a crash leaves either the old or the new snapshot, never a torn one."""
    write_json_atomic(path, {"version": 1, "topic": topic, "partition": partition, "next_offset": next_offset,
                             "cycle": cycle.to_state()})


def record_outputs(cycle: SpanCycle, topic: str, partition: int, offset: int, raw: bytes | None):
    """One gw.spans record through its partition's cycle -> (events, reject reason, outputs), where
    outputs = every (topic, key, value) the worker publishes for it, in order: trajectory events
    (key tenant), signal records (key scope) and the DLQ record (key source topic). Also what an
    offline replay of gw.spans should print."""
    events, reason = cycle.process(raw if raw is not None else b"")
    out = [(topics.topic("trajectories"), ev["tenant"].encode(), orjson.dumps(ev)) for ev in events]
    signals = topics.topic("signals")
    for batch in cycle.take_signals():
        out.extend((signals, key, value) for key, value in
                   wire_records(batch, "trajectories", f"spans:{partition}"))
    if reason:
        out.append((topics.topic("dlq"), topic.encode(), orjson.dumps(dlq_record(topic, partition, offset, reason, raw))))
    return events, reason, out


def _totals(cycles) -> dict:
    t = {"linked": 0, "excepted": 0, "late": 0, "disabled": 0, "timeout": 0, "window": 0, "rule": 0}
    shed: dict[str, int] = {}
    for cycle in cycles:
        for st in cycle.stats.values():
            for k in ("linked", "excepted", "late", "disabled"):
                t[k] += st[k]
            for r, n in st["closed"].items():
                t[r] += n
            for typ, n in st["shed"].items():
                shed[typ] = shed.get(typ, 0) + n
    t["shed"] = shed
    return t


class TrajectoryStage(Stage):
    """gw.spans in group mode; one SpanCycle per partition, its snapshot the truth (module docstring)."""
    name = "trajectories"
    poll_timeout_s = 0.5

    def __init__(self, policy: CyclePolicy, state_dir: str | Path, group: str | None = None,
                 batch_size: int = 2000, snapshot_interval: float = 1.0, allow_policy_change: bool = False):
        self.policy, self.group, self.batch_size = policy, group or topics.group_id("trajectories"), batch_size
        self.checkpoint_interval_s = snapshot_interval
        self.state_dir = Path(state_dir)
        if self.state_dir.exists() and not self.state_dir.is_dir():
            raise GatewatchError(f"state {self.state_dir}: not a directory")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.spans_topic = topics.topic("spans")
        self.cycles: dict[int, SpanCycle] = {}     # assigned partition -> its cycle
        self.offsets: dict[int, int] = {}          # assigned partition -> next offset to apply
        self._dirty: set[int] = set()              # partitions applied to since their last snapshot
        self._last_totals = _totals(())
        self.allow_policy_change = allow_policy_change

    def input_topics(self, worker) -> list[str]:
        log_event(log, "started", topic=self.spans_topic, state=str(self.state_dir),
                  policy_hash=self.policy.policy_hash())
        return [self.spans_topic]

    def on_assign(self, worker, tps):
        placed = []
        for tp in tps:
            cycle, nxt = load_snapshot(snapshot_path(self.state_dir, tp.topic, tp.partition), self.policy,
                                       tp.topic, tp.partition, self.allow_policy_change)
            self.cycles[tp.partition] = cycle
            self.offsets[tp.partition] = nxt or 0
            placed.append(TopicPartition(tp.topic, tp.partition, nxt if nxt is not None else OFFSET_BEGINNING))
        self._last_totals = _totals(self.cycles.values())  # restored stats are not this process's work
        return placed

    def on_revoke(self, worker, tps) -> None:
        for tp in tps:
            self.cycles.pop(tp.partition, None)
            self.offsets.pop(tp.partition, None)
            self._dirty.discard(tp.partition)
        self._last_totals = _totals(self.cycles.values())

    def process(self, worker, msgs) -> None:
        """Apply records in offset order and hand their events to the producer (not yet durable)."""
        scores, candidates = [], 0
        for m in msgs:
            p, off = m.partition(), m.offset()
            cycle = self.cycles.get(p)
            if cycle is None or off < self.offsets[p]:
                continue  # not ours any more, or applied before the last snapshot
            events, reason, outputs = record_outputs(cycle, m.topic(), p, off, m.value())
            for topic, key, value in outputs:
                worker.produce(topic, key, value)
            for ev in events:
                if ev["type"] == "trajectory_quality":
                    scores.append(ev["score"])
                elif ev["type"] == "diamond_candidate":
                    candidates += 1
            if reason and reason != "late":
                SPANS.labels("rejected").inc()
            self.offsets[p] = off + 1
            self._dirty.add(p)
        self._metrics(scores, candidates)

    def checkpoint(self, worker) -> list[TopicPartition]:
        """Every event acknowledged (the worker flushed), then snapshot the dirty partitions: only
        then may a snapshot claim its records as applied; a crash before it re-applies them from the
        previous one and re-emits the identical events."""
        done = sorted(self._dirty)
        for p in done:
            write_snapshot(snapshot_path(self.state_dir, self.spans_topic, p), self.cycles[p],
                           self.spans_topic, p, self.offsets[p])
        self._dirty.clear()
        return [TopicPartition(self.spans_topic, p, self.offsets[p]) for p in done]

    def close(self, worker) -> None:
        log_event(log, "stopped", offsets=self.offsets)

    def _metrics(self, scores: list[float], candidates: int) -> None:
        now = _totals(self.cycles.values())
        last = self._last_totals
        for k in ("linked", "excepted", "late", "disabled"):
            if now[k] > last[k]:
                SPANS.labels(k).inc(now[k] - last[k])
        for r in ("timeout", "window", "rule"):
            if now[r] > last[r]:
                CLOSED.labels(r).inc(now[r] - last[r])
        for typ, n in now["shed"].items():
            if n > last["shed"].get(typ, 0):
                SHED.labels(typ).inc(n - last["shed"].get(typ, 0))
        self._last_totals = now
        for s in scores:
            SCORES.observe(s)
        if candidates:
            CANDIDATES.inc(candidates)
        ACTIVE.set(sum(c.linker.active() for c in self.cycles.values()))
        for cycle in self.cycles.values():
            for tenant, meter in cycle.meters.items():
                SHARE.labels(tenant).set(meter.share)
                for q in (0.5, 0.95, 0.99):
                    v = meter.quantile(q)
                    if v is not None:
                        QUANTILE.labels(tenant, f"p{int(q * 100)}").set(v)
