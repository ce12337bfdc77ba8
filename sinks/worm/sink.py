"""The WORM sink runtime: consume actions, receipts and trajectory diamond candidates, append them
durably, then commit offsets; publish signed checkpoints; record witness cosignatures.
Admission (gatewatch.sinks.worm.admission): only an action with a valid permit by the decider key
and an id equal to its content hash, a receipt with a valid executor signature and content id, or
a content-addressed diamond candidate is appended; anything else goes to gw.dlq with the reason
and never occupies an id, so the genuine record arriving after a forged one is still appended.

Per batch (the worker skeleton, streams.runtime.worker): map records to entries (bad ones to
gw.dlq) -> one store transaction (group commit: one fsync per batch) -> flush the DLQ -> commit
the consumed offsets. A kill anywhere before the commit re-delivers the batch, and the
store's id key turns the re-delivery into a no-op, so each record is logged once.

Checkpoint message on gw.checkpoints (JSON, key = origin):
  {"kind": "log", "origin", "size", "note": <signed note text>,
   "proofs": {"<old size>": [base64 hash, ...], ...}}
``proofs`` holds a consistency proof to this size from the previous published
checkpoint and from the last size each known witness cosigned (the sink sees their
cosignatures on the same topic), so a witness that missed checkpoints, or a sink
that restarted, still gives every witness the one proof it needs.
Witnesses answer with {"kind": "cosigned", "witness", "origin", "size", "note"} where
note = the log's note plus the witness's signature line; the sink stores the ones whose
witness signature verifies and whose root matches its own log at that size.
"""
from __future__ import annotations

import base64
import logging
import time
from dataclasses import dataclass

import orjson
from prometheus_client import Counter, Gauge, Histogram

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.dlq import dlq_record
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.admission import check_record
from gatewatch.sinks.worm.store import (
    LOGGED_KINDS,
    Candidate,
    Rejected,
    WormStore,
    candidate_from_record,
)
from gatewatch.streams.runtime import kafka, topics
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.logs import log_event
from gatewatch.streams.runtime.worker import Stage

LOG = logging.getLogger("gatewatch.worm")

ENTRIES = Counter("gatewatch_worm_entries_appended_total", "Entries appended to the WORM log")
DUPLICATES = Counter("gatewatch_worm_duplicates_total", "Re-delivered records that appended nothing")
DLQ = Counter("gatewatch_worm_dlq_total", "Records sent to the DLQ", ["reason"])
TREE_SIZE = Gauge("gatewatch_worm_tree_size", "Merkle tree size (entries in the log)")
CHECKPOINT_AGE = Gauge("gatewatch_worm_checkpoint_age_seconds", "Seconds since the last published checkpoint")
CHECKPOINTS = Counter("gatewatch_worm_checkpoints_published_total", "Signed checkpoints published")
COSIGNATURES = Counter("gatewatch_worm_cosignatures_total", "Witness cosignatures stored", ["witness"])
APPEND_SECONDS = Histogram("gatewatch_worm_append_seconds", "Durable append of one batch (one fsync)",
                           buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
COMMIT_SECONDS = Histogram("gatewatch_worm_commit_seconds", "Kafka offset commit after a durable batch",
                           buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))


@dataclass
class SinkConfig:
    db: str
    origin: str = cp.DEFAULT_ORIGIN
    group: str | None = None
    batch_size: int = 5000
    checkpoint_every: int = 1000
    checkpoint_interval_s: float = 10.0
    exit_when_idle_s: float | None = None
    keys_dir: str | None = None
    policy_file: str | None = None


def dlq_value(source_topic: str, partition: int, offset: int, reason: str, payload: bytes | None) -> bytes:
    return canonical_json(dlq_record(source_topic, partition, offset, reason, payload))


def b64list(hashes) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def record_cosigned(store: WormStore, policy: cp.Policy, doc) -> tuple[list[str], int] | str | None:
    """Store a witness's cosigned note when it is for this log, its root is the log's root at
    that size and a policy witness signed it. Returns (witnesses that signed it, size) when newly
    stored, None when the message is not a cosignature for this log (or already stored), or a DLQ reason."""
    if not isinstance(doc, dict) or doc.get("kind") != "cosigned":
        return None  # the log's own publications, or not for us
    try:
        note = cp.parse_note(doc.get("note"))
        c = cp.parse_checkpoint(note.body)
    except cp.NoteError as e:
        return f"bad_cosigned_note: {e}"
    if c.origin != policy.log.name:
        return None
    if c.size > store.size or c.size == 0 or store.root_at(c.size) != c.root:
        return "cosigned_root_mismatch"
    _, _, names = policy.evaluate(note)
    if not names:
        return "no_valid_witness_signature"
    if store.add_note("cosigned", c.origin, c.size, note.text(), ts_ms=int(time.time() * 1000)):
        return names, c.size
    return None


