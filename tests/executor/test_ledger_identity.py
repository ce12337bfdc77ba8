"""An executor started on a ledger that is not the one its group's commits name (lost with its
volume, replaced, restored from an older backup) would run again every action past the commit
point and restart its receipt chain: with static assignment it refuses in one line, unless told
--new-ledger, which then commits under the new ledger so the next start passes."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import orjson
import pytest
from confluent_kafka import TopicPartition

from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.worker import ExecutorWorker
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from tests.executor.helpers import action_record, permitted
from tests.executor.kafka_io import produce_actions

pytestmark = pytest.mark.integration


def _keys_and_config(tmp_path, group: str):
    """(the decider's signing key, a dry-run executor config of `group` with its keys under tmp_path)."""
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    cfg = config_from_dict({"executor": {"keys_dir": str(keys), "group": group},
                            "backends": {"dry": {"type": "dry-run"}}, "routes": [{"kind": "abort", "backend": "dry"}]})
    return load_signing_key("decider", keys), cfg


def _executed(cfg, ledger, bootstrap, new_ledger=False) -> int:
    stats = ExecutorWorker(cfg, ledger, bootstrap, new_ledger=new_ledger).run(threading.Event(), exit_when_idle_s=1.0)
    return stats.get("executed", 0)


def test_a_lost_or_older_ledger_is_refused_and_new_ledger_adopts_one(kafka_bootstrap, topic_prefix, tmp_path):
    group = f"{topic_prefix}ledger-check"
    decider, cfg = _keys_and_config(tmp_path, group)
    keys = tmp_path / "keys"
    ledger = tmp_path / "ledger.db"
    produce_actions(kafka_bootstrap, [permitted(decider, action_record(i)) for i in range(3)])
    assert _executed(cfg, ledger, kafka_bootstrap) == 3
    shutil.copy(ledger, tmp_path / "backup.db")  # closed: sqlite folded its WAL into the file
    assert _executed(cfg, ledger, kafka_bootstrap) == 0  # the same ledger starts again

    produce_actions(kafka_bootstrap, [permitted(decider, action_record(i)) for i in range(3, 5)])
    assert _executed(cfg, ledger, kafka_bootstrap) == 2
    for other in (tmp_path / "backup.db", tmp_path / "lost.db"):  # an older backup, a fresh file
        with pytest.raises(GatewatchError, match="is not the one that committed .* --new-ledger"):
            _executed(cfg, other, kafka_bootstrap)

    assert _executed(cfg, tmp_path / "lost.db", kafka_bootstrap, new_ledger=True) == 0  # all committed
    produce_actions(kafka_bootstrap, [permitted(decider, action_record(5))])
    assert _executed(cfg, tmp_path / "lost.db", kafka_bootstrap) == 1  # adopted: starts without the flag
    with pytest.raises(GatewatchError, match="is not the one that committed"):
        _executed(cfg, ledger, kafka_bootstrap)  # its receipt 1 is another action's: now the stranger

    (tmp_path / "executor.yml").write_text(f"executor: {{group: {group}}}\n")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "GATEWATCH_KEYS_DIR": str(keys),
           "GATEWATCH_TOPIC_PREFIX": topic_prefix}
    r = subprocess.run([sys.executable, "-m", "gatewatch", "executor", "run", "--config", str(tmp_path / "executor.yml"),
                        "--ledger", str(tmp_path / "cli.db"), "--exit-when-idle", "1"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert "cli.db is not the one that committed" in last and "Traceback" not in r.stderr


def test_offsets_committed_without_a_ledger_head_are_stamped_at_start(kafka_bootstrap, topic_prefix, tmp_path):
    """Offsets committed before the check existed carry no head: a start warns and commits them again
    under its ledger's head, though no commit point moves, so a later start on another ledger is refused."""
    from gatewatch.streams.runtime.kafka import consumer

    group = f"{topic_prefix}ledger-upgrade"
    decider, cfg = _keys_and_config(tmp_path, group)
    produce_actions(kafka_bootstrap, [permitted(decider, action_record(i)) for i in range(2)])
    assert _executed(cfg, tmp_path / "a.db", kafka_bootstrap) == 2
    old = consumer(kafka_bootstrap, group)
    try:  # the same offsets as an executor of the previous version left them: no metadata
        done = [tp for tp in old.committed([TopicPartition(topics.topic("actions"), p) for p in range(8)], timeout=30)
                if tp.offset >= 0 and tp.error is None]
        old.commit(offsets=[TopicPartition(tp.topic, tp.partition, tp.offset) for tp in done], asynchronous=False)
    finally:
        old.close()
    assert done and _executed(cfg, tmp_path / "a.db", kafka_bootstrap) == 0  # nothing new: no commit point moves
    with pytest.raises(GatewatchError, match="is not the one that committed"):
        _executed(cfg, tmp_path / "b.db", kafka_bootstrap)


def _unfinished(path) -> list[str]:
    """The actions a ledger began and has no RESULT for (read only: nothing is sealed)."""
    led = Ledger(path, lambda body: pytest.fail("the ledger was appended to"))
    try:
        return [row.action_id for row in led.in_flight()]
    finally:
        led.close()


def _head_seq(path) -> int:
    led = Ledger(path, lambda body: pytest.fail("the ledger was appended to"))
    try:
        return led.head()[0]
    finally:
        led.close()


def test_the_check_comes_before_a_foreign_ledgers_unfinished_actions_resume(kafka_bootstrap, topic_prefix, tmp_path):
    """An executor killed mid-effect leaves an INTENT without a RESULT, which the next start on that
    ledger runs again. Started on that ledger, an executor whose commits name another must refuse
    before it resumes anything: the action stays unfinished."""
    group = f"{topic_prefix}ledger-resume"
    decider, cfg = _keys_and_config(tmp_path, group)
    produce_actions(kafka_bootstrap, [permitted(decider, action_record(i)) for i in range(2)])
    assert _executed(cfg, tmp_path / "ours.db", kafka_bootstrap) == 2  # the group's commits name ours.db

    (tmp_path / "other.yml").write_text(f"executor: {{group: {topic_prefix}other}}\n"
                                        "backends: {dry: {type: dry-run}}\nroutes: [{kind: abort, backend: dry}]\n")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "GATEWATCH_KEYS_DIR": str(tmp_path / "keys"),
           "GATEWATCH_TOPIC_PREFIX": topic_prefix, "GATEWATCH_EXECUTOR_CRASH_AFTER_EFFECTS": "1"}
    r = subprocess.run([sys.executable, "-m", "gatewatch", "executor", "run", "--config", str(tmp_path / "other.yml"),
                        "--ledger", str(tmp_path / "other.db"), "--exit-when-idle", "5"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr
    unfinished = _unfinished(tmp_path / "other.db")
    assert len(unfinished) == 1

    with pytest.raises(GatewatchError, match="is not the one that committed"):
        _executed(cfg, tmp_path / "other.db", kafka_bootstrap)
    assert _unfinished(tmp_path / "other.db") == unfinished


def test_the_committed_head_follows_the_ledger_while_a_slow_action_pins_the_commit_point(
        kafka_bootstrap, topic_prefix, tmp_path):
    """The ledger's head is committed when it moves, not only when a commit point does: while one
    action's effect hangs (its INTENT written, the commit point held at its offset), the group's
    commit already names the INTENT (so a ledger restored from before it would be refused at start)."""
    from gatewatch.streams.runtime.kafka import consumer
    from tests.executor.webhook_server import WebhookServer

    group = f"{topic_prefix}ledger-pinned"
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    decider = load_signing_key("decider", keys)
    hang, release = threading.Event(), threading.Event()

    def respond(_n):
        if hang.is_set():
            release.wait(60)
        return 200, 0.0

    reader = consumer(kafka_bootstrap, group)
    parts = [TopicPartition(topics.topic("actions"), p) for p in range(8)]

    def committed() -> list:
        return [tp for tp in reader.committed(parts, timeout=30) if tp.offset >= 0]

    def wait_for(what, timeout_s=30.0):
        deadline = time.monotonic() + timeout_s
        while not (got := what()):
            assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s"
            time.sleep(0.1)
        return got

    stop = threading.Event()
    with WebhookServer(respond=respond) as hook:
        cfg = config_from_dict({"executor": {"keys_dir": str(keys), "group": group, "commit_interval": "100ms"},
                                "backends": {"hook": {"type": "webhook", "url": hook.url, "deadline": "90s",
                                                      "timeout": "90s"}},
                                "routes": [{"kind": "abort", "backend": "hook"}]})
        worker = ExecutorWorker(cfg, tmp_path / "ledger.db", kafka_bootstrap)
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            produce_actions(kafka_bootstrap, [permitted(decider, action_record(0))])
            [point] = wait_for(lambda: [tp for tp in committed() if tp.offset == 1])
            hang.set()
            produce_actions(kafka_bootstrap, [permitted(decider, action_record(1))])
            wait_for(lambda: len(hook.requests) == 2)  # action 1's INTENT is in the ledger; its effect hangs
            seq = _head_seq(tmp_path / "ledger.db")
            [now] = wait_for(lambda: [tp for tp in committed() if orjson.loads(tp.metadata)["ledger_seq"] == seq])
            assert now.offset == point.offset == 1  # the commit point did not move: the head did
        finally:
            release.set()
            stop.set()
            thread.join(60)
            reader.close()
