"""SIGKILL the ingest, signal and decide workers mid-stream and restart them: the signals and actions
equal an uninterrupted run's (here: replay's), with nothing lost and nothing double counted."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from gatewatch.processors.policy.engine import permit_signer
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.pipeline.helpers import envelopes, publish_inputs, replay_outputs, streamed

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
STAGES = ("ingest", "signals", "decide")


def _start(stage, env, tmp_path):
    return subprocess.Popen(
        [sys.executable, "-m", "gatewatch", "worker", stage, "--state-dir", str(tmp_path / "state"),
         "--exit-when-idle", "3", *(["--batch-size", "400"] if stage == "ingest" else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{stage}.log", "ab"))


@pytest.mark.parametrize("seed", [1])
def test_sigkill_workers_mid_stream(kafka_bootstrap, topic_prefix, tmp_path, seed):
    rng = random.Random(seed)
    init_keys(tmp_path / "keys", roles=("decider",))
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_KEYS_DIR=str(tmp_path / "keys"), GATEWATCH_LOG_LEVEL="WARNING")
    publish_inputs(kafka_bootstrap)
    procs = {s: _start(s, env, tmp_path) for s in STAGES}
    try:
        _chaos_then_drain(procs, rng, env, tmp_path)
    finally:  # never leave workers behind when an assertion fails
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    policy = load_policy_dir("configs/policies")
    expected = replay_outputs(envelopes(kafka_bootstrap), policy,
                              permit_signer(load_signing_key("decider", tmp_path / "keys")))
    # attestations too: a restarted decide restores its engine from the snapshot, so the pre-state
    # it attests hashes as an uninterrupted run's does
    for logical in ("signals", "actions", "attestations"):
        got = set(streamed(kafka_bootstrap, logical))      # at-least-once: duplicates allowed,
        want = set(expected[f"{topic_prefix}{logical}"])   # but nothing missing, nothing different
        assert got == want, (f"{logical}: {len(got - want)} unexpected, {len(want - got)} missing; e.g.\n"
                             + "\n".join(v.decode()[:400] for _k, v in sorted(got - want)[:3]) + "\nvs\n"
                             + "\n".join(v.decode()[:400] for _k, v in sorted(want - got)[:3]))


def _chaos_then_drain(procs, rng, env, tmp_path):
    kills = 0
    deadline = time.monotonic() + 60
    # kill a random stage every 1.5-4 s, five times, restarting it at once
    for _ in range(5):
        time.sleep(rng.uniform(1.0, 2.5))
        stage = rng.choice(STAGES)
        if procs[stage].poll() is None:
            procs[stage].send_signal(signal.SIGKILL)
            procs[stage].wait()
            kills += 1
        procs[stage] = _start(stage, env, tmp_path)
    for stage, p in procs.items():
        assert p.wait(max(5, deadline - time.monotonic() + 60)) == 0, (tmp_path / f"{stage}.log").read_text()[-2000:]
    assert kills >= 3
    # drain: a downstream stage may have gone idle while an upstream one was restarting
    for stage in STAGES:
        procs[stage] = _start(stage, env, tmp_path)
        assert procs[stage].wait(90) == 0, (tmp_path / f"{stage}.log").read_text()[-2000:]
