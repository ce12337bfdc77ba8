"""Records produced to the input topics come out of the workers exactly as `gatewatch replay` prints them."""
from collections import Counter

import pytest
from nacl.signing import SigningKey

from gatewatch.processors.policy.engine import permit_signer
from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.app.pytest_plugin import fresh_topics
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.decide import DecideStage
from gatewatch.streams.stages.ingest import IngestStage
from gatewatch.streams.stages.signals import SignalStage
from tests.pipeline.helpers import envelopes, publish_inputs, replay_outputs, run_until_idle, streamed

pytestmark = pytest.mark.integration
POLICY_DIR = "configs/policies"


@pytest.mark.parametrize("broker", ["kafka_bootstrap", "tansu_bootstrap"])
def test_streaming_equals_replay(broker, request, monkeypatch, tmp_path):
    """On the test broker (Apache Kafka where Java is) and, as the smoke test that keeps the
    embedded default honest, on tansu; inputs spread at random over every partition."""
    kafka_bootstrap = request.getfixturevalue(broker)
    topic_prefix = fresh_topics(kafka_bootstrap, monkeypatch)
    publish_inputs(kafka_bootstrap, spread_seed=2)
    policy = load_policy_dir(POLICY_DIR)
    key = SigningKey(b"\x01" * 32)
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    quiet = dict(stop=StopFlag(install=False))
    stages = [
        Worker(IngestStage(cfg, tmp_path / "ingest", batch_size=700), kafka_bootstrap, exit_when_idle_s=3, **quiet),
        Worker(SignalStage(cfg, tmp_path / "signals"), kafka_bootstrap, exit_when_idle_s=4, **quiet),
        Worker(DecideStage(POLICY_DIR, key, tmp_path / "decide", load_policy_dir), kafka_bootstrap,
               exit_when_idle_s=5, **quiet),
    ]
    run_until_idle(stages, 180)

    expected = replay_outputs(envelopes(kafka_bootstrap), policy, permit_signer(key))
    for logical in ("signals", "actions", "dlq", "gates", "attestations"):
        got = Counter(streamed(kafka_bootstrap, logical))
        want = Counter(expected.get(f"{topic_prefix}{logical}", []))
        assert want, f"replay produced no {logical}"
        assert got == want, f"{logical}: {sum((got - want).values())} extra, {sum((want - got).values())} missing"
    kinds = Counter(__import__("orjson").loads(v)["kind"] for _k, v in expected[f"{topic_prefix}actions"])
    assert kinds["abort"] >= 1, kinds  # the canary error surge and the invariant breach
