"""Attested decisions (processors.policy.attest): every batch that acts leaves an attestation from
which the decision replays: the pre-state hashes as recorded, and the engine restored from it and
fed the recorded inputs reaches the recorded post-state and the same actions."""
from __future__ import annotations

import io

import fastavro
import jsonschema
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.canonical import canonical_json, content_id, sha256_hex
from gatewatch.processors.policy import Engine, permit_signer
from gatewatch.processors.policy.attest import RNG, replay, state_bytes
from gatewatch.processors.policy.scoped import ScopedEngine
from gatewatch.schemas import avro_schema, json_schema
from tests.policy.helpers import DOMAINS, make_policy
from tests.policy.test_engine import KEY
from tests.policy.test_properties import POLICY, SCENARIO, step_batches


def feed(engine, batches):
    acts = []
    for b in batches:
        acts += engine.on_batch(b)
    return acts


def interleaved(scenario, rnd):
    """The scenario's domain batches, domains interleaved at random (each in its own ts order)."""
    queues = {d: [] for d in DOMAINS}
    for i, (kind, arg) in enumerate(scenario):
        for d, b in step_batches(i, kind, arg).items():
            queues[d].append(b)
    out = []
    while any(queues.values()):
        d = rnd.choice([d for d in DOMAINS if queues[d]])
        out.append(queues[d].pop(0))
    return out


def engine_for(policy):
    return lambda h: Engine(policy) if h == policy.hash else None


def test_state_bytes_is_the_canonical_scope_state():
    eng = Engine(POLICY)
    for i in range(12):
        for b in step_batches(i, "invariant" if i == 5 else "healthy", 1).values():
            eng.on_batch(b)
            assert state_bytes(eng, "svc-a") == canonical_json(eng.scope_state("svc-a"))
    assert state_bytes(eng, "never-seen") == canonical_json(eng.scope_state("never-seen"))


def test_attestation_round_trip():
    eng = Engine(POLICY, permit_signer(KEY))
    acts = feed(eng, [b for i in range(20) for b in step_batches(i, "burn" if i == 12 else "healthy", 2.0).values()])
    atts = eng.take_attestations()
    assert [a["kind"] for a in acts] == ["gate", "gate", "gate", "abort", "promote"]  # transitions are actions
    # every action is named by exactly one attestation, in the order the engine returned them
    assert [aid for a in atts for aid in a["actions"]] == [a["id"] for a in acts]
    for att in atts:
        assert att["rng"] == RNG and att["rng"]["draws"] == 0  # stated, not left out
        assert sha256_hex(att["pre_state"].encode()) == att["hashes"]["pre_state"]
        assert sha256_hex(att["inputs"].encode()) == att["hashes"]["inputs"]
        why, again, post = replay(engine_for(POLICY), att)
        assert why is None and post == att["hashes"]["post_state"]
        # the same decisions: the replaying engine is unsigned, so permits aside
        want = [{k: v for k, v in a.items() if k != "permit"} for a in acts if a["id"] in att["actions"]]
        assert [{k: v for k, v in a.items() if k != "permit"} for a in again] == want
    assert eng.take_attestations() == []


def test_a_changed_input_or_pre_state_does_not_replay():
    eng = Engine(POLICY)
    feed(eng, [b for i in range(10) for b in step_batches(i, "invariant" if i == 6 else "healthy", 1).values()])
    att = next(a for a in eng.take_attestations() if '"name":"invariant","samples":100,"scope":"svc-a",'
               '"source":"producer-gauges","subject":null,"ts":"2026-01-01T00:01:00.000Z","value":1,' in a["inputs"])
    inputs = orjson.loads(att["inputs"])
    for s in inputs:
        if s["name"] == "invariant":
            s["value"] = 0  # the breach that blocked the release, recorded as healthy
    forged = dict(att, inputs=canonical_json(inputs).decode())
    assert replay(engine_for(POLICY), forged)[0] == "the recorded inputs do not hash to the recorded inputs hash"
    forged["hashes"] = dict(att["hashes"], inputs=sha256_hex(forged["inputs"].encode()))
    why, again, post = replay(engine_for(POLICY), forged)
    assert why is not None and post != att["hashes"]["post_state"] and [a["id"] for a in again] != att["actions"]
    pre = dict(att, pre_state=att["pre_state"].replace('"dropped_steps":0', '"dropped_steps":1'))
    assert replay(engine_for(POLICY), pre)[0].startswith("the recorded pre-state does not hash")
    assert replay(lambda h: None, att)[0].startswith(f"policy {POLICY.hash} is not among")


