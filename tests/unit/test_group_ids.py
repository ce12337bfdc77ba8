"""Consumer groups follow the topic prefix: two stacks on one cluster under different prefixes never
share a group (a member of one would take part in the other's rebalances, and each rebalance fences
the in-flight transactions of every member). Under the default prefix the names stay as they were."""
import pytest

from gatewatch.processors.windows import SignalConfig
from gatewatch.sinks.executor.config import ExecutorConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import load_policy_dir
from gatewatch.streams.stages.decide import DecideStage
from gatewatch.streams.stages.ingest import IngestStage
from gatewatch.streams.stages.signals import SignalStage


def groups(tmp_path) -> list[str]:
    return [IngestStage(SignalConfig(), tmp_path / "i").group, SignalStage(SignalConfig(), tmp_path / "s").group,
            DecideStage("configs/policies", None, tmp_path / "d", load_policy_dir).group, ExecutorConfig().group]


def test_the_default_prefix_keeps_the_group_names_deployments_have(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEWATCH_TOPIC_PREFIX", raising=False)
    assert groups(tmp_path) == ["gatewatch-ingest", "gatewatch-signals", "gatewatch-decide", "gatewatch-executor"]


@pytest.mark.parametrize("prefix", ["staging.", "prod-eu."])
def test_another_prefix_gives_groups_of_its_own(tmp_path, monkeypatch, prefix):
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", prefix)
    assert groups(tmp_path) == [f"{prefix}gatewatch-{s}" for s in ("ingest", "signals", "decide", "executor")]
    assert topics.group_id("trajectories") == f"{prefix}gatewatch-trajectories"
