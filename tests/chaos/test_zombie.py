"""Zombie fencing (KIP-447): an ingest member is frozen (SIGSTOP) inside an open transaction whose
partials are already on the broker, the group gives its partitions to another member, and the
frozen one is thawed (SIGCONT). Its late transaction is fenced: it never commits, read_committed
readers never see its partials, and the committed partials of every source cover its offsets
exactly once. (GATEWATCH_INGEST_HOLD_BEFORE_COMMIT_S holds the third batch's transaction open, so
the freeze lands inside it every time.)"""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.test_transactions import assert_each_offset_once, partials
from tests.pipeline.helpers import publish_inputs

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


def _ingest(env, tmp_path, name):
    return subprocess.Popen([sys.executable, "-m", "gatewatch", "worker", "ingest", "--assignment", "group",
                             "--state-dir", str(tmp_path / name), "--batch-size", "200", "--exit-when-idle", "8"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"{name}.log", "wb"))


def test_frozen_ingest_member_is_fenced(kafka_bootstrap, topic_prefix, tmp_path):
    publish_inputs(kafka_bootstrap, spread_seed=5)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_LOG_LEVEL="INFO", GATEWATCH_SESSION_TIMEOUT_MS="3000")
    a = _ingest(dict(env, GATEWATCH_INGEST_HOLD_BEFORE_COMMIT_S="30"), tmp_path, "a")
    try:
        deadline = time.monotonic() + 60
        while "holding the open transaction" not in (tmp_path / "a.log").read_text():
            assert time.monotonic() < deadline and a.poll() is None, (tmp_path / "a.log").read_text()[-2000:]
            time.sleep(0.1)
        a.send_signal(signal.SIGSTOP)  # frozen inside the transaction
        b = _ingest(env, tmp_path, "b")  # separate state: what a wrote locally does not help b
        time.sleep(15)  # a's session (3 s) and transaction (10 s) time out; b owns every partition
        a.send_signal(signal.SIGCONT)
        assert b.wait(180) == 0, (tmp_path / "b.log").read_text()[-2000:]
        assert a.wait(60) != 0  # the thawed zombie's commit is refused: it stops
    finally:
        for p in (a,) + ((b,) if "b" in locals() else ()):
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
    log_a = (tmp_path / "a.log").read_text()
    assert "transaction aborted" in log_a and "transaction failed" in log_a, log_a[-2000:]
    assert_each_offset_once(partials(kafka_bootstrap, "read_committed"))
    # the zombie's partials are on the broker, in its aborted transaction, invisible to read_committed
    # (b cut the same records into partials with the same content ids: compare counts, not ids)
    assert len(partials(kafka_bootstrap, "read_uncommitted")) > len(partials(kafka_bootstrap, "read_committed"))
