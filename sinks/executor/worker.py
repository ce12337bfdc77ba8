"""The executor's Kafka loop: actions in, receipts out, offsets committed after the durable RESULT.

- Concurrency across scopes, strict order within one: records are dispatched to a
  lane per Kafka key (= scope); a lane runs one record at a time, lanes run on a
  thread pool.
- An offset is committed only when it and every earlier offset of its partition
  are settled (RESULT or REFUSED durable, or a duplicate), so a crash re-delivers
  everything unsettled and the ledger makes that harmless.
- Receipts are produced by this thread in ledger order (seq). The last delivered
  seq is persisted, so after a crash every receipt that may not have reached Kafka
  is produced again (same bytes, same id: consumers dedupe by id).
"""
from __future__ import annotations

import collections
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
from confluent_kafka import TopicPartition

from gatewatch.sinks.executor.config import ExecutorConfig
from gatewatch.sinks.executor.core import ActionHandler
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.metrics import ExecutorMetrics
from gatewatch.sinks.executor.receipts import seal
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.consuming import retry_on_load, static_partitions
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.logs import log_event
from gatewatch.streams.runtime.worker import Stage, Worker

log = logging.getLogger("gatewatch.executor")


class ScopeLanes:
    """submit(lane, fn): fns of one lane run one after another in submit order; lanes run in parallel."""

    def __init__(self, threads: int):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lane")
        self._queues: dict[bytes, collections.deque] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self.failure: BaseException | None = None

    def submit(self, lane: bytes, fn) -> None:
        with self._lock:
            q = self._queues.get(lane)
            if q is not None:  # lane busy: run after the ones before it
                q.append(fn)
                return
            self._queues[lane] = collections.deque()
        self._pool.submit(self._drain, lane, fn)

    def _drain(self, lane: bytes, fn) -> None:
        while fn is not None:
            try:
                fn()
            except BaseException as e:  # a ledger/disk error: stop the worker, never skip a record
                log_event(log, "lane failed", logging.ERROR, error=f"{type(e).__name__}: {e}")
                self.failure = self.failure or e
            with self._lock:
                q = self._queues[lane]
                if q:
                    fn = q.popleft()
                else:
                    del self._queues[lane]
                    fn = None
                    if not self._queues:
                        self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: not self._queues, timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)


class OffsetTracker:
    """Per partition: offsets in flight; the commit point is the lowest unsettled offset."""

    def __init__(self):
        self._pending: dict[tuple[str, int], set[int]] = collections.defaultdict(set)
        self._next: dict[tuple[str, int], int] = {}
        self._given: dict[tuple[str, int], int] = {}  # the highest point handed out
        self._lock = threading.Lock()

    def resume(self, tp: tuple[str, int], offset: int) -> None:
        """A partition's committed offset at start: its commit point until a record moves it."""
        with self._lock:
            self._next[tp] = max(self._next.get(tp, 0), offset)

    def start(self, tp: tuple[str, int], offset: int) -> bool:
        """False for an offset below a point already given (see points)."""
        with self._lock:
            self._pending[tp].add(offset)
            self._next[tp] = max(self._next.get(tp, 0), offset + 1)
            return offset >= self._given.get(tp, -1)

    def settle(self, tp: tuple[str, int], offset: int) -> None:
        with self._lock:
            self._pending[tp].discard(offset)

    def pending(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._pending.values())

    def points(self) -> list[TopicPartition]:
        """Every known partition's commit point (the worker commits only what differs from its
        last successful commit, so a failed one is tried again). Never behind a point already
        given: records below it come only from a reset past the committed offset (the topic
        recreated or truncated), and the ledger alone keeps those from running twice."""
        out = []
        with self._lock:
            for tp, nxt in self._next.items():
                point = max(min(self._pending[tp]) if self._pending[tp] else nxt, self._given.get(tp, -1))
                self._given[tp] = point
                out.append(TopicPartition(tp[0], tp[1], point))
        return out

    def forget(self, partitions) -> None:
        with self._lock:
            for p in partitions:
                key = (p.topic, p.partition)
                for d in (self._pending, self._next, self._given):
                    d.pop(key, None)


