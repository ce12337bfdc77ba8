"""Scale-out by consumer groups, proven: two instances of ingest, signals and decide on Apache Kafka,
inputs spread over every partition at random (producers that key by anything), one instance of
each stage SIGKILLed at a random moment and started again (5 seeds). The distinct records on
gw.signals, gw.actions, gw.dlq and gw.attestations are exactly those `gatewatch replay` computes from the same input,
byte for byte (a restarted instance re-publishes what came after its last checkpoint: the same
bytes, which every consumer dedupes by content)."""
import os
import random
import signal
import time

import pytest

from gatewatch.processors.policy.engine import permit_signer
from gatewatch.streams.app.supervisor import Supervisor
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.pipeline.helpers import envelopes, publish_inputs, replay_outputs, streamed

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
STAGES = ("ingest", "signals", "decide")


def run_group_pipeline(bootstrap, prefix, tmp_path, rng, kills: bool):
    init_keys(tmp_path / "keys", roles=("decider",))
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, GATEWATCH_TOPIC_PREFIX=prefix,
               GATEWATCH_KEYS_DIR=str(tmp_path / "keys"), GATEWATCH_LOG_LEVEL="INFO",
               GATEWATCH_SESSION_TIMEOUT_MS="4000")
    (tmp_path / "logs").mkdir()
    sup = Supervisor(env, tmp_path / "logs")
    st = ["--state-dir", str(tmp_path / "state"), "--exit-when-idle", "6", "--assignment", "group"]
    for name, upstream in zip(STAGES, ((), ("ingest",), ("signals",))):
        for i in (1, 2):
            extra = ["--batch-size", "300"] if name == "ingest" else []
            sup.add(f"{name}-{i}", ["worker", name, *st, *extra], upstream)
    for name in sup.workers:
        sup.start(name)
    killed = []
    try:
        if kills:
            for name in STAGES:  # one member of each stage, at a random moment of the run
                time.sleep(rng.uniform(0.5, 3.0))
                victim = sup.workers[f"{name}-{rng.randint(1, 2)}"]
                if victim.proc.poll() is None:
                    victim.proc.send_signal(signal.SIGKILL)
                    victim.proc.wait()
                    killed.append(victim.name)
                sup.start(victim.name)
        deadline = time.monotonic() + 150
        while not sup.done():
            sup.tend(publishing=False)
            assert time.monotonic() < deadline, "pipeline did not drain"
            time.sleep(0.2)
    finally:
        sup.stop_all()
    return killed


def assert_equals_replay(bootstrap, prefix, tmp_path):
    policy = load_policy_dir("configs/policies")
    expected = replay_outputs(envelopes(bootstrap), policy, permit_signer(load_signing_key("decider", tmp_path / "keys")))
    for logical in ("signals", "actions", "dlq", "attestations"):
        got = set(streamed(bootstrap, logical))
        want = set(expected.get(f"{prefix}{logical}", []))
        assert want or logical == "dlq", f"replay produced no {logical}"
        assert got == want, f"{logical}: {len(got - want)} extra, {len(want - got)} missing"


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_two_instances_per_stage_sigkill_equals_replay(kafka_bootstrap, topic_prefix, tmp_path, seed):
    rng = random.Random(seed)
    publish_inputs(kafka_bootstrap, spread_seed=seed)
    killed = run_group_pipeline(kafka_bootstrap, topic_prefix, tmp_path, rng, kills=True)
    assert killed, "nothing was killed"
    assert_equals_replay(kafka_bootstrap, topic_prefix, tmp_path)
