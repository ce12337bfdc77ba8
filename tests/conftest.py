"""The Kafka fixtures come from gatewatch's pytest plugin (gatewatch.streams.app.pytest_plugin,
installed as a pytest11 entry point): kafka_bootstrap is KAFKA_BOOTSTRAP_SERVERS -> testcontainers
Kafka (Docker) -> Apache Kafka from Maven jars (Java) -> embedded tansu."""
from __future__ import annotations

import pytest


@pytest.fixture
def topic_prefix(gatewatch_topics):
    """A fresh topic prefix with the whole catalogue created under it, so tests never share topics."""
    return gatewatch_topics


# Session-scoped fixtures costly enough to build once per run, not once per xdist worker that happens
# to get one of their tests: their users share an xdist_group (--dist loadgroup). Measured (`pytest
# --durations`): scenario_run's fe_cwv_regress alone ~30 CPU-s; spike 15 s, built on three workers.
# A module whose own module-scoped fixture is costly marks itself (test_error_budget.py: 34 s, built on two).
SHARED_FIXTURE_GROUPS = {"scenario_run": "scenario_runs", "spike": "report_spike"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the marks into node ids
def pytest_collection_modifyitems(items):
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            if name in SHARED_FIXTURE_GROUPS:
                item.add_marker(pytest.mark.xdist_group(SHARED_FIXTURE_GROUPS[name]))
                break


# a WormSink fed fake messages (tests/worm/fake_sink.py), for the admission tests of tests/security and tests/worm
from tests.worm.fake_sink import sink  # noqa: E402, F401