class ReceiptPublisher:
    """Produces ledger receipts in seq order (its own thread) and persists how far delivery got.

    Lanes may wait until their INTENT receipt is delivered before running the effect
    (wait_delivered), so the replicated log shows the intent even if this host's disk is lost.
    """

    def __init__(self, ledger: Ledger, producer, topic: str, metrics: ExecutorMetrics):
        self.ledger, self.producer, self.topic, self.metrics = ledger, producer, topic, metrics
        self.delivered = ledger.published_seq()   # every seq <= this one is on Kafka
        self.cursor = self.delivered              # produced up to here
        self._unacked: dict[int, object] = {}     # seq -> StoredReceipt, until its delivery report
        self._acked: set[int] = set()
        self._retry: list = []
        self._persisted = self.delivered
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def _on_delivery(self, seq: int):
        def cb(err, msg):
            if err is not None:  # librdkafka gave up on it: produce it again (same bytes, same id)
                log_event(log, "receipt not delivered; retrying", logging.WARNING, seq=seq, error=str(err))
                self._retry.append(self._unacked[seq])
                return
            self._unacked.pop(seq, None)
            self._acked.add(seq)
        return cb

    def _produce(self, r) -> None:
        self._unacked[r.seq] = r
        while True:
            try:
                self.producer.produce(self.topic, key=r.key.encode(), value=r.body, on_delivery=self._on_delivery(r.seq))
                return
            except BufferError:  # local queue full: let it drain
                self.producer.poll(0.05)

    def pump(self, poll_s: float = 0) -> None:
        """Produce new receipts, serve delivery reports, persist the delivered watermark."""
        retry, self._retry = self._retry, []
        for r in retry:
            self._produce(r)
        for r in self.ledger.receipts_after(self.cursor):
            self._produce(r)
            self.cursor = r.seq
        self.producer.poll(poll_s)
        advanced = False
        while self.delivered + 1 in self._acked:
            self._acked.discard(self.delivered + 1)
            self.delivered += 1
            self.metrics.receipts.inc()
            advanced = True
        if advanced:
            with self._cv:
                self._cv.notify_all()
        if self.delivered > self._persisted:
            self.ledger.set_published_seq(self.delivered)
            self._persisted = self.delivered

    def wait_delivered(self, seq: int, timeout_s: float) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: self.delivered >= seq, timeout_s)

    def start(self, stop: threading.Event) -> None:
        def serve():
            while not stop.is_set():
                self.pump(poll_s=0.005)
        self._thread = threading.Thread(target=serve, name="receipts", daemon=True)
        self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def all_delivered(self) -> bool:
        return self.delivered >= self.ledger.head()[0]

    def flush(self, timeout_s: float = 10.0) -> None:
        """Only while the publishing thread is stopped."""
        self.pump()
        self.producer.flush(timeout_s)
        self.pump()


class _Stats(collections.Counter):
    _lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self[key] += 1


