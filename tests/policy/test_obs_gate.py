"""Seed 001: no promotion while gatewatch's own observability is below its self-SLO (built-in
gate.block_when on obs_uptime), fail closed when obs_uptime is missing, and the gate says why."""
import pytest

from gatewatch.processors.policy import Engine
from tests.policy.helpers import make_policy, step_batches


def run(obs):
    eng = Engine(make_policy())
    acts = []
    for i in range(20):
        for b in step_batches(i, "svc-a", {"obs_uptime": obs}):
            acts.extend(eng.on_batch(b))
    return acts, eng.take_gate_records()


def test_healthy_observability_promotes():
    acts, _ = run(0.9995)
    assert [a["action"] for a in acts if a["kind"] == "promote"] == ["promote"]


@pytest.mark.parametrize("obs", [0.5, 0.998, "absent"])
def test_unhealthy_or_missing_observability_blocks_promotion_and_says_why(obs):
    acts, gates = run(obs)
    assert not [a for a in acts if a["kind"] in ("promote", "gate")]
    last = gates[-1]
    assert last["verdict"] == "pending"
    text = repr(last["reasons"]) + repr(last["missing"])
    assert "obs_uptime" in text
