"""Exactly-once on Apache Kafka: an ingest transaction aborted mid-batch never reaches the signals
stage (read_committed), and the committed partials of every source cover its offsets exactly once."""

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from nacl.signing import SigningKey

from gatewatch.processors.policy.engine import permit_signer
from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.consuming import watermarks
from gatewatch.streams.runtime.kafka import consumer
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.ingest import IngestStage
from gatewatch.streams.stages.signals import SignalStage
from tests.pipeline.helpers import envelopes, publish_inputs, replay_outputs, run_until_idle, streamed

pytestmark = pytest.mark.integration


class CrashesMidBatch(IngestStage):
    """Produces its second batch's partials, then fails before the commit."""
    batches = 0

    def process(self, worker, msgs):
        super().process(worker, msgs)
        self.batches += 1
        if self.batches == 2:
            worker.producer.flush(10)  # the partials are on the broker, inside the open transaction
            raise RuntimeError("crash between produce and commit")


def partials(bootstrap: str, isolation: str) -> list[dict]:
    name = topics.topic("partials")
    c = consumer(bootstrap, "read-partials", **{"isolation.level": isolation})
    try:
        parts = c.list_topics(name, timeout=10).topics[name].partitions
        ends = {p: watermarks(c, name, p)[1] for p in parts}
        c.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in parts])
        out, done = [], {p for p, e in ends.items() if e == 0}
        while len(done) < len(ends):
            for m in c.consume(1000, 0.5):
                if m.error() is None:
                    out.append(orjson.loads(m.value()))
            for tp in c.position([TopicPartition(name, p) for p in parts]):
                if tp.offset >= ends[tp.partition]:
                    done.add(tp.partition)
        return out
    finally:
        c.close()


def assert_each_offset_once(committed: list[dict]) -> None:
    """Per (source, task): the committed partials' offset ranges are disjoint and contiguous."""
    ranges: dict[tuple, list] = {}
    for p in committed:
        if p["first_offset"] is not None:
            ranges.setdefault((p["source"], p["task"]), []).append((p["first_offset"], p["last_offset"]))
    assert ranges
    for key, rs in ranges.items():
        rs.sort()
        for (a0, a1), (b0, b1) in zip(rs, rs[1:]):
            assert b0 == a1 + 1, f"{key}: {a0}..{a1} then {b0}..{b1}"


def test_aborted_ingest_transaction_never_reaches_signals(kafka_bootstrap, topic_prefix, tmp_path):
    publish_inputs(kafka_bootstrap, spread_seed=11)
    policy = load_policy_dir("configs/policies")
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    crashing = Worker(CrashesMidBatch(cfg, tmp_path / "ingest", batch_size=400), kafka_bootstrap,
                      stop=StopFlag(install=False))
    with pytest.raises(RuntimeError, match="between produce and commit"):
        crashing.run()
    uncommitted, committed = partials(kafka_bootstrap, "read_uncommitted"), partials(kafka_bootstrap, "read_committed")
    aborted = {p["id"] for p in uncommitted} - {p["id"] for p in committed}
    assert aborted, "the second batch's partials were written, inside the aborted transaction"

    quiet = dict(stop=StopFlag(install=False))
    stages = [Worker(IngestStage(cfg, tmp_path / "ingest", batch_size=400), kafka_bootstrap, exit_when_idle_s=3,
                     **quiet),  # restarts from the committed offsets
              Worker(SignalStage(cfg, tmp_path / "signals"), kafka_bootstrap, exit_when_idle_s=4, **quiet)]
    run_until_idle(stages, 120)
    assert_each_offset_once(partials(kafka_bootstrap, "read_committed"))
    want = replay_outputs(envelopes(kafka_bootstrap), policy, permit_signer(SigningKey(b"\1" * 32)))
    assert set(streamed(kafka_bootstrap, "signals")) == set(want[f"{topic_prefix}signals"])


class RevokeRacesBatch(IngestStage):
    """Its second batch arrives after one of the batch's partitions was revoked in the consume call
    that returned it (the consumer serves the rebalance callback inside consume)."""
    batches = 0
    revoked: tuple[str, int] | None = None

    def process(self, worker, msgs):
        self.batches += 1
        if self.batches == 2:
            self.revoked = (msgs[0].topic(), msgs[0].partition())
            self.on_revoke(worker, [TopicPartition(*self.revoked)])
        return super().process(worker, msgs)


def test_a_revoke_racing_the_batch_commits_the_rest_and_leaves_that_partition_to_its_next_owner(
        kafka_bootstrap, topic_prefix, tmp_path):
    publish_inputs(kafka_bootstrap)
    policy = load_policy_dir("configs/policies")
    stage = RevokeRacesBatch(SignalConfig.from_policy(policy.doc, policy.hash), tmp_path / "ingest", batch_size=400)
    worker = Worker(stage, kafka_bootstrap, exit_when_idle_s=2, stop=StopFlag(install=False))
    worker.run()  # before the fix: KeyError in offset_metadata, the transaction aborted, the worker stopped
    assert stage.batches > 2 and stage.revoked is not None
    c = consumer(kafka_bootstrap, stage.group)
    try:
        inputs = [TopicPartition(name, p) for name in (topics.topic(lg) for lg in ("metrics", "rum", "cdc"))
                  for p in c.list_topics(name, timeout=10).topics[name].partitions]
        ends = {(tp.topic, tp.partition): watermarks(c, tp.topic, tp.partition)[1] for tp in inputs}
        got = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in c.committed(inputs, timeout=10)}  # none: 0
    finally:
        c.close()
    committed = got.pop(stage.revoked)
    assert got == {k: v for k, v in ends.items() if k != stage.revoked}  # the rest committed to its end
    mine = [p for p in partials(kafka_bootstrap, "read_committed") if p["partition"] == stage.revoked[1]
            and topics.topic(p["topic"]) == stage.revoked[0] and p["first_offset"] is not None]
    # nothing of it committed past what its partials covered: the next owner reads the rest
    assert committed <= max((p["last_offset"] for p in mine), default=-1) + 1
