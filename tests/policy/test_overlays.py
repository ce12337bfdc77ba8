"""Policy per service (issue 21): overlays under services/ chosen by a glob on the scope, composed
after project/env and before gate, each with its own hash, carried by its scopes' actions."""
import shutil
from pathlib import Path

import orjson
import pytest

from gatewatch.processors.policy import Engine, PolicyError
from gatewatch.processors.policy.scoped import ScopedEngine
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.policy.helpers import TEST_POLICY, step_batches

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "policies"
STRICT = """selector: {scope: ["strict-*", "payments"]}
abort:
  - {id: burn, when: "burn_rate_4h >= 0.5", action: rollback}
"""


@pytest.fixture
def pdir(tmp_path):
    d = tmp_path / "pol"
    d.mkdir()
    (d / "project.yml").write_text(TEST_POLICY)
    (d / "gate.yml").write_text("gate: {cohort: canary}\n")
    (d / "services").mkdir()
    (d / "services" / "strict.yml").write_text(STRICT)
    return d


def run(engine, scope, n=6, burn=0.7):
    out = []
    for i in range(n):
        for b in step_batches(i, scope, {"burn_rate_4h": burn} if i >= 2 else None):
            out.extend(engine.on_batch(b))
    return out


def test_two_services_same_signals_different_decisions(pdir, capsys):
    pol = load_policy_dir(pdir)
    eng = ScopedEngine(pol)
    strict, lenient = run(eng, "strict-a"), run(eng, "lenient-b")
    assert [a["rule"]["id"] for a in strict if a["kind"] == "abort"] == ["burn"]
    assert not [a for a in lenient if a["kind"] == "abort"]
    # each scope's actions and gate records carry its own policy's hash, the one `policy hash --scope` prints
    assert main(["policy", "hash", str(pdir), "--scope", "strict-a"]) == 0
    strict_hash = capsys.readouterr().out.strip()
    assert main(["policy", "hash", str(pdir), "--scope", "lenient-b"]) == 0
    base_hash = capsys.readouterr().out.strip()
    assert base_hash == pol.hash != strict_hash
    assert {a["policy_hash"] for a in strict} == {strict_hash}
    assert {a["policy_hash"] for a in lenient} == {base_hash}
    assert {g["policy_hash"] for g in eng.take_gate_records() if g["scope"] == "strict-a"} == {strict_hash}


def test_without_overlays_the_scoped_engine_is_the_engine(pdir):
    shutil.rmtree(pdir / "services")
    pol = load_policy_dir(pdir)
    a, b = ScopedEngine(pol), Engine(pol)
    assert run(a, "strict-a", 20) == run(b, "strict-a", 20)
    assert orjson.dumps(a.to_state()) == orjson.dumps(b.to_state())
    assert a.take_gate_records() == b.take_gate_records()


def test_state_survives_a_restart_and_follows_a_scope_to_its_new_overlay(pdir):
    pol = load_policy_dir(pdir)
    eng = ScopedEngine(pol)
    run(eng, "payments", 3, burn=0.2)
    again = ScopedEngine.from_state(pol, orjson.loads(orjson.dumps(eng.to_state())))
    assert again.to_state() == eng.to_state()
    (pdir / "services" / "strict.yml").write_text(STRICT.replace('"payments"', '"other"'))
    moved = ScopedEngine.from_state(load_policy_dir(pdir), eng.to_state())
    assert "payments" in moved.engines[""].scopes and moved.gate_state("payments") == eng.gate_state("payments")


def test_explain_scope_names_the_overlay_file_and_line(pdir, capsys):
    assert main(["policy", "explain", str(pdir), "--scope", "strict-x"]) == 0
    text = capsys.readouterr().out
    assert "project.yml -> services/strict.yml -> gate.yml" in text
    assert "burn: burn_rate_4h >= 0.5" in text and "# services/strict.yml:3" in text
    assert main(["policy", "check", str(pdir)]) == 0
    assert "overlay services/strict.yml" in capsys.readouterr().out


@pytest.mark.parametrize("text, problem", [
    ("abort: []\n", "an overlay needs `selector"),
    ("selector: {scope: []}\n", "non-empty glob"),
    ("selector: {scope: x}\nsignals: {step: 20s}\n", "may not change `signals`"),
])
def test_bad_overlays_are_refused_with_the_file(pdir, text, problem):
    (pdir / "services" / "bad.yml").write_text(text)
    with pytest.raises(PolicyError, match=problem) as e:
        load_policy_dir(pdir)
    assert "services/bad.yml" in str(e.value)


def test_a_selector_in_the_base_files_is_refused(pdir):
    (pdir / "zz.yml").write_text("selector: {scope: x}\n")
    with pytest.raises(PolicyError, match="belongs in an overlay"):
        load_policy_dir(pdir)


def test_dotted_cohort_keys_explain(tmp_path, capsys):
    d = tmp_path / "pol"
    shutil.copytree(CONFIGS, d)
    (d / "zz.yml").write_text('otlp:\n  cohorts: {"2.3.0": baseline}\n')
    assert main(["policy", "explain", str(d)]) == 0
    assert 'otlp.cohorts["2.3.0"] = "baseline"  # zz.yml:2' in capsys.readouterr().out


def test_scopes_route_by_first_matching_overlay_in_file_order(pdir):
    (pdir / "services" / "a_first.yml").write_text('selector: {scope: "strict-*"}\n')
    pol = load_policy_dir(pdir)
    eng = ScopedEngine(pol)
    assert eng.engine_for("strict-a").policy.files[1] == "services/a_first.yml"
    assert eng.engine_for("payments").policy.files[1] == "services/strict.yml"
    assert eng.engine_for("other").policy is pol


def test_the_readme_overlay_example_composes_over_the_shipped_policy(tmp_path, capsys):
    """processors/policy/README.md's services/payments.yml, over configs/policies as shipped: it
    replaces project.yml's burn_4h for its scopes only (it once used `abort:`, refused as a
    duplicate id)."""
    import re
    readme = (Path(__file__).resolve().parents[2] / "processors" / "policy" / "README.md").read_text()
    example = re.search(r"```yaml\n# services/payments.yml\n(.*?)```", readme, re.S).group(1)
    d = tmp_path / "pol"
    shutil.copytree(CONFIGS, d)
    (d / "services").mkdir(exist_ok=True)
    (d / "services" / "payments.yml").write_text(example)
    assert main(["policy", "check", str(d)]) == 0
    capsys.readouterr()
    assert main(["policy", "explain", str(d), "--scope", "payments-eu"]) == 0
    out = capsys.readouterr().out
    assert "services/payments.yml" in out and "0.5" in out
    assert main(["policy", "hash", str(d), "--scope", "payments-eu"]) == 0
    h_payments = capsys.readouterr().out
    assert main(["policy", "hash", str(d), "--scope", "other"]) == 0
    assert capsys.readouterr().out != h_payments
