"""gate.shadow through the replay path: generated telemetry with a shadow cohort (release 2.0.0, compared
with the baseline by the signals stage) under the default policies plus a shadow block. A clean shadow
moves the release to PLAN_OK after min_duration and the canary gate goes on; a regressing shadow
aborts it and it never reaches the canary phase."""
from __future__ import annotations

import copy

import pytest

from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.sinks.report.gates import gate_rows
from gatewatch.streams.app.drill import DRILL_START, run_scenario
from gatewatch.streams.runtime.policy_files import compose, policy_files
from tests.drill.conftest import POLICY_DIR

SHADOW_YML = """
gate:
  shadow:
    cohort: shadow
    min_duration: 5m
    required: [latency_p95_ms_delta_lo, err5xx_rate_delta_lo]
    abort:
      - {id: shadow_latency, when: "latency_p95_ms_delta_lo > 10pct", action: block_release}
      - {id: shadow_errors, when: "err5xx_rate_delta_lo > 0.5pct", action: block_release}
"""
HEALTHY = {"rps": 8, "error_rate": 0.00005, "latency_ms": {"median": 120, "p95": 320}}
SPEC = {
    "name": "shadow_then_canary", "duration": "14m", "seed": 11,
    "services": [{"name": "checkout", "routes": ["/api/cart", "/api/pay"]}],
    "cohorts": {"baseline": dict(HEALTHY), "shadow": dict(HEALTHY, release="2.0.0"),
                "canary": dict(HEALTHY, release="2.0.0")},
    "rum": {"service": "checkout", "rate": 2, "metrics": ["inp_ms"], "cohorts": ["baseline", "canary"],
            "routes": {"/": {"inp_ms": 150, "lcp_ms": 1900, "cls": 0.05, "fcp_ms": 1200, "ttfb_ms": 300}}},
    "gauges": {"every": "10s", "values": {"invariant": 0, "obs_uptime": 0.9995}},
}


@pytest.fixture(scope="module")
def shadow_policy():
    return compose([(p.name, p.read_text(encoding="utf-8")) for p in policy_files(POLICY_DIR)] + [("shadow.yml", SHADOW_YML)])


def _run(policy, spec):
    run = run_scenario(spec, policy, DRILL_START)
    assert run["dlq"] == []
    return run


def _mine(run):
    return [a for a in run["actions"] if a.get("release") == "2.0.0"]


def test_clean_shadow_reaches_the_canary_phase_after_min_duration(shadow_policy):
    run = _run(shadow_policy, SPEC)
    shadow_sigs = [s for s in run["signals"] if s["cohort"] == "shadow" and s["name"] == "latency_p95_ms_delta_lo"]
    assert shadow_sigs and all(s["release"] == "2.0.0" for s in shadow_sigs), "the signals stage compares shadow"
    acts = _mine(run)
    assert not [a for a in acts if a["kind"] in ("abort", "hook")]
    moves = [(a["gate"]["from"], a["gate"]["to"], parse_time_ms(a["ts"]) - run["start_ms"])
             for a in acts if a["kind"] == "gate"]
    assert moves[0][:2] == ("SHADOW", "PLAN_OK") and moves[0][2] >= 5 * 60_000
    assert ("PLAN_OK", "EXEC_FAST_OK") == moves[1][:2] and moves[1][2] - moves[0][2] >= 5 * 60_000
    states = [g["state"] for g in run["gates"] if g["release"] == "2.0.0"]
    assert states[0] == "SHADOW" and states[-1] == "EXEC_FAST_OK"
    assert _report_row(run) == ("EXEC_FAST_OK", "pending", "SHADOW")


def test_regressing_shadow_never_reaches_the_canary_phase(shadow_policy):
    spec = copy.deepcopy(SPEC)
    spec["phases"] = [{"at": "0s", "set": {"cohorts.shadow.latency_multiplier": 3.0}}]
    run = _run(shadow_policy, spec)
    acts = _mine(run)
    assert [(a["kind"], a["rule"]["id"], a["action"]) for a in acts] == [("abort", "shadow_latency", "block_release")]
    gates = [g for g in run["gates"] if g["release"] == "2.0.0"]
    assert {g["state"] for g in gates} == {"SHADOW"} and gates[-1]["verdict"] == "fail"
    assert _report_row(run) == ("SHADOW", "fail", None)  # the report's gates table agrees with decide


def _report_row(run):
    """The report's gates row of release 2.0.0, rebuilt from the logged actions alone: (final state,
    verdict, first transition), checked against decide's last gate record of the release."""
    timed = sorted(((parse_time_ms(a["ts"]), a) for a in run["actions"]), key=lambda x: x[0])
    [row] = [r for r in gate_rows(timed) if r["release"] == "2.0.0"]
    last = [g for g in run["gates"] if g["release"] == "2.0.0"][-1]
    assert (row["state"], row["verdict"]) == (last["state"], last["verdict"])
    return row["state"], row["verdict"], (row["transitions"] or [None])[0]


def test_without_the_block_the_shadow_cohort_is_context(default_policy):
    acts = _mine(_run(default_policy, SPEC))
    assert acts and all(a["kind"] == "gate" and a["gate"]["from"] != "SHADOW" for a in acts)
