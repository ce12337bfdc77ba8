from __future__ import annotations

from pathlib import Path

import pytest

from gatewatch.streams.app.drill import DRILL_START, run_scenario
from gatewatch.streams.app.simulate import load_scenario_spec
from gatewatch.streams.runtime.policy_files import load_policy_dir

POLICY_DIR = Path(__file__).resolve().parents[2] / "configs" / "policies"


@pytest.fixture(scope="session")
def default_policy():
    return load_policy_dir(POLICY_DIR)


@pytest.fixture(scope="session")
def scenario_run(default_policy):
    """name -> replay result, each scenario generated and replayed once per session (fixed start)."""
    cache: dict[str, dict] = {}

    def run(name: str) -> dict:
        if name not in cache:
            cache[name] = run_scenario(load_scenario_spec(name), default_policy, DRILL_START)
        return cache[name]
    return run
