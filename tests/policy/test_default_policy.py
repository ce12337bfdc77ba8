"""The shipped configs/policies: healthy signals for everything the gate asks for reach
CANARY_READY (LF1 on the real defaults); a 4h burn stops it (INV3)."""
from pathlib import Path

from gatewatch.processors.policy import STATES, Engine
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.policy.helpers import STEP, T0, sig

POLICY = load_policy_dir(Path(__file__).resolve().parents[2] / "configs" / "policies")
HEALTHY = {"invariant": 0.0, "obs_uptime": 1.0, "latency_p95_ms": 250.0, "err5xx_rate": 0.0,
           "rum_inp_p75_ms": 120.0, "rum_inp_p75_ms_delta": 0.0}


def feed(engine, steps, bad=None):
    acts = []
    need = engine.requirements()
    for i in range(steps):
        for domain, names in sorted(need.items()):
            batch = []
            for n in names:
                v = HEALTHY.get(n, 0.1)  # burn rates well under every threshold
                if bad and n in bad:
                    v = bad[n]
                # realistic volume: hours of canary traffic clear every rule's min_samples
                batch.append(sig(n, v, T0 + i * STEP, scope="web", samples=2000))
            acts += engine.on_batch(batch)
    return acts


def test_requirements_name_what_the_gate_needs():
    need = Engine(POLICY).requirements()
    assert set(need) == {"gauges", "requests", "rum"}
    assert {"burn_rate_4h", "burn_rate_1h", "burn_rate_5m", "err5xx_rate", "latency_p95_ms"} <= set(need["requests"])
    assert need["gauges"] == ["invariant", "obs_uptime"]


def test_defaults_promote_on_healthy_signals_in_an_hour():
    eng = Engine(POLICY)
    acts = feed(eng, 6 * 60 + 10)
    assert [a["gate"]["to"] for a in acts if a["gate"]] == list(STATES[1:])
    assert eng.gate_state("web") == "CANARY_READY"


def test_defaults_never_promote_while_burning():
    eng = Engine(POLICY)
    acts = feed(eng, 6 * 60 + 10, bad={"burn_rate_4h": 1.0})
    assert eng.gate_state("web") == "PLAN_OK"
    assert [a["rule"]["id"] for a in acts] == ["burn_4h"]
