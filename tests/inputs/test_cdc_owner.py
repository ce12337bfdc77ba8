"""CDC to services (issue 21): `cdc.services` maps table globs to the service that owns them, so
schema drift of checkout's table enters checkout's gate; unmapped tables stay their own scope."""
import shutil
from pathlib import Path

import yaml

from gatewatch.streams.app.drill import run_scenario
from gatewatch.streams.runtime.policy_files import load_policy_dir

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
OWNED = 'cdc:\n  services: {"shop.orders": checkout, "shop.pay*": payments}\n' \
        "hooks:\n  critical: [invariant_breach, slo_budget_breach, schema_drift]\n"


def policy(tmp_path, extra=None):
    d = tmp_path / "pol"
    shutil.copytree(CONFIGS / "policies", d)
    if extra:
        (d / "zz_cdc.yml").write_text(extra)
    return load_policy_dir(d)


def drift(tmp_path, extra):
    spec = yaml.safe_load((CONFIGS / "scenarios" / "schema_drift.yaml").read_text())
    return run_scenario(spec, policy(tmp_path, extra))


def test_a_mapped_table_blocks_its_service_gate_on_incompatible_drift(tmp_path):
    run = drift(tmp_path, OWNED)
    hooks = [a for a in run["actions"] if a["rule"]["id"] == "hook:schema_drift"]
    assert hooks and {a["scope"] for a in hooks} == {"checkout"}
    assert {s["scope"] for s in run["signals"] if s["name"] == "schema_drift"} == {"checkout"}
    assert {s["subject"] for s in run["signals"] if s["name"] == "schema_drift"} == {"shop.orders"}
    # checkout's gate names the drift among what blocks it, and never promotes
    after = [g for g in run["gates"] if g["scope"] == "checkout" and g["ts"] >= hooks[0]["ts"]]
    assert after and all(g["verdict"] != "pass" for g in after)
    assert any("schema_drift" in repr(g["reasons"]) for g in after)
    assert not [a for a in run["actions"] if a["kind"] == "promote"]


def test_unmapped_tables_keep_their_own_scope(tmp_path):
    run = drift(tmp_path, None)
    assert {a["scope"] for a in run["actions"] if a["rule"]["id"] == "hook:schema_drift"} == {"shop.orders"}
