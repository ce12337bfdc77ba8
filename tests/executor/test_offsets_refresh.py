"""Kafka drops the offsets of a group without members (static assignment never joins one)
offsets.retention.minutes after their last commit, 7 days by default; an executor quiet that long
would start again from the topic's beginning, with no ledger head left to check. The worker
commits every offset its stage returns again once a day (streams.runtime.offset_commits),
changed or not. Here the day is cut to nothing: a quiet executor then commits at every checkpoint,
where with the default it commits once."""
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
