"""Chaos: SIGKILL the Apache Kafka broker mid-run and start it again on the same log directory, with
every worker running.

The broker is killed at a seeded random moment of the scenario, stays down for a while, and comes
back on the same ports and storage. Workers that give up while it is down exit non-zero and are
restarted, as an orchestrator would. The end state is held to the same checks as the worker-kill
chaos test: the same action ids as an uninterrupted computation, each executed exactly once, the
WORM log holding each action and receipt once with the same decision root, and an evidence bundle
that verifies. (The embedded tansu is not used here: its S3 storage loses records of idempotent
producers across a restart, README "Embedded broker limits".)
"""
import os
import random
import time
import uuid

import pytest

from gatewatch.streams.app.webhook import DeployWebhook
from gatewatch.streams.runtime.brokers import ApacheKafka
from gatewatch.streams.runtime.kafka import create_topics
from gatewatch.streams.runtime.keys import init_keys, load_verify_key
from tests.chaos.test_chaos import KINDS, _supervisor, check_against_uninterrupted
from tests.pipeline.helpers import publish_inputs

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def _tend_through_outage(sup, seconds, crashed):
    """Restart every worker that exited (idle or gave up on the missing broker) for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for w in sup.workers.values():
            rc = w.proc.poll() if w.proc else None
            if rc is not None:
                if rc != 0:
                    crashed[w.name] = crashed.get(w.name, 0) + 1
                sup.start(w.name)
        time.sleep(0.2)


@pytest.mark.parametrize("seed", [7])
def test_broker_sigkilled_and_restarted_mid_run(tmp_path, monkeypatch, seed):
    if not os.environ.get("JAVA_HOME") and not __import__("shutil").which("java"):
        pytest.skip("Apache Kafka needs Java 17 (not on this machine)")
    rng = random.Random(seed)
    prefix = f"r{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", prefix)
    broker = ApacheKafka(data_dir=tmp_path / "kafka").start()
    keys = tmp_path / "keys"
    init_keys(keys)
    hook = DeployWebhook(load_verify_key("executor", keys), load_verify_key("decider", keys))
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, GATEWATCH_TOPIC_PREFIX=prefix,
               GATEWATCH_KEYS_DIR=str(keys), GATEWATCH_LOG_LEVEL="INFO")
    crashed: dict[str, int] = {}
    try:
        create_topics(broker.bootstrap, prefix)
        published = publish_inputs(broker.bootstrap)
        sup = _supervisor(env, tmp_path, hook.url)
        for name in KINDS:
            sup.start(name)
        try:
            _tend_through_outage(sup, rng.uniform(1.0, 4.0), crashed)
            assert not sup.done() and sup.alive("decide"), "the restart must come mid-run"
            broker.kill_node(1)  # SIGKILL: no clean shutdown, no flushed segments
            _tend_through_outage(sup, rng.uniform(1.0, 3.0), crashed)
            broker.start_node(1)  # same ports, same log directory
            _tend_through_outage(sup, 3.0, crashed)
            deadline = time.monotonic() + 150
            while not sup.done():
                sup.tend(publishing=False)  # from here on, a crash fails the test
                assert time.monotonic() < deadline, "pipeline did not drain after the broker restart"
                time.sleep(0.2)
        finally:
            sup.stop_all()
        print(f"workers that exited non-zero while the broker was down: {crashed or 'none'}")
        check_against_uninterrupted(broker.bootstrap, prefix, keys, tmp_path, hook, env, published)
    finally:
        hook.stop()
        broker.stop()
