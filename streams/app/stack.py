"""A running gatewatch pipeline for integration suites: ingest, signals and decide as subprocesses
on one Kafka and one topic prefix, with fresh keys (the `gatewatch_stack` pytest fixture).

    with Stack(bootstrap, prefix, policy_dir, workdir) as stack:
        stack.publish("metrics", {"service": "checkout", "status": 500, ...}, key=b"checkout")
        actions = stack.wait_for("actions", lambda a: a["kind"] == "abort", timeout_s=60)
"""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Callable

import orjson
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from gatewatch.streams.app.supervisor import Supervisor
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.consuming import watermarks
from gatewatch.streams.runtime.kafka import consumer, producer
from gatewatch.streams.runtime.keys import init_keys


class Stack:
    STAGES = ("ingest", "signals", "decide")

    def __init__(self, bootstrap: str, prefix: str, policy_dir: str | os.PathLike, workdir: str | os.PathLike,
                 shadow_policy_dir: str | os.PathLike | None = None):
        self.bootstrap, self.prefix = bootstrap, prefix
        self.workdir = Path(workdir)
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.keys_dir = self.workdir / "keys"
        init_keys(self.keys_dir)
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, GATEWATCH_TOPIC_PREFIX=prefix,
                   GATEWATCH_KEYS_DIR=str(self.keys_dir), GATEWATCH_LOG_LEVEL="WARNING")
        self.supervisor = Supervisor(env, self.workdir / "logs")
        common = ["--state-dir", str(self.workdir / "state"), "--policy", str(policy_dir), "--assignment", "group"]
        shadow = ["--shadow-policy", str(shadow_policy_dir)] if shadow_policy_dir is not None else []
        for name, upstream in zip(self.STAGES, ((), ("ingest",), ("signals",))):
            self.supervisor.add(name, ["worker", name, *common, *(shadow if name == "decide" else [])], upstream)
        self._producer = producer(bootstrap)

    def start(self) -> "Stack":
        for name in self.STAGES:
            self.supervisor.start(name)
        return self

    def stop(self) -> None:
        self.supervisor.stop_all()
        self._producer.flush(10)

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def publish(self, logical: str, value: dict | bytes, key: bytes | str | None = None) -> None:
        """Produce one record to a catalogue topic (metrics, rum, cdc, spans) under the stack's prefix."""
        body = value if isinstance(value, bytes) else orjson.dumps(value)
        self._producer.produce(topics.topic(logical, self.prefix), value=body,
                               key=key.encode() if isinstance(key, str) else key)
        self._producer.poll(0)

    def read(self, logical: str, timeout_s: float = 2.0) -> list[dict]:
        """Every record on a catalogue topic so far, decoded."""
        self._producer.flush(10)
        name = topics.topic(logical, self.prefix)
        c = consumer(self.bootstrap, f"{self.prefix}stack-read-{uuid.uuid4().hex[:8]}")
        try:
            md = c.list_topics(name, timeout=10).topics[name]
            ends = {p: watermarks(c, name, p)[1] for p in md.partitions}
            c.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p, end in ends.items() if end > 0])
            out, seen, deadline = [], {p: 0 for p in ends}, time.monotonic() + timeout_s + 10
            while any(seen[p] < ends[p] for p in ends) and time.monotonic() < deadline:
                for m in c.consume(1000, 0.2):
                    if m.error() is None:
                        seen[m.partition()] = m.offset() + 1
                        out.append(orjson.loads(m.value()))
            return out
        finally:
            c.close()

    def wait_for(self, logical: str, predicate: Callable[[dict], bool], timeout_s: float = 60.0) -> list[dict]:
        """The records of `logical` matching predicate, once there is at least one (or TimeoutError)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.supervisor.tend(publishing=True)
            hits = [r for r in self.read(logical) if predicate(r)]
            if hits:
                return hits
            if time.monotonic() > deadline:
                raise TimeoutError(f"no matching record on {logical} within {timeout_s:.0f}s "
                                   f"(worker logs: {self.workdir / 'logs'})")
            time.sleep(0.5)
