"""Acceptance (broker): OTLP records on the Collector's topic, JSON on partition 0 and protobuf on
partition 1, go through the ingest and signal workers to the same signals (minus `source`) as
the equivalent request samples on gw.metrics; and the streamed signals equal `gatewatch replay`'s."""
import base64
from collections import Counter

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.app.replay import envelope_from_dict, sources_of
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import admin, producer
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.ingest import SKIPPED, IngestStage
from gatewatch.streams.stages.signals import SignalStage
from tests.inputs import otlp_gen
from tests.inputs.test_otlp import OPTS
from tests.inputs.test_otlp_replay import run
from tests.pipeline.helpers import read_topic, run_until_idle

pytestmark = pytest.mark.integration


def test_otlp_through_the_broker(kafka_bootstrap, topic_prefix, tmp_path, monkeypatch):
    otlp_topic = f"{topic_prefix}otlp_spans"
    monkeypatch.setenv("GATEWATCH_OTLP_TOPIC", otlp_topic)
    a = admin(kafka_bootstrap)
    for f in a.create_topics([NewTopic(otlp_topic, 2, 1)]).values():
        f.result()
    batches = otlp_gen.batches(60)
    p = producer(kafka_bootstrap)
    envs = []
    for i, b in enumerate(batches):
        ts = otlp_gen.kafka_ts_ms(b)
        p.produce(otlp_topic, value=otlp_gen.otlp_json(b, i), partition=0, timestamp=ts)
        p.produce(otlp_topic, value=otlp_gen.otlp_proto(b, i), partition=1, timestamp=ts)
        p.produce(topics.topic("metrics"), value=otlp_gen.requests_json(b), partition=0, timestamp=ts)
        envs += [{"topic": otlp_topic, "partition": 0, "offset": i, "ts": ts, "key": None,
                  "payload": otlp_gen.otlp_json(b, i).decode()},
                 {"topic": otlp_topic, "partition": 1, "offset": i, "ts": ts, "key": None,
                  "payload_b64": base64.b64encode(otlp_gen.otlp_proto(b, i)).decode()},
                 {"topic": topics.topic("metrics"), "partition": 0, "offset": i, "ts": ts, "key": None,
                  "payload": otlp_gen.requests_json(b).decode()}]
    assert p.flush(10) == 0

    policy = load_policy_dir("configs/policies")
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    quiet = dict(stop=StopFlag(install=False))
    ingest = IngestStage(cfg, tmp_path / "ingest", inputs=OPTS, batch_size=50)
    workers = [Worker(ingest, kafka_bootstrap, exit_when_idle_s=5, **quiet),
               Worker(SignalStage(cfg, tmp_path / "signals"), kafka_bootstrap, exit_when_idle_s=7, **quiet)]
    not_server = SKIPPED.labels("otlp", "not_server")._value.get()
    run_until_idle(workers, 120)
    assert (otlp_topic, 1) in ingest.aggs
    # both partitions' non-server spans were counted (the metric the worker exposes)
    assert SKIPPED.labels("otlp", "not_server")._value.get() - not_server == \
        2 * sum(s["kind"] != 2 for b in batches for s in b)

    # one value per scope: the three partitions carry the same requests, each counted once
    streamed = [v for _p, _o, _k, v, _ts in read_topic(kafka_bootstrap, "signals")]
    alone, _ = run([e for e in envs if e["topic"] == topics.topic("metrics")], policy)
    def key(d):
        return d["name"], d["scope"], d["cohort"], d["ts"]
    one = {key(d): d for d in map(orjson.loads, (v for t, _k, v in alone if t == topics.topic("signals")))}
    rates = [d for d in map(orjson.loads, streamed) if d["name"] == "request_rate"]
    assert len(rates) > 20 and all(d["samples"] == 3 * one[key(d)]["samples"] for d in rates)

    # and the same bytes as gatewatch replay over the same records
    envs = sorted(envs, key=lambda e: (e["topic"], e["partition"], e["offset"]))
    replayed, _ = run(envs, policy, sources=sources_of([envelope_from_dict(e) for e in envs]))
    assert Counter(streamed) == Counter(v for t, _k, v in replayed if t == topics.topic("signals"))
    assert not read_topic(kafka_bootstrap, "dlq")
