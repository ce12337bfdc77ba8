"""gatewatch drill: every default hook PASSes; the report's shape; missing scenarios FAIL."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

import gatewatch.streams.app.drill as drill
from gatewatch.streams.app.simulate import load_scenario_spec, scenario_names
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.drill.conftest import POLICY_DIR


@pytest.fixture
def cached_runs(monkeypatch, scenario_run):
    """The drill reuses the session's scenario runs (same processors, same fixed start)."""
    monkeypatch.setattr(drill, "run_scenario", lambda spec, policy, start: scenario_run(spec["name"]))


def test_every_default_hook_passes(default_policy, cached_runs):
    rep = drill.run_drill(default_policy)
    hooks = {h["hook"] for h in drill.policy_hooks(default_policy)}
    assert {r["hook"] for r in rep["hooks"] if r["kind"] == "hook"} == hooks and len(hooks) >= 10
    assert rep["ok"], [(r["hook"], r["reason"]) for r in rep["hooks"] if r["status"] != "PASS"]
    assert rep["pass"] == len(hooks) + len(drill.CONTROL_SCENARIOS) and rep["fail"] == 0
    control = [r for r in rep["hooks"] if r["kind"] == "control"]
    assert [c["hook"] for c in control] == ["healthy_canary"] and control[0]["status"] == "PASS"
    assert any(o["kind"] == "promote" for o in control[0]["observed"])


def test_control_fails_when_the_policy_is_not_quiet(scenario_run):
    # the healthy run plus one abort (as a policy that aborts on healthy traffic would add)
    run = dict(scenario_run("healthy_canary"))
    noisy = {"id": "f" * 64, "kind": "abort", "action": "freeze", "scope": "checkout",
             "ts": "2026-01-01T00:20:00.000Z", "rule": {"id": "any_traffic", "text": "request_rate > 0"}}
    run["actions"] = run["actions"] + [noisy]
    row = drill._control_result("healthy_canary", load_scenario_spec("healthy_canary"), run)
    assert row["status"] == "FAIL" and row["unexpected"][0]["observed"][0]["rule"] == "any_traffic"
    ok = drill._control_result("healthy_canary", load_scenario_spec("healthy_canary"), scenario_run("healthy_canary"))
    assert ok["status"] == "PASS" and ok["reason"] is None


def test_every_mapped_scenario_exists_and_expects_its_hook():
    names = set(scenario_names())
    for hook, scen in drill.HOOK_SCENARIOS.items():
        assert scen in names
        rules = {e.get("rule") for e in load_scenario_spec(scen)["expect"]["actions"]}
        assert f"hook:{hook}" in rules


def test_report_shape(default_policy, cached_runs):
    rep = drill.run_drill(default_policy, ["invariant_breach", "cdc_freeze", "cdc_lag"])
    json.dumps(rep)  # plain JSON
    assert rep["format"] == drill.DRILL_FORMAT and rep["policy_hash"] == default_policy.hash
    assert set(rep["scenarios"]) == {"invariant_breach", "cdc_freeze"}
    for r in rep["hooks"]:
        assert r["status"] == "PASS" and r["reason"] is None
        assert {"hook", "rule", "action", "text", "critical", "scenario", "expected", "observed",
                "fault_at_s", "detect_s", "wall_s", "unexpected"} <= set(r)
        assert r["expected"][0]["rule"] == r["rule"]
        obs = r["observed"][0]
        assert len(obs["id"]) == 64 and obs["rule"] == r["rule"] and obs["action"] == r["action"]
        assert obs["text"] and obs["values"] and obs["values"][0]["value"] is not None
        assert r["detect_s"] >= 0 and r["wall_s"] >= 0
    by = {r["hook"]: r for r in rep["hooks"]}
    assert by["invariant_breach"]["critical"] and not by["cdc_lag"]["critical"]
    assert by["cdc_freeze"]["fault_at_s"] == 300 and by["cdc_lag"]["fault_at_s"] == 960
    assert by["cdc_freeze"]["detect_s"] >= 600  # silence must pass 600 s
    assert "PASS" in drill.table(rep)


def test_hook_without_scenario_fails(tmp_path, cached_runs):
    pol = tmp_path / "pol"
    shutil.copytree(POLICY_DIR, pol)
    (pol / "zz_extra.yml").write_text("hooks:\n  must_have: [latency_budget, experiment_srm]\n")
    policy = load_policy_dir(pol)
    rep = drill.run_drill(policy, ["experiment_srm", "nonexistent"])
    assert not rep["ok"] and rep["fail"] == 2
    by = {r["hook"]: r for r in rep["hooks"]}
    assert by["experiment_srm"]["status"] == "FAIL" and by["experiment_srm"]["reason"] == "no scenario"
    assert by["nonexistent"]["reason"] == "not enabled by the policy"


def test_cli_writes_json_and_exit_codes(tmp_path, cached_runs):
    from gatewatch.streams.cli.main import cli
    out = tmp_path / "drill.json"
    r = CliRunner().invoke(cli, ["drill", "--policy", str(POLICY_DIR), "--hooks", "api_contract_break",
                                 "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())["hooks"][0]["status"] == "PASS"
    r = CliRunner().invoke(cli, ["drill", "--policy", str(POLICY_DIR), "--hooks", "nope", "--out", str(out), "-q"])
    assert r.exit_code == 1 and "FAIL" in r.output


def test_abort_rules_drill_too(default_policy, cached_runs):
    rep = drill.run_drill(default_policy, aborts=True)
    aborts = {r["hook"] for r in rep["hooks"] if r["kind"] == "abort"}
    assert aborts == {r.id for r in default_policy.rules if r.kind == "abort"}
    assert rep["ok"], [(r["hook"], r["reason"]) for r in rep["hooks"] if r["status"] != "PASS"]
    inp = [r for r in rep["hooks"] if r["hook"] == "inp_regression"][0]
    assert inp["scenario"] == "fe_cwv_regress" and inp["detect_s"] >= 24 * 3600


def _strip_wall(obj):
    if isinstance(obj, dict):
        return {k: _strip_wall(v) for k, v in obj.items() if k != "wall_s"}
    if isinstance(obj, list):
        return [_strip_wall(v) for v in obj]
    return obj


def test_drill_report_is_deterministic_but_for_wall_times(default_policy):
    hooks = ["api_contract_break", "resolution_sla"]
    a, b = drill.run_drill(default_policy, hooks), drill.run_drill(default_policy, hooks)
    assert _strip_wall(a) == _strip_wall(b) and a["ok"]
