"""Reads gw.gates (from the beginning, every partition, read_committed), gw.actions and gw.receipts into a
GateStore, on one background thread. Ready once every gates partition has been read up to the end
offset it had when serve started (the same test as streams.runtime.kafka.read_to_end): before
that, an answer could be an older record of a key, so /readyz says 503 until then.

No consumer group: every serve replica reads everything (assign, nothing committed), so any number
of replicas answer the same, and a restart rebuilds the whole state from the compacted topic.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from gatewatch.streams.app.serve.store import GateStore
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.consuming import watermarks
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import consumer, wait_ready

LOG = logging.getLogger("gatewatch.serve")


class Materializer:
    def __init__(self, bootstrap: str, store: GateStore, pfx: str | None = None):
        self.bootstrap, self.store = bootstrap, store
        self.gates_topic = topics.topic("gates", pfx)
        self.actions_topic = topics.topic("actions", pfx)
        self.receipts_topic = topics.topic("receipts", pfx)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._todo: dict[int, int] = {}  # gates partition -> end offset still to reach
        self._thread: threading.Thread | None = None
        self._c = None
        self.error: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def start(self) -> "Materializer":
        wait_ready(self.bootstrap, 30)
        c = consumer(self.bootstrap, f"gatewatch-serve-{uuid.uuid4().hex[:12]}",
                     **{"isolation.level": "read_committed"})
        try:
            parts = self._partitions(c, self.gates_topic, required=True)
            # a topic created a moment ago answers NOT_LEADER for a while: retried
            ends = {p: watermarks(c, self.gates_topic, p)[1] for p in parts}
            assign = [TopicPartition(self.gates_topic, p, OFFSET_BEGINNING) for p in parts]
            for t in (self.actions_topic, self.receipts_topic):
                assign += [TopicPartition(t, p, OFFSET_BEGINNING) for p in self._partitions(c, t, required=False)]
            c.assign(assign)
        except Exception:
            c.close()
            raise
        self._c = c
        self._todo = {p: end for p, end in ends.items() if end > 0}
        if not self._todo:
            self._ready.set()
        self._thread = threading.Thread(target=self._run, name="serve-materialize", daemon=True)
        self._thread.start()
        return self

    def _partitions(self, c, topic: str, required: bool) -> list[int]:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            if required:
                raise GatewatchError(f"topic {topic} not found (run: gatewatch topics create)")
            LOG.warning("topic %s not found: serving gates without it", topic)
            return []
        return sorted(md.partitions)

    def _run(self) -> None:
        c = self._c
        try:
            while not self._stop.is_set():
                for m in c.consume(1000, 0.2):
                    if m.error() is not None:
                        LOG.warning("consume error: %s", m.error())
                        continue
                    if m.topic() == self.gates_topic:
                        self.store.apply_gate(m.key(), m.value())
                    elif m.topic() == self.actions_topic:
                        self.store.apply_action(m.value())
                    else:
                        self.store.apply_receipt(m.value())
                if self._todo:
                    # the position passes transaction markers too, which are never delivered
                    for tp in c.position([TopicPartition(self.gates_topic, p) for p in self._todo]):
                        if tp.offset >= self._todo[tp.partition]:
                            self._todo.pop(tp.partition, None)
                    if not self._todo:
                        self._ready.set()
        except Exception as e:  # noqa: BLE001 (reported on /readyz and in the log, never a traceback to clients)
            self.error = f"{type(e).__name__}: {e}"
            LOG.error("materializer stopped: %s", self.error)
            self._ready.clear()
        finally:
            c.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        elif self._c is not None:
            self._c.close()
        self._c = None

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def wait_until(pred, timeout_s: float, step_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step_s)
    return pred()
