"""Kafka drops the offsets of a group without members (static assignment never joins one)
offsets.retention.minutes after their last commit, 7 days by default. An executor quiet that long
would start again from the topic's beginning, with no ledger head left to check; a quiet signals or
decide stage would vanish from operators' lag views. The worker commits every offset its stage
returns again once a day (streams.runtime.offset_commits), changed or not, and these stages return
every partition they own. Here the day is cut to nothing: a quiet stage then commits at every
checkpoint, where with the default it commits once."""
from __future__ import annotations

import threading

import pytest
from prometheus_client import REGISTRY

from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.sinks.executor.worker import ExecutorWorker
from gatewatch.streams.runtime import offset_commits
from gatewatch.streams.runtime.keys import init_keys, load_signing_key
from tests.executor.helpers import action_record, permitted
from tests.executor.kafka_io import produce_actions

pytestmark = pytest.mark.integration


def _commits_while_quiet(cfg, ledger, bootstrap) -> float:
    """The executor's offset commits over a run that finds nothing new and stays 2 s idle."""
    def count() -> float:
        return REGISTRY.get_sample_value("gatewatch_worker_offset_commits_total", {"stage": "executor"}) or 0.0
    before = count()
    stats = ExecutorWorker(cfg, ledger, bootstrap).run(threading.Event(), exit_when_idle_s=2.0)
    assert stats.get("executed", 0) == 0
    return count() - before


def test_a_quiet_executor_commits_its_offsets_again_when_the_refresh_is_due(
        kafka_bootstrap, topic_prefix, tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    cfg = config_from_dict({"executor": {"keys_dir": str(keys), "group": f"{topic_prefix}refresh",
                                         "commit_interval": "100ms"},
                            "backends": {"dry": {"type": "dry-run"}}, "routes": [{"kind": "abort", "backend": "dry"}]})
    produce_actions(kafka_bootstrap, [permitted(load_signing_key("decider", keys), action_record(0))])
    assert ExecutorWorker(cfg, tmp_path / "ledger.db", kafka_bootstrap).run(
        threading.Event(), exit_when_idle_s=1.0).get("executed") == 1

    default = _commits_while_quiet(cfg, tmp_path / "ledger.db", kafka_bootstrap)
    monkeypatch.setattr(offset_commits, "OFFSETS_REFRESH_S", 0)
    refreshed = _commits_while_quiet(cfg, tmp_path / "ledger.db", kafka_bootstrap)
    assert default == 1 < refreshed, (default, refreshed)  # default: the first checkpoint's


def test_a_quiet_snapshot_stage_commits_its_offsets_again_when_the_refresh_is_due(
        kafka_bootstrap, topic_prefix, tmp_path, monkeypatch):
    """The same for decide (a snapshot stage: its committed offsets serve operators' lag views; its
    snapshot decides where it resumes): every owned partition's offset, not only the changed ones."""
    from gatewatch.streams.runtime.kafka import producer
    from gatewatch.streams.runtime.lifecycle import StopFlag
    from gatewatch.streams.runtime.paths import config_path
    from gatewatch.streams.runtime.policy_files import load_policy_dir
    from gatewatch.streams.runtime.topics import topic
    from gatewatch.streams.runtime.worker import Worker
    from gatewatch.streams.stages.decide import DecideStage

    p = producer(kafka_bootstrap)
    for part in range(3):  # one record per partition (not a signal: dead-lettered, its offset passed)
        p.produce(topic("signals"), value=b'{"not": "a signal"}', partition=part)
    p.flush(10)

    def quiet_run() -> float:
        def count() -> float:
            return REGISTRY.get_sample_value("gatewatch_worker_offset_commits_total", {"stage": "decide"}) or 0.0
        before = count()
        stage = DecideStage(config_path("policies"), None, tmp_path / "decide", load_policy_dir)
        stage.checkpoint_interval_s = 0.1
        Worker(stage, kafka_bootstrap, exit_when_idle_s=2.0, stop=StopFlag(install=False)).run()
        return count() - before

    quiet_run()  # reads the three records, writes the snapshots
    default = quiet_run()
    monkeypatch.setattr(offset_commits, "OFFSETS_REFRESH_S", 0)
    refreshed = quiet_run()
    assert default == 1 < refreshed, (default, refreshed)
