"""SIGKILL serve and the decide stage mid-stream and restart them: once the pipeline drained, serve
holds exactly the gates an uninterrupted run publishes last per key (here: replay's), nothing lost."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

from gatewatch.processors.policy.engine import permit_signer
from gatewatch.streams.app.serve.materialize import wait_until
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.pipeline.helpers import envelopes, publish_inputs, replay_outputs
from tests.serve.helpers import ServeProc, http

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
STAGES = ("ingest", "signals", "decide")


def _start(stage, env, tmp_path):
    return subprocess.Popen(
        [sys.executable, "-m", "gatewatch", "worker", stage, "--state-dir", str(tmp_path / "state"),
         "--exit-when-idle", "3"], env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{stage}.log", "ab"))


def test_kill_serve_and_decide_mid_stream_loses_no_gate(kafka_bootstrap, topic_prefix, tmp_path):
    init_keys(tmp_path / "keys", roles=("decider",))
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_KEYS_DIR=str(tmp_path / "keys"), GATEWATCH_LOG_LEVEL="WARNING")
    publish_inputs(kafka_bootstrap)
    procs = {s: _start(s, env, tmp_path) for s in STAGES}
    serve = ServeProc(kafka_bootstrap)
    try:
        for pause in (2.0, 1.5):
            time.sleep(pause)
            serve.kill()
            if procs["decide"].poll() is None:
                procs["decide"].send_signal(signal.SIGKILL)
                procs["decide"].wait()
            procs["decide"] = _start("decide", env, tmp_path)
            serve = ServeProc(kafka_bootstrap)
        for stage in STAGES:  # drain, upstream first: a stage may have idled out behind a restart
            assert procs[stage].wait(120) == 0, (tmp_path / f"{stage}.log").read_text()[-2000:]
            procs[stage] = _start(stage, env, tmp_path)
            assert procs[stage].wait(120) == 0, (tmp_path / f"{stage}.log").read_text()[-2000:]
        expected = replay_outputs(envelopes(kafka_bootstrap), load_policy_dir("configs/policies"),
                                  permit_signer(load_signing_key("decider", tmp_path / "keys")))
        last = {k: orjson.loads(v) for k, v in expected[f"{topic_prefix}gates"]}
        assert last, "the scenario published no gate record"
        want = [last[k] for k in sorted(last, key=lambda k: tuple(k.decode().rsplit("@", 1)))]
        got = []

        def caught_up() -> bool:
            got[:] = http("GET", serve.url + "/v1/gates")[1]["gates"]
            return got == want

        assert wait_until(caught_up, 60, 0.5), (len(got), len(want), [g["verdict"] for g in got])
    finally:
        serve.stop()
        for p in procs.values():
            if p.poll() is None:
                p.kill()
