import shutil
from pathlib import Path

import orjson
import pytest

from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.paths import config_path
from gatewatch.streams.runtime.policy_files import load_policy_dir

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "policies"


def test_default_configs_check_hash_explain(capsys):
    assert main(["policy", "check", str(CONFIGS)]) == 0
    out = capsys.readouterr().out
    pol = load_policy_dir(CONFIGS)
    assert out.startswith(f"ok {pol.hash} files=project.yml,env.yml,gate.yml")
    assert main(["policy", "hash", str(CONFIGS)]) == 0
    assert capsys.readouterr().out.strip() == pol.hash
    assert main(["policy", "explain", str(CONFIGS)]) == 0
    text = capsys.readouterr().out
    assert "slo.availability.target = 99.5  # project.yml:" in text
    assert "burn_4h: burn_rate_4h >= 1" in text
    assert main(["policy", "explain", "--json", str(CONFIGS)]) == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["hash"] == pol.hash and doc["origins"]["gate.cohort"].startswith("gate.yml:")


def test_file_order_project_env_then_sorted(tmp_path):
    (tmp_path / "zz.yml").write_text("slo: {availability: {target: 99.0}}\n")
    (tmp_path / "aa.yaml").write_text("slo: {availability: {target: 98.0}}\n")
    (tmp_path / "project.yml").write_text("slo: {availability: {target: 97.0}}\n")
    (tmp_path / "env.yml").write_text("slo: {availability: {target: 96.0}}\n")
    (tmp_path / "notes.txt").write_text("ignored")
    pol = load_policy_dir(tmp_path)
    assert pol.files == ["project.yml", "env.yml", "aa.yaml", "zz.yml"]
    assert pol.get("slo.availability.target") == 99.0


def _line_of(needle: str) -> int:
    """1-based line of the first occurrence of needle in the shipped project.yml."""
    text = (CONFIGS / "project.yml").read_text()
    return text[:text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("edit, line, problem", [
    (lambda t: t.replace("action: rollback\n", "acton: rollback\n", 1), _line_of("action: rollback\n"),
     "unknown key 'acton'"),
    (lambda t: t.replace("burn_rate_per_4h", "burn_rate_per_5h"), _line_of("burn_rate_per_4h"),
     "unknown signal 'burn_rate_per_5h'"),
    (lambda t: t.replace("800ms for 10m", "80pct for 10m"), _line_of("800ms for 10m"), "bad unit"),
    (lambda t: t.replace("id: latency_p95", "id: burn_4h"), _line_of("id: latency_p95"),
     "duplicate rule id 'burn_4h'"),
])
def test_bad_file_exits_1_with_one_line(tmp_path, capsys, edit, line, problem):
    d = tmp_path / "pol"
    shutil.copytree(CONFIGS, d)
    (d / "project.yml").write_text(edit((CONFIGS / "project.yml").read_text()))
    for cmd in ("check", "hash", "explain"):
        assert main(["policy", cmd, str(d)]) == 1
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert err.startswith(f"gatewatch: error: policy refused: project.yml:{line}: "), err
        assert problem in err


def test_missing_directory(capsys, tmp_path, monkeypatch):
    assert main(["policy", "check", str(tmp_path / "nope")]) == 1
    assert "policy directory not found" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # the default, relative to a directory without it: where it looked, what to do
    (tmp_path / "in.json").write_text("")
    assert main(["replay", str(tmp_path / "in.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith(f"gatewatch: error: policy directory not found: configs/policies (under {tmp_path})"), err
    assert err.endswith(f"(the default policy gatewatch ships is in {config_path('policies')})"), err


def test_reload_keeps_last_good_policy(tmp_path):
    from gatewatch.streams.runtime.policy_files import reload_policy
    d = tmp_path / "pol"
    shutil.copytree(CONFIGS, d)
    good, err = reload_policy(d, None)
    assert err is None and good.hash == load_policy_dir(CONFIGS).hash
    (d / "gate.yml").write_text("abort:\n  - {when: 'invariant >', action: freeze}\n")
    kept, err = reload_policy(d, good)
    assert kept is good and err.startswith("gate.yml:2: cannot parse when")


def test_eval_redecides_recorded_signals(tmp_path, capsys):
    from gatewatch.processors.canonical import canonical_json
    from gatewatch.processors.policy import Engine
    from gatewatch.processors.policy.grammar import signal_info
    from tests.policy.helpers import TEST_POLICY, step_batches
    pol_dir = tmp_path / "pol"
    pol_dir.mkdir()
    (pol_dir / "project.yml").write_text(TEST_POLICY)
    pol = load_policy_dir(pol_dir)
    batches = [b for i in range(20) for b in step_batches(i, overrides={"invariant": 1} if i == 7 else None)]
    expected = []
    eng = Engine(pol)
    for b in batches:
        expected += eng.on_batch(b)
    bare = tmp_path / "bare.ndjson"
    bare.write_bytes(b"".join(canonical_json(s) + b"\n" for b in batches for s in b) + b"not json\n")
    # the same signals as gw.signals records inside `gatewatch replay` lines
    wire = tmp_path / "wire.ndjson"
    wire.write_bytes(b"".join(canonical_json({"topic": "gw.signals", "key": s["scope"], "value": dict(
        s, domain=signal_info(s["name"]).domain, source="t:0", batch_n=len(b))}) + b"\n" for b in batches for s in b))
    for f in (bare, wire):
        assert main(["policy", "eval", str(pol_dir), str(f)]) == 0
        out = capsys.readouterr()
        got = [line for line in out.out.splitlines() if line]
        assert got == [canonical_json(a).decode() for a in expected]
    assert any('"rule":{"id":"inv"' in line for line in got)


def test_check_warns_about_blocking_on_unpublished_gauges(tmp_path, capsys):
    (tmp_path / "project.yml").write_text("hooks:\n  critical: [api_contract_break]\n")
    assert main(["policy", "check", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "warning: <builtin>:" in err and "hook:api_contract_break blocks the gate on api_contract_breaks" in err
    assert load_policy_dir(CONFIGS).warnings == []


def test_signal_reference_is_in_sync(capsys):
    """docs/signals.md is what `gatewatch policy signals` prints from the catalogue."""
    assert main(["policy", "signals"]) == 0
    assert capsys.readouterr().out == (CONFIGS.parents[1] / "docs" / "signals.md").read_text()
