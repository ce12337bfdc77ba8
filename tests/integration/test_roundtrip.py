"""Round trips through the fixture broker: confluent-kafka both ways, and a faust agent in between."""
import os
import subprocess
import sys
import time
import uuid

import pytest

from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import consumer, producer

pytestmark = pytest.mark.integration


def _drain(bootstrap, topic, want, timeout_s=30.0):
    c = consumer(bootstrap, f"test-{uuid.uuid4().hex[:6]}")
    c.subscribe([topic])
    got, deadline = [], time.monotonic() + timeout_s
    try:
        while len(got) < want and time.monotonic() < deadline:
            for m in c.consume(500, 0.5):
                if m.error() is None:
                    got.append((m.key(), m.value()))
    finally:
        c.close()
    return got


def test_confluent_roundtrip(kafka_bootstrap, topic_prefix):
    t = topics.topic("metrics")
    p = producer(kafka_bootstrap)
    sent = [(f"svc-{i % 5}".encode(), f'{{"i":{i}}}'.encode()) for i in range(2000)]
    for k, v in sent:
        p.produce(t, key=k, value=v)
    assert p.flush(10) == 0
    got = _drain(kafka_bootstrap, t, len(sent))
    assert sorted(got) == sorted(sent)
    # per key, order is preserved (one key -> one partition)
    for key in {k for k, _ in sent}:
        assert [v for k, v in got if k == key] == [v for k, v in sent if k == key]


def test_faust_agent_roundtrip(kafka_bootstrap, topic_prefix, tmp_path):
    in_t, out_t = f"{topic_prefix}faust-in", f"{topic_prefix}faust-out"
    from confluent_kafka.admin import NewTopic

    from gatewatch.streams.runtime.kafka import admin
    a = admin(kafka_bootstrap)  # keep a reference: futures die with their client
    for f in a.create_topics([NewTopic(in_t, 1, 1), NewTopic(out_t, 1, 1)]).values():
        f.result()
    env = dict(os.environ, FAUST_BROKER=kafka_bootstrap, IN_TOPIC=in_t, OUT_TOPIC=out_t,
               APP_ID=f"echo-{uuid.uuid4().hex[:6]}")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.faust_echo", "--datadir", str(tmp_path / "faust"),
         "worker", "--without-web", "-l", "warn"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ok = False
    try:
        p = producer(kafka_bootstrap)
        sent = [(b"k%d" % (i % 3), b"hello-%d" % i) for i in range(50)]
        for k, v in sent:
            p.produce(in_t, key=k, value=v)
        p.flush(10)
        got = _drain(kafka_bootstrap, out_t, len(sent), timeout_s=60)
        assert sorted(got) == sorted((k, v.upper()) for k, v in sent), f"worker exit code {worker.poll()}"
        ok = True
    finally:
        worker.terminate()
        try:
            out, _ = worker.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            out, _ = worker.communicate()
        if not ok:
            print(out.decode(errors="replace")[-3000:])
