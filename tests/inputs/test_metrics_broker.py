"""Acceptance (broker, issue 22): the same traffic as OTLP metrics on the Collector's metrics topic
(JSON on partition 0, protobuf on partition 1) and as prometheus-kafka-adapter samples on
gw.metrics goes through the ingest and signal workers on Apache Kafka to the same signals as
`gatewatch replay` computes from those records, byte for byte, with nothing dead-lettered."""
from collections import Counter

import pytest
from confluent_kafka.admin import NewTopic

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import admin, producer
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.ingest import IngestStage
from gatewatch.streams.stages.signals import SignalStage
from tests.inputs import metrics_gen as gen
from tests.inputs.test_metrics_equivalence import OPTS, run
from tests.pipeline.helpers import read_topic, run_until_idle

pytestmark = pytest.mark.integration


def test_metrics_through_the_broker(kafka_bootstrap, topic_prefix, tmp_path, monkeypatch):
    metrics_topic = f"{topic_prefix}otlp_metrics"
    monkeypatch.setenv("GATEWATCH_OTLP_METRICS_TOPIC", metrics_topic)
    a = admin(kafka_bootstrap)  # kept: a collected client cancels its futures
    for f in a.create_topics([NewTopic(metrics_topic, 2, 1)]).values():
        f.result()
    reqs = gen.traffic(steps=40)
    as_json, as_proto = gen.otlp_records(reqs), gen.otlp_records(reqs, gen.otlp_proto)
    # one cumulative series' exports alternate between the partitions and the encodings
    records = [(metrics_topic, i % 2, ts, (as_json if i % 2 == 0 else as_proto)[i][1])
               for i, (ts, _v) in enumerate(as_json)]
    records += [(topics.topic("metrics"), 0, ts, v) for ts, v in gen.prometheus_records(reqs)]
    p, offsets, envs = producer(kafka_bootstrap), Counter(), []
    for topic, part, ts, value in records:
        p.produce(topic, value=value, partition=part, timestamp=ts)
        envs += gen.envelopes([(ts, value)], topic)
        envs[-1]["partition"], envs[-1]["offset"] = part, offsets[(topic, part)]
        offsets[(topic, part)] += 1
    assert p.flush(10) == 0

    policy = load_policy_dir("configs/policies")
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    quiet = dict(stop=StopFlag(install=False))
    workers = [Worker(IngestStage(cfg, tmp_path / "ingest", inputs=OPTS, batch_size=50), kafka_bootstrap,
                      exit_when_idle_s=5, **quiet),
               Worker(SignalStage(cfg, tmp_path / "signals"), kafka_bootstrap, exit_when_idle_s=7, **quiet)]
    run_until_idle(workers, 180)

    streamed = [v for _p, _o, _k, v, _ts in read_topic(kafka_bootstrap, "signals")]
    envs = sorted(envs, key=lambda e: (e["topic"], e["partition"], e["offset"]))
    replayed, _ = run(envs, policy)
    want = [v for t, _k, v in replayed if t == topics.topic("signals")]
    assert len(want) > 100 and Counter(streamed) == Counter(want)
    assert not read_topic(kafka_bootstrap, "dlq")