class ExecutorStage(Stage):
    """The executor on the worker skeleton: records go to per-scope lanes; an offset is committed
    once it and every earlier one of its partition settled (OffsetTracker)."""
    name = "executor"

    def __init__(self, cfg: ExecutorConfig, ledger_path: str | Path, metrics: ExecutorMetrics | None = None,
                 crash_after_effects: int | None = None, new_ledger: bool = False):
        self.cfg, self.new_ledger = cfg, new_ledger
        self.group, self.batch_size = cfg.group, cfg.batch_size
        self.checkpoint_interval_s = cfg.commit_interval_s
        self.metrics = metrics or ExecutorMetrics()
        signing_key = cfg.signing_key()
        self.ledger = Ledger(ledger_path, lambda body: seal(signing_key, body))
        self.handler = ActionHandler(self.ledger, cfg.build_backends(signing_key), cfg.backend_for,
                                     cfg.trusted_keys(), self.metrics, crash_after_effects=crash_after_effects,
                                     permit_leeway_ms=int(cfg.permit_leeway_s * 1000),
                                     permit_max_lifetime_ms=int(cfg.permit_max_lifetime_s * 1000))
        self.actions_topic = topics.topic("actions")
        self.receipts_topic = topics.topic("receipts")
        self.tracker = OffsetTracker()
        self._below_point: set[tuple[str, int]] = set()  # partitions that re-delivered below their point
        self.lanes = ScopeLanes(cfg.concurrency)
        self.stats = _Stats()
        self._publisher_stop = threading.Event()
        self.publisher: ReceiptPublisher | None = None

    def producer_config(self) -> dict:
        return {"linger.ms": 1}

    def input_topics(self, worker) -> list[str]:
        if self.cfg.assignment == "static":
            self._check_ledger(worker)  # before the publisher or a resumed action touches the ledger
        elif self.new_ledger:
            log_event(log, "--new-ledger ignored: group assignment checks no ledger", logging.WARNING)
        self.publisher = ReceiptPublisher(self.ledger, worker.producer, self.receipts_topic, self.metrics)
        self.publisher.start(self._publisher_stop)            # first: receipts a crash left unproduced
        self.handler.before_effect = self._intent_gate(self.publisher)
        self.stats["resumed"] = self.handler.resume_in_flight()  # INTENT without RESULT: re-run, same key
        return [self.actions_topic]

    def _intent_gate(self, publisher: ReceiptPublisher):
        timeout = self.cfg.intent_publish_timeout_s
        if timeout <= 0:
            return None

        def wait(intent: dict) -> None:
            if not publisher.wait_delivered(intent["seq"], timeout):
                self.metrics.intent_unpublished.inc()
                log_event(log, "INTENT not on Kafka in time; running the effect anyway (it is durable locally)",
                          logging.WARNING, action_id=intent.get("action_id"), timeout_s=timeout)
        return wait

    def _check_ledger(self, worker) -> None:
        """Each commit names the ledger's head receipt (checkpoint); a ledger without it (lost with
        its volume, replaced, restored from a backup older than the last commit) does not remember
        the actions run past the commit point, and would run them again with a receipt chain
        restarted: refused before anything resumes, unless started once with --new-ledger. After a
        passing start, the first checkpoint commits every partition's offset again under the current
        head, so offsets committed before this check carry it from then on."""
        parts = static_partitions(worker.consumer, self.actions_topic, worker.partitions)
        asked = [TopicPartition(self.actions_topic, p) for p in parts]
        foreign, stamp = [], []
        for tp in retry_on_load(lambda: worker.committed_offsets.get(asked, 30), "reading committed offsets", 120):
            if tp.error is not None:
                raise GatewatchError(f"executor: committed offset of {tp.topic}[{tp.partition}]: {tp.error.str()}")
            if tp.offset < 0:
                continue  # nothing committed: nothing run past a commit point
            stamp.append(tp)
            try:
                head = orjson.loads(tp.metadata)
                seq, rid = head["ledger_seq"], head["ledger_head"]
            except (orjson.JSONDecodeError, TypeError, KeyError):
                log_event(log, "committed offset without a ledger head: not checked", logging.WARNING,
                          partition=f"{tp.topic}[{tp.partition}]", offset=tp.offset)
                continue  # before this check, or a broker that keeps no offset metadata (tansu)
            if not self.ledger.holds(seq, rid):
                foreign.append(f"{tp.topic}[{tp.partition}] at receipt {seq}")
        if foreign and not self.new_ledger:
            raise GatewatchError(
                f"executor ledger {self.ledger.path} is not the one that committed {', '.join(foreign)}: a lost or "
                f"replaced ledger runs again the actions past the commit point; restore it, or start once with "
                f"--new-ledger")
        if foreign:
            log_event(log, "started with a new ledger (--new-ledger)", logging.WARNING, partitions=foreign)
        for tp in stamp:  # the first checkpoint commits them under this ledger's head, like every point
            self.tracker.resume((tp.topic, tp.partition), tp.offset)

    def _with_head(self, offsets: list[TopicPartition]) -> list[TopicPartition]:
        seq, rid = self.ledger.head()
        meta = orjson.dumps({"ledger_head": rid, "ledger_seq": seq}).decode()
        return [TopicPartition(tp.topic, tp.partition, tp.offset, metadata=meta) for tp in offsets]

    def on_revoke(self, worker, tps) -> None:
        self.tracker.forget(tps)

    def process(self, worker, msgs) -> None:
        for m in msgs:
            tp, offset, value, key = (m.topic(), m.partition()), m.offset(), m.value(), m.key()
            if not self.tracker.start(tp, offset) and tp not in self._below_point:
                self._below_point.add(tp)  # once per partition: a recreated topic re-delivers them all
                log_event(log, "record below the committed offset: the topic was recreated or truncated? "
                          "The ledger still refuses a second run of any action it holds", logging.WARNING,
                          partition=f"{tp[0]}[{tp[1]}]", offset=offset)

            def work(tp=tp, offset=offset, value=value, key=key):
                outcome = self.handler.handle(value, key)  # raises only on ledger failure: then not settled
                self.stats.add(outcome)
                self.tracker.settle(tp, offset)
            self.lanes.submit(m.key() or b"", work)

    def busy(self) -> bool:
        pending = self.tracker.pending()
        self.metrics.pending.set(pending)
        return pending >= self.cfg.max_pending

    def idle_ok(self) -> bool:
        return not self.tracker.pending() and self.publisher is not None and self.publisher.all_delivered()

    def tick(self, worker) -> None:
        if self.lanes.failure is not None:  # a ledger/disk error: stop, never skip a record
            f = self.lanes.failure
            raise GatewatchError(f"executor stopped: {type(f).__name__}: {f}")

    def checkpoint(self, worker) -> list[TopicPartition]:
        """Every commit point under the ledger's current head: the worker commits what differs from
        its last successful commit, so the head in Kafka follows the ledger each commit interval even
        while one slow action holds its partition's point (a ledger restored from before that head is
        then refused at start), and a failed commit is tried again."""
        offsets = self.tracker.points()
        return self._with_head(offsets)  # read after the points: the head covers their RESULTs (fsynced)

    def finish(self, worker) -> None:
        self.lanes.wait_idle(60)  # settle what is in flight before the final checkpoint

    def close(self, worker) -> None:
        try:
            self.lanes.shutdown()
            self._publisher_stop.set()
            if self.publisher is not None:
                self.publisher.join()
                self.publisher.flush()
        finally:
            self.ledger.close()


class ExecutorWorker:
    """The executor as a process or thread: run() until stop (or idle); returns the outcome counts."""

    def __init__(self, cfg: ExecutorConfig, ledger_path: str | Path, bootstrap: str,
                 metrics: ExecutorMetrics | None = None, crash_after_effects: int | None = None,
                 new_ledger: bool = False):
        self.stage = ExecutorStage(cfg, ledger_path, metrics, crash_after_effects, new_ledger)
        self.metrics = self.stage.metrics
        self.bootstrap, self.cfg = bootstrap, cfg
        self.worker: Worker | None = None

    @property
    def ready(self) -> bool:
        return self.worker is not None and self.worker.ready

    def run(self, stop, exit_when_idle_s: float | None = None) -> dict:
        flag = stop if isinstance(stop, StopFlag) else StopFlag.from_event(stop)
        self.worker = Worker(self.stage, self.bootstrap, assignment=self.cfg.assignment,
                             partitions=self.cfg.partitions, stop=flag, exit_when_idle_s=exit_when_idle_s)
        self.worker.run()
        return dict(self.stage.stats)
