"""gw.actions wire contract: every kind of action validates against action.json and
survives the Avro round trip byte for byte, so its permit still verifies."""
import io

import fastavro
import jsonschema

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy import Engine, permit_signer
from gatewatch.processors.signing import check_permit, key_id
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.schemas import avro_schema, json_schema
from tests.policy.helpers import T0, make_policy, sig, step_batches
from tests.policy.test_engine import KEY, run


def sample_actions():
    pol = make_policy("hooks:\n  must_have: [cdc_lag, web_cwv_regression]\n"
                      "rum:\n  routes:\n    - {route: '/', inp_p75_ms: 180, cls_p75: 0.08}\n")
    eng = Engine(pol, permit_signer(KEY))
    acts = run(eng, range(20), lambda i: {"burn_rate_4h": 2.0, "err5xx_rate": 0.2} if i in (3, 4, 5, 6) else None)
    delta = sig("rum_inp_p75_ms_delta", 0.4, T0 + 20 * 10_000, subject="/")
    delta.update(baseline=180.0, baseline_samples=400, baseline_source="cohort:baseline", ci_low=0.2, ci_high=0.6)
    acts += eng.on_batch([delta])
    acts += Engine(pol).on_batch(step_batches(0)[0])  # unsigned engine: permit null
    return acts


def test_actions_match_json_schema_and_roundtrip_avro():
    acts = sample_actions()
    kinds = {a["kind"] for a in acts}
    assert {"abort", "gate", "promote"} <= kinds
    assert any(a["baseline"]["references"] for a in acts) and any(a["baseline"]["routes"] for a in acts)
    validator = jsonschema.Draft202012Validator(json_schema("action"))
    parsed = avro_schema("action")
    trusted = {key_id(KEY.verify_key): KEY.verify_key}
    for a in acts:
        validator.validate(a)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, a)
        back = fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), parsed)
        assert canonical_json(back) == canonical_json(a)
        if a["permit"]:
            assert check_permit(back, trusted, parse_time_ms(a["ts"])) is None  # valid from the action's ts


def test_gate_records_match_json_schema():
    """gw.gates records (schemas/gate_record.json) of a release that fails, one that passes and
    ones still pending, with every reason kind the run produces."""
    from tests.policy.test_obs_gate import run as run_obs
    pol = make_policy("hooks:\n  must_have: [cdc_lag, web_cwv_regression]\n")
    eng = Engine(pol, permit_signer(KEY))
    run(eng, range(20), lambda i: {"burn_rate_4h": 2.0, "err5xx_rate": 0.2} if i in (3, 4, 5, 6) else None)
    gates = eng.take_gate_records()
    thin = Engine(make_policy())
    for i in range(10):  # a required signal absent, another too thin
        for b in step_batches(i, "svc-a", {"invariant": "absent", "err5xx_rate": ("thin", 0.0)}):
            thin.on_batch(b)
    gates += thin.take_gate_records()
    for obs in (0.9995, "absent", 0.5):  # promoted; obs_uptime missing; below its self-SLO
        gates += run_obs(obs)[1]
    from tests.policy import test_shadow_phase as sp
    for shadow in ({}, {"latency_p95_ms_delta_lo": None}, {"latency_p95_ms_delta_lo": 0.4}):  # gate.shadow
        eng = Engine(make_policy(sp.SHADOW_BLOCK))
        for i in range(4):
            sp.step(eng, i, shadow=shadow or None)
        gates += eng.take_gate_records()
    assert {g["state"] for g in gates} >= {"SHADOW", "CANARY_READY"}
    validator = jsonschema.Draft202012Validator(json_schema("gate_record"))
    for g in gates:
        validator.validate(g)
    assert {g["verdict"] for g in gates} == {"fail", "pass", "pending"}
    from gatewatch.processors.policy.gate import STATES
    from gatewatch.processors.policy.shadowphase import SHADOW
    assert json_schema("gate_record")["properties"]["state"]["enum"] == [SHADOW, *STATES]
    assert {r["kind"] for g in gates for r in g["reasons"]} >= {"failed", "missing", "thin", "blocking", "waiting"}


def test_shadow_schema_is_action_and_gate_record_plus_the_shadow_fields():
    """schemas/shadow_decision.json stays in step with action.json and gate_record.json."""
    decision, gate = json_schema("shadow_decision")["oneOf"]
    action, record = json_schema("action"), json_schema("gate_record")
    extra = {"shadow", "candidate_action_id", "active_same_step"}
    assert set(decision["properties"]) == set(action["properties"]) - {"permit"} | extra
    assert set(decision["required"]) == set(action["required"]) - {"permit"} | extra
    assert all(decision["properties"][k] == v for k, v in action["properties"].items() if k not in ("id", "permit"))
    assert gate["properties"] == record["properties"] and set(gate["required"]) == set(record["required"]) | {"shadow"}


def test_every_topic_of_the_catalogue_has_its_value_schema():
    from gatewatch import schemas
    from gatewatch.streams.runtime.topics import CATALOGUE
    assert [(t.name, t.value) for t in CATALOGUE if t.value not in schemas.available()] == []
