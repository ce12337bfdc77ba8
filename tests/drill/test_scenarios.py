"""Every scenario's expect block holds through the replay path under the default policies."""
from __future__ import annotations

import io

import pytest

from gatewatch.processors.scenarios import Scenario, check_expect, expectations
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.streams.app.drill import DRILL_START
from gatewatch.streams.app.simulate import (
    load_scenario_spec,
    scenario_names,
    write_envelopes,
)

ISSUE_8 = ["healthy_canary", "traffic_spike", "cdc_freeze", "schema_drift", "fe_cwv_regress",
           "invariant_breach", "latency_regression"]


def test_issue_scenarios_exist():
    assert set(ISSUE_8) <= set(scenario_names())


@pytest.mark.parametrize("name", scenario_names())
def test_expect_block_holds(name, scenario_run):
    spec = load_scenario_spec(name)
    exp = expectations(spec)
    assert exp["actions"] and exp["absent"], "a scenario states what it must and must not cause"
    run = scenario_run(name)
    assert run["dlq"] == [], "generated telemetry is valid input"
    check = check_expect(spec, run["actions"], run["start_ms"])
    failed = [e["pattern"] for e in check["expected"] if not e["ok"]]
    unexpected = [(a["pattern"], a["observed"][:1]) for a in check["absent"] if not a["ok"]]
    assert check["ok"], f"missing {failed}, unexpected {unexpected}"
    for e in check["expected"]:
        assert e["detect_s"] >= 0, "an action caused by the fault comes after it"


def test_healthy_canary_promotes_and_never_aborts(scenario_run):
    acts = scenario_run("healthy_canary")["actions"]
    assert [a["kind"] for a in acts].count("promote") == 1
    assert not [a for a in acts if a["kind"] in ("abort", "hook")]


def test_fe_cwv_regress_spans_24h_with_few_records(scenario_run):
    run = scenario_run("fe_cwv_regress")
    assert run["records"] < 50_000
    abort = [a for a in run["actions"] if a["rule"]["id"] == "inp_regression"][0]
    assert parse_time_ms(abort["ts"]) - run["start_ms"] >= 24 * 3600 * 1000


def _bytes(spec, **kw):
    buf = io.BytesIO()
    write_envelopes(Scenario(spec, start_ms=parse_time_ms(DRILL_START), **kw), buf)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["traffic_spike", "cdc_freeze"])
def test_seeded_and_deterministic(name):
    spec = load_scenario_spec(name)
    a, b = _bytes(spec, duration="3m"), _bytes(spec, duration="3m")
    assert a == b
    assert _bytes(spec, duration="3m", seed=999) != a
