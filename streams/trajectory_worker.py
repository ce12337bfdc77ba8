"""The trajectory worker: gw.spans -> processors.quality.SpanCycle -> gw.trajectories (+ gw.dlq).

A confluent-kafka batch consumer. Per batch: decode + validate + link + score every record in
offset order (the same SpanCycle.process call as `gatewatch quality simulate`) and produce the
events (key = tenant) and the DLQ records (key = source topic). At most every --snapshot-interval
seconds, when idle, on revocation and on a graceful stop: flush, then snapshot, then commit.

How state survives a restart (including SIGKILL):
- The snapshot file (--state) holds the processor state (SpanCycle.to_state(): open trajectories,
  meters, guardrail counters) and, per partition, the next offset to apply. It is written atomically
  (temp file, fsync, rename) only after every event produced so far was acknowledged by the broker.
- On (re)assignment the consumer seeks every partition to the snapshot's next offset, or to the
  beginning when the snapshot does not know it: the snapshot, not the committed group offset, is
  the source of truth (committed offsets are for lag monitoring). Records below the next offset are
  skipped, so nothing is applied twice.
- A kill between produce and snapshot re-applies those records from the previous snapshot: the cycle
  is deterministic, so it re-emits the identical events (same content ids); consumers dedupe by id.
  Nothing is lost, nothing changes.
- Assumes each tenant's spans are on one partition (gw.spans is keyed by tenant) and that the
  state file belongs to this worker's partitions (one worker per group, or a static assignment).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition
from prometheus_client import Counter, Gauge, Histogram

from processors.quality import CyclePolicy, SpanCycle
from processors.spans import dlq_record
from streams import kafka, topics
from streams.errors import GatewatchError
from streams.ops import OpsServer, log_event

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


def load_snapshot(path: Path, policy: CyclePolicy, topic: str) -> tuple[SpanCycle, dict[int, int]]:
    if not path.exists():
        return SpanCycle(policy), {}
    try:
        doc = orjson.loads(path.read_bytes())
        if doc.get("topic") != topic:
            raise ValueError(f"it belongs to topic {doc.get('topic')!r}, not {topic!r}")
        cycle = SpanCycle.from_state(policy, doc["cycle"])
    except (OSError, orjson.JSONDecodeError, KeyError, ValueError) as e:
        raise GatewatchError(f"state {path}: {e} (move it away to start over from the beginning)") from None
    return cycle, {int(p): int(o) for p, o in doc.get("offsets", {}).items()}


def write_snapshot(path: Path, cycle: SpanCycle, offsets: dict[int, int], topic: str) -> None:
    """Atomic: a crash leaves either the old or the new snapshot, never a torn one."""
    data = orjson.dumps({"version": 1, "topic": topic, "offsets": {str(p): o for p, o in sorted(offsets.items())},
                         "cycle": cycle.to_state()})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _totals(cycle: SpanCycle) -> dict:
    t = {"linked": 0, "excepted": 0, "late": 0, "disabled": 0, "timeout": 0, "window": 0, "rule": 0}
    shed: dict[str, int] = {}
    for st in cycle.stats.values():
        for k in ("linked", "excepted", "late", "disabled"):
            t[k] += st[k]
        for r, n in st["closed"].items():
            t[r] += n
        for typ, n in st["shed"].items():
            shed[typ] = shed.get(typ, 0) + n
    t["shed"] = shed
    return t


class TrajectoryWorker:
    def __init__(self, bootstrap: str, policy: CyclePolicy, state_path: str | Path,
                 group: str = "gatewatch-trajectories", metrics_port: int | None = None,
                 exit_when_idle: float | None = None, batch_size: int = 2000, poll_timeout: float = 0.5,
                 snapshot_interval: float = 1.0):
        self.bootstrap, self.policy, self.group = bootstrap, policy, group
        self.state_path = Path(state_path)
        self.metrics_port, self.exit_when_idle = metrics_port, exit_when_idle
        self.batch_size, self.poll_timeout, self.snapshot_interval = batch_size, poll_timeout, snapshot_interval
        self._pending = False          # records applied since the last snapshot
        self.spans_topic, self.out_topic, self.dlq_topic = topics.topic("spans"), topics.topic("trajectories"), \
            topics.topic("dlq")
        self.stop_event = threading.Event()
        self.assigned = False
        self.cycle, self.offsets = load_snapshot(self.state_path, policy, self.spans_topic)
        self._last_totals = _totals(self.cycle)
        self._delivery_error: str | None = None

    # -- kafka callbacks
    def _on_assign(self, consumer, partitions):
        for tp in partitions:
            tp.offset = self.offsets.get(tp.partition, OFFSET_BEGINNING)
        consumer.assign(partitions)
        self.assigned = True
        self._last_activity = time.monotonic()
        log_event(log, "assigned", partitions={tp.partition: tp.offset for tp in partitions})

    def _idle_limit(self) -> float:
        # Before the first assignment the group join itself can take seconds (tansu: ~session/2).
        return self.exit_when_idle if self.assigned else max(self.exit_when_idle, 30.0)

    def _on_delivery(self, err, msg):
        if err is not None and self._delivery_error is None:
            self._delivery_error = f"{msg.topic()}: {err.str()}"

    # -- main loop
    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self.stop_event.set())
        ops = OpsServer(self.metrics_port, ready=lambda: self.assigned).start() \
            if self.metrics_port is not None else None
        consumer = kafka.consumer(self.bootstrap, self.group)
        self.producer = producer = kafka.producer(self.bootstrap)
        consumer.subscribe([self.spans_topic], on_assign=self._on_assign,
                           on_revoke=lambda c, parts: self._checkpoint(c))
        self._last_activity = self._last_checkpoint = time.monotonic()
        log_event(log, "started", topic=self.spans_topic, state=str(self.state_path),
                  policy_hash=self.policy.policy_hash(), resume=self.offsets)
        clean = False
        try:
            while not self.stop_event.is_set():
                msgs = consumer.consume(self.batch_size, self.poll_timeout)
                if msgs:
                    self._batch(msgs, producer)
                    if time.monotonic() - self._last_checkpoint >= self.snapshot_interval:
                        self._checkpoint(consumer)
                    continue
                self._checkpoint(consumer)  # idle: make the work so far durable
                if self.exit_when_idle is not None and \
                        time.monotonic() - self._last_activity >= self._idle_limit():
                    log_event(log, "idle, exiting", idle_s=self.exit_when_idle)
                    break
            clean = True
        finally:
            if clean:
                self._checkpoint(consumer)
            else:
                self._pending = False  # after a failure, close() must not snapshot from its revoke callback
            producer.flush(10)
            consumer.close()
            if ops:
                ops.stop()
            log_event(log, "stopped", offsets=self.offsets)

    def _batch(self, msgs, producer) -> None:
        """Apply records in offset order and hand their events to the producer (not yet durable)."""
        self._last_activity = time.monotonic()
        cycle = self.cycle
        scores, candidates = [], 0
        for m in msgs:
            if m.error():
                if m.error().code() != KafkaError._PARTITION_EOF:
                    log_event(log, "consume error", logging.WARNING, error=m.error().str())
                continue
            p, off = m.partition(), m.offset()
            if off < self.offsets.get(p, 0):
                continue  # applied before the last snapshot
            raw = m.value()
            events, reason = cycle.process(raw if raw is not None else b"")
            for ev in events:
                self._produce(producer, self.out_topic, ev["tenant"].encode(), orjson.dumps(ev))
                if ev["type"] == "trajectory_quality":
                    scores.append(ev["score"])
                elif ev["type"] == "diamond_candidate":
                    candidates += 1
            if reason:
                rec = dlq_record(m.topic(), p, off, reason, raw)
                self._produce(producer, self.dlq_topic, m.topic().encode(), orjson.dumps(rec))
                if reason != "late":
                    SPANS.labels("rejected").inc()
            self.offsets[p] = off + 1
            self._pending = True
        self._metrics(scores, candidates)

    def _checkpoint(self, consumer) -> None:
        """Flush (every event acknowledged), then snapshot state + offsets, then commit offsets.

        Only after the flush may the snapshot claim those records as applied; a crash before the
        snapshot re-applies them from the previous one and re-emits the identical events."""
        if not self._pending:
            return
        remaining = self.producer.flush(30)
        if remaining or self._delivery_error:
            # Not acknowledged: no snapshot; stop so a restart re-applies from the last snapshot.
            raise GatewatchError(f"publishing failed ({self._delivery_error or f'{remaining} undelivered'})")
        write_snapshot(self.state_path, self.cycle, self.offsets, self.spans_topic)
        self._pending = False
        self._last_checkpoint = time.monotonic()
        try:
            consumer.commit(offsets=[TopicPartition(self.spans_topic, p, o) for p, o in self.offsets.items()],
                            asynchronous=True)
        except Exception as e:  # noqa: BLE001 - a failed commit only delays lag reporting
            log_event(log, "commit failed", logging.WARNING, error=str(e))

    def _produce(self, producer, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                producer.produce(topic, key=key, value=value, on_delivery=self._on_delivery)
                return
            except BufferError:
                producer.poll(0.1)

    def _metrics(self, scores: list[float], candidates: int) -> None:
        now = _totals(self.cycle)
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
        ACTIVE.set(self.cycle.linker.active())
        for tenant, meter in self.cycle.meters.items():
            SHARE.labels(tenant).set(meter.share)
            for q in (0.5, 0.95, 0.99):
                v = meter.quantile(q)
                if v is not None:
                    QUANTILE.labels(tenant, f"p{int(q * 100)}").set(v)