@settings(max_examples=40, deadline=None)
@given(SCENARIO, st.randoms(use_true_random=False))
def test_replay_from_the_pre_state_reproduces_the_post_hash(scenario, rnd):
    """For any scenario and any interleaving of the domains: every attestation replays."""
    eng = Engine(POLICY)
    acts = feed(eng, interleaved(scenario, rnd))
    atts = eng.take_attestations()
    assert sorted(aid for a in atts for aid in a["actions"]) == sorted(a["id"] for a in acts)
    for att in atts:
        why, again, post = replay(engine_for(POLICY), att)
        assert why is None and post == att["hashes"]["post_state"]
        assert [a["id"] for a in again] == att["actions"]


@settings(max_examples=25, deadline=None)
@given(SCENARIO, st.integers(0, 200))
def test_a_restart_from_saved_state_gives_the_same_attestations(scenario, cut):
    """The decide stage restores the engine from its snapshot: the pre-state it then attests is the
    one an uninterrupted engine attests (same hashes, same records)."""
    batches = [b for i, (kind, arg) in enumerate(scenario) for b in step_batches(i, kind, arg).values()]
    whole = Engine(POLICY)
    feed(whole, batches)
    first = Engine(POLICY)
    feed(first, batches[:cut])
    restarted = Engine.from_state(POLICY, orjson.loads(orjson.dumps(first.to_state())))
    feed(restarted, batches[cut:])
    assert canonical_json(first.take_attestations() + restarted.take_attestations()) == \
        canonical_json(whole.take_attestations())


def test_scoped_engine_attests_with_the_overlay_policy_of_the_scope():
    from gatewatch.processors.policy.overlays import Overlay
    strict = make_policy("abort:\n  - {id: inv2, when: 'invariant > 0', action: block_release}\n")
    base = make_policy()
    base.overlays = (Overlay("services/strict.yml", ("strict-*",), strict),)
    eng = ScopedEngine(base)
    for scope in ("svc-a", "strict-a"):
        feed(eng, [b for i in range(4) for b in step_batches(i, "invariant", 1, scope).values()])
    atts = eng.take_attestations()
    assert {(a["scope"], a["policy_hash"]) for a in atts} == {("svc-a", base.hash), ("strict-a", strict.hash)}
    policies = {base.hash: base, strict.hash: strict}
    for att in atts:
        why, _, post = replay(lambda h: Engine(policies[h]) if h in policies else None, att)
        assert why is None and post == att["hashes"]["post_state"]


def test_attestations_match_their_json_schema_and_roundtrip_avro():
    eng = Engine(POLICY)
    feed(eng, [b for i in range(20) for b in step_batches(i, "healthy", None).values()])
    atts = eng.take_attestations()
    assert atts
    validator = jsonschema.Draft202012Validator(json_schema("attestation"))
    parsed = avro_schema("attestation")
    for a in atts:
        validator.validate(a)
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, a)
        assert canonical_json(fastavro.schemaless_reader(io.BytesIO(buf.getvalue()), parsed)) == canonical_json(a)


def test_every_field_of_the_attestation_is_re_derived():
    eng = Engine(POLICY)
    feed(eng, [b for i in range(10) for b in step_batches(i, "invariant" if i == 6 else "healthy", 1).values()])
    att = eng.take_attestations()[-1]
    claimed = dict(att, rng={"draws": 1, "seeds": [42], "note": "a seed the engine never used"})
    claimed["id"] = content_id({k: v for k, v in claimed.items() if k != "id"})
    assert replay(engine_for(POLICY), claimed)[0] == "the recorded attestation differs from the one replay derives in id, rng"