def collect_cosignatures(store: WormStore, policy: cp.Policy, bootstrap: str, idle_s: float = 2.0,
                         timeout_s: float = 60.0) -> int:
    """Read gw.checkpoints from the start (throwaway group, nothing committed) and store every
    valid cosignature for this log; for exports after the sink stopped. Returns notes stored."""
    import uuid
    consumer = kafka.consumer(bootstrap, f"{topics.prefix()}evidence-{uuid.uuid4().hex[:8]}")
    assigned: list[float] = []
    consumer.subscribe([topics.topic("checkpoints")], on_assign=lambda c, p: assigned.append(time.monotonic()))
    stored, last, deadline = 0, None, time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for m in consumer.consume(num_messages=500, timeout=0.2):
                last = time.monotonic()
                if m.error():
                    continue
                try:
                    doc = orjson.loads(m.value())
                except (orjson.JSONDecodeError, TypeError):
                    continue
                if isinstance(record_cosigned(store, policy, doc), tuple):
                    stored += 1
            since = last or (assigned[0] if assigned else None)
            if since is not None and time.monotonic() - since >= idle_s:
                break
    finally:
        consumer.close()
    return stored


class WormSink(Stage):
    """The sink as a stage of streams.runtime.worker (group mode): each batch is appended durably
    (one fsync) before the worker flushes the DLQ and commits the batch's offsets."""
    name = "worm"
    checkpoint_interval_s = 0.0  # commit after every batch: its entries are durable by then
    poll_timeout_s = 0.2

    def __init__(self, cfg: SinkConfig):
        from gatewatch.processors.signing import key_id
        from gatewatch.streams.runtime.keys import load_signing_key, load_verify_key
        self.cfg = cfg
        # admission: actions need a permit by this decider key, receipts this executor's signature
        dk, ek = load_verify_key("decider", cfg.keys_dir), load_verify_key("executor", cfg.keys_dir)
        self.decider, self.executor = {key_id(dk): dk}, {key_id(ek): ek}
        self.group = cfg.group or topics.prefix() + "worm"
        self.batch_size = cfg.batch_size
        self.store = WormStore(cfg.db)
        self.log_key = load_signing_key("log", cfg.keys_dir)
        if cfg.policy_file:
            with open(cfg.policy_file) as f:
                self.policy = cp.parse_policy(f.read())
        else:
            self.policy = cp.default_policy(cfg.origin, cfg.keys_dir)
        if self.policy.log.name != cfg.origin or self.policy.log.key.encode() != self.log_key.verify_key.encode():
            raise GatewatchError(f"checkpoint policy's log line must name origin {cfg.origin!r} with the log key")
        self.kind_of = {topics.topic(k): k for k in LOGGED_KINDS + ("checkpoints",)}
        self.checkpoint_topic = topics.topic("checkpoints")
        notes = self.store.notes()
        logs = [n for n in notes if n["kind"] == "log"]
        if logs:
            signed = cp.parse_checkpoint(cp.parse_note(logs[-1]["note"]).body)
            if not self.store.matches(signed.size, signed.root):  # signing on would fork the log
                raise GatewatchError(f"WORM store {cfg.db} does not hold the tree it signed at size {signed.size} "
                                     f"(it holds {self.store.size} entries): truncated or rewritten; refusing to "
                                     "sign anything more")
        self.last_published = (logs[-1]["size"], time.monotonic()) if logs else (0, time.monotonic())
        self.witness_sizes: dict[str, int] = {}
        for n in notes:
            if n["kind"] == "cosigned":
                self._note_cosigner(n["note"], n["size"])
        self.worker = None

    def producer_config(self) -> dict:
        # batch.num.messages=1: readers of gw.checkpoints stop at the high watermark (tansu quirk)
        return {"batch.num.messages": 1, "linger.ms": 0}

    def input_topics(self, worker) -> list[str]:
        self.worker = worker
        CHECKPOINT_AGE.set_function(lambda: time.monotonic() - self.last_published[1])
        TREE_SIZE.set(self.store.size)
        log_event(LOG, "worm sink started", db=self.cfg.db, size=self.store.size)
        return list(self.kind_of)

    # ------------------------------------------------------------ helpers
    def _note_cosigner(self, note_text: str, size: int) -> list[str]:
        try:
            note = cp.parse_note(note_text)
        except cp.NoteError:
            return []
        _, _, names = self.policy.evaluate(note)
        for name in names:
            self.witness_sizes[name] = max(self.witness_sizes.get(name, 0), size)
        return names

    def _admit(self, kind: str, topic: str, value: dict) -> str | None:
        return check_record(kind, topic, value, self.decider, self.executor)[0]

    def _dlq(self, msg, reason: str) -> None:
        DLQ.labels(reason).inc()
        self.worker.dlq(msg.topic(), msg.partition(), msg.offset(), reason, msg.value())

    def _on_cosigned(self, msg) -> None:
        try:
            doc = orjson.loads(msg.value())
        except (orjson.JSONDecodeError, TypeError):
            self._dlq(msg, "not_json")
            return
        result = record_cosigned(self.store, self.policy, doc)
        if isinstance(result, str):
            self._dlq(msg, result)
        elif result:
            names, size = result
            for n in names:
                self.witness_sizes[n] = max(self.witness_sizes.get(n, 0), size)
                COSIGNATURES.labels(n).inc()

    def publish_checkpoint(self) -> dict | None:
        size = self.store.size
        prev_size = self.last_published[0]
        if size == 0 or size == prev_size:
            return None
        if size < prev_size:
            raise GatewatchError(f"WORM store shrank below the size it signed ({size} < {prev_size}): truncated")
        root = self.store.root()
        note = cp.sign(cp.Checkpoint(self.cfg.origin, size, root).body(), self.cfg.origin, self.log_key)
        olds = {s for s in [prev_size, *self.witness_sizes.values()] if 0 < s < size}
        proofs = {str(s): b64list(self.store.consistency_proof(s, size)) for s in sorted(olds)}
        prev_proof = self.store.consistency_proof(prev_size, size) if prev_size else None
        self.store.add_note("log", self.cfg.origin, size, note.text(), prev_proof, int(time.time() * 1000))
        doc = {"kind": "log", "origin": self.cfg.origin, "size": size, "note": note.text(), "proofs": proofs}
        self.worker.produce(self.checkpoint_topic, self.cfg.origin.encode(), orjson.dumps(doc))
        self.worker.producer.flush(10)
        self.last_published = (size, time.monotonic())
        CHECKPOINTS.inc()
        log_event(LOG, "checkpoint published", size=size, root=base64.b64encode(root).decode())
        return doc

    # ------------------------------------------------------------ the Stage protocol
    def process(self, worker, msgs) -> None:
        """One batch, durably appended; the worker then flushes the DLQ and commits the offsets."""
        cands: list[Candidate] = []
        for m in msgs:
            kind = self.kind_of.get(m.topic())
            if kind == "checkpoints":
                self._on_cosigned(m)
                continue
            try:
                c = candidate_from_record(kind, m.topic(), m.value(), self._admit)
            except Rejected as e:
                self._dlq(m, str(e))
                continue
            if c is not None:
                cands.append(c)
        t0 = time.perf_counter()
        appended = self.store.append_batch(cands) if cands else []
        if cands:
            APPEND_SECONDS.observe(time.perf_counter() - t0)
        ENTRIES.inc(len(appended))
        DUPLICATES.inc(len(cands) - len(appended))
        TREE_SIZE.set(self.store.size)

    def tick(self, worker) -> None:
        size, when = self.last_published
        due = self.store.size - size >= self.cfg.checkpoint_every or \
            (self.store.size > size and time.monotonic() - when >= self.cfg.checkpoint_interval_s)
        if due:
            self.publish_checkpoint()

    def close(self, worker) -> None:
        try:
            self.publish_checkpoint()  # the final state, so auditors get a checkpoint for every entry
        finally:
            self.store.close()
            log_event(LOG, "worm sink stopped")


def run_sink(cfg: SinkConfig, stop=None, metrics_port: int | None = None) -> None:
    """The sink as this process (or thread, with its own stop flag)."""
    from gatewatch.streams.runtime.process import run_stage
    run_stage(WormSink(cfg), metrics_port=metrics_port, assignment="group", exit_when_idle_s=cfg.exit_when_idle_s,
              stop=stop)
