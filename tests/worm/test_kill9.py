"""kill -9 the sink (a `gatewatch worm run` subprocess) mid-stream, restart it: every record once, same root."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import orjson
import pytest

from gatewatch.processors.canonical import canonical_json
from gatewatch.sinks.executor.receipts import seal
from gatewatch.sinks.worm import merkle
from gatewatch.sinks.worm.store import WormStore
from gatewatch.streams.runtime import kafka, topics
from gatewatch.streams.runtime.keys import load_signing_key
from tests.worm import factory

pytestmark = pytest.mark.integration
N = 50_000


def _size(db: str) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _sink(db, env):
    return subprocess.Popen([sys.executable, "-m", "gatewatch", "worm", "run", "--db", db, "--batch-size", "500",
                             "--exit-when-idle", "2", "--checkpoint-every", "20000"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_kill9_midstream_then_restart(kafka_bootstrap, topic_prefix, tmp_path):
    keys = factory.keys(tmp_path)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_KEYS_DIR=keys, GATEWATCH_LOG_LEVEL="WARNING")
    # One partition, so the consumed order (and so the uninterrupted root) is the produced order.
    values, expected = [], []
    executor = load_signing_key("executor", keys)  # the sink admits only receipts this key signed
    for i in range(N):
        v = seal(executor, {"type": "INTENT" if i % 2 else "RESULT", "action_id": f"a{i // 2}", "seq": i})
        values.append(orjson.dumps(v))
        expected.append(canonical_json(v))
        if i % 997 == 0:
            values.append(orjson.dumps(v))  # a re-delivery inside the stream appends nothing
    p = kafka.producer(kafka_bootstrap, **{"linger.ms": 20})
    for i, v in enumerate(values):
        p.produce(topics.topic("receipts"), value=v, partition=0)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(30)

    db = str(tmp_path / "w.db")
    first = _sink(db, env)
    deadline = time.monotonic() + 60
    while _size(db) < 3000 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    at_kill = _size(db)
    assert 0 < at_kill < N, f"kill did not land mid-stream ({at_kill})"

    second = _sink(db, env)
    deadline = time.monotonic() + 90
    while _size(db) < N and time.monotonic() < deadline and second.poll() is None:
        time.sleep(0.05)
    second.send_signal(signal.SIGTERM)  # graceful stop: finishes the batch, publishes a final checkpoint
    _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()[-2000:]

    with WormStore(db) as s:
        ids = [e.id for e in s.entries()]
        assert len(ids) == N and len(set(ids)) == N
        assert s.root() == merkle.root(expected)
        assert [e.leaf for e in s.entries(0, 5)] == expected[:5]
        last = s.notes("log")[-1]
        assert last["size"] == N  # the final checkpoint covers everything
