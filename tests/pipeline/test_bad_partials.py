"""A gw.partials record the signals task cannot apply (not JSON, a corrupt histogram, a bucket
without its key) goes to gw.dlq as bad_partial with where it is wrong; the signals worker goes on,
and its signals are those of `gatewatch replay` of the same inputs (Apache Kafka where Java is)."""
from collections import Counter

import orjson
import pytest

from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import ordered_producer
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.ingest import IngestStage
from gatewatch.streams.stages.signals import SignalStage
from tests.pipeline.helpers import envelopes, publish_inputs, read_topic, replay_outputs, run_until_idle, streamed

pytestmark = pytest.mark.integration
GOOD = {"source": "metrics:0", "topic": "metrics", "partition": 0, "first_offset": 0, "last_offset": 0,
        "next_offset": 1, "records": 1, "rejected": 0, "max_event_ms": 1, "watermark_ms": None,
        "caught_up": False, "shapes": {}, "first_shapes": [],
        "buckets": [{"d": "requests", "k": ["checkout", "canary", "1.0"], "b": 0, "n": 1, "e": 0,
                     "h": {"z": 0, "p": [10, 1], "n": []}}]}
BAD = [b"{not json",
       orjson.dumps({**GOOD, "buckets": [{**GOOD["buckets"][0], "h": {"z": 0, "p": [10], "n": []}}]}),
       orjson.dumps({**GOOD, "buckets": [{k: v for k, v in GOOD["buckets"][0].items() if k != "k"}]})]


def test_bad_partials_go_to_the_dlq_and_the_signals_are_replays(kafka_bootstrap, topic_prefix, tmp_path):
    publish_inputs(kafka_bootstrap)
    p = ordered_producer(kafka_bootstrap)
    for value in BAD:  # ahead of ingest's partials, on the partition of task 0
        p.produce(topics.topic("partials"), key=b"metrics:0", value=value, partition=0)
    assert p.flush(30) == 0
    policy = load_policy_dir("configs/policies")
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    quiet = dict(stop=StopFlag(install=False))
    run_until_idle([Worker(IngestStage(cfg, tmp_path / "ingest", batch_size=500), kafka_bootstrap,
                           exit_when_idle_s=3, **quiet),
                    Worker(SignalStage(cfg, tmp_path / "signals"), kafka_bootstrap, exit_when_idle_s=4, **quiet)], 180)

    dlq = [orjson.loads(v) for _p, _o, _k, v, _ts in read_topic(kafka_bootstrap, "dlq")]
    bad = [d for d in dlq if d["reason"] == "bad_partial"]
    assert [(d["source_topic"], d["partition"], d["offset"]) for d in bad] == \
        [(topics.topic("partials"), 0, i) for i in range(len(BAD))]
    assert bad[0]["detail"].startswith("not JSON") and "odd length" in bad[1]["detail"] and "`k`" in bad[2]["detail"]
    assert [d["payload"] for d in bad] == [v.decode() for v in BAD]  # the record as it was, for a look
    want = Counter(replay_outputs(envelopes(kafka_bootstrap), policy, None)[topics.topic("signals")])
    assert want and Counter(streamed(kafka_bootstrap, "signals")) == want
