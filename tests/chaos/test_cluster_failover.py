"""Chaos on a 3-node Apache Kafka cluster (replication factor 3, min.insync.replicas 2): SIGKILL the
leader of a gw.partials partition mid-run, start it again, then the leader of a gw.actions partition
(one node down at a time), with every worker running. The end state equals an uninterrupted computation of the same input: the same
signals and action ids, every action executed exactly once, the WORM log holding each action and
receipt once with the same decision root, and an evidence bundle that verifies."""
import os
import random
import time
import uuid

import pytest

from gatewatch.streams.app.pytest_plugin import three_node_cluster
from gatewatch.streams.app.webhook import DeployWebhook
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import admin, create_topics
from gatewatch.streams.runtime.keys import init_keys, load_verify_key
from tests.chaos.test_chaos import KINDS, _supervisor, check_against_uninterrupted
from tests.pipeline.helpers import publish_inputs

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.xdist_group("kafka_cluster")]


@pytest.fixture(scope="module")
def kafka_cluster(request):
    """The plugin's, stopped after this module: at session scope its three JVMs idled until the
    worker's last test (the only cluster tests are here)."""
    yield from three_node_cluster(request)


def leader_of(bootstrap: str, logical: str, partition: int = 0) -> int:
    md = admin(bootstrap).list_topics(topics.topic(logical), timeout=10)
    return md.topics[topics.topic(logical)].partitions[partition].leader


def _tend(sup, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for w in sup.workers.values():
            if w.proc is not None and w.proc.poll() is not None:
                sup.start(w.name)  # exited (idle, or gave up during the election): start again
        time.sleep(0.2)


@pytest.mark.parametrize("seed", [3])
def test_leaders_sigkilled_mid_run(kafka_cluster, tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    prefix = f"f{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", prefix)
    bs = kafka_cluster.bootstrap
    create_topics(bs, prefix)  # replication factor 3: the cluster has 3 brokers
    assert len(admin(bs).list_topics(timeout=10).topics[f"{prefix}partials"].partitions[0].replicas) == 3
    keys = tmp_path / "keys"
    init_keys(keys)
    hook = DeployWebhook(load_verify_key("executor", keys), load_verify_key("decider", keys))
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bs, GATEWATCH_TOPIC_PREFIX=prefix, GATEWATCH_KEYS_DIR=str(keys),
               GATEWATCH_LOG_LEVEL="INFO")
    killed = []
    try:
        published = publish_inputs(bs)
        sup = _supervisor(env, tmp_path, hook.url)
        for name in KINDS:
            sup.start(name)
        try:
            for logical in ("partials", "actions"):  # one node down at a time: a rolling failure
                _tend(sup, rng.uniform(1.0, 3.0))
                node = leader_of(bs, logical)
                kafka_cluster.kill_node(node)
                killed.append(node)
                _tend(sup, rng.uniform(2.0, 4.0))  # leadership moves to an in-sync replica
                kafka_cluster.start_node(node)
            deadline = time.monotonic() + 150
            while not sup.done():
                sup.tend(publishing=False)
                assert time.monotonic() < deadline, "pipeline did not drain after the leaders died"
                time.sleep(0.2)
        finally:
            sup.stop_all()
        print(f"killed nodes {killed}")
        check_against_uninterrupted(bs, prefix, keys, tmp_path, hook, env, published)
    finally:
        hook.stop()
        for node in killed:  # a failed run still leaves the cluster whole for the next test
            kafka_cluster.start_node(node)
