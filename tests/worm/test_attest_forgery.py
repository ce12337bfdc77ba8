"""Forged attestations: the log admits only the decider's (signed over the content id, in a domain
of its own), and `verify --replay` takes an attestation as the account of a decision only when
replay derives exactly that one record, from inputs of its own scope, listing at least one
action, each action accounted for by exactly one attestation."""
from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy import Engine
from gatewatch.processors.policy.attest import replay
from gatewatch.processors.signing import attestation_message, key_id, sign_attestation, verify_b64
from gatewatch.sinks.worm.admission import check_record
from gatewatch.sinks.worm.evidence import BundleError, verify_bundle
from gatewatch.sinks.worm.replay import replay_bundle
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import load_signing_key, load_verify_key
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.policy.test_properties import step_batches
from tests.worm import test_attest_replay as attested
from tests.worm.test_attest_replay import abort_of, bundle, reseal

decided = attested.decided  # the module's fixture: engine outputs for svc-a and svc-b

WANT_ATT = "attestations"


def _decider(keys):
    vk = load_verify_key("decider", keys)
    return {key_id(vk): vk}


def test_the_log_refuses_an_attestation_the_decider_did_not_sign(decided):
    _, keys, _, records = decided
    act, att = abort_of(records)
    decider = _decider(keys)
    assert check_record(WANT_ATT, "gw.attestations", att, decider, {}) == (None, "attestation")
    unsigned = dict(att, signature=None)  # the id does not cover the signature: same id
    assert check_record(WANT_ATT, "gw.attestations", unsigned, decider, {})[0] == \
        "attestation refused: missing_signature"
    other = sign_attestation(load_signing_key("executor", keys), att["id"])
    assert check_record(WANT_ATT, "gw.attestations", dict(att, signature=other), decider, {})[0] == \
        "attestation refused: unknown_key"
    # a permit's signature is by the decider key, but over another domain: never an attestation's
    permit_sig = dict(att["signature"], sig=act["permit"]["sig"])
    assert check_record(WANT_ATT, "gw.attestations", dict(att, signature=permit_sig), decider, {})[0] == \
        "attestation refused: bad_signature"
    # and the attestation's signature is no permit signature
    from gatewatch.processors.signing import permit_message
    vk = load_verify_key("decider", keys)
    assert verify_b64(vk, attestation_message(att["id"]), att["signature"]["sig"])
    assert not verify_b64(vk, permit_message(act["permit"]), att["signature"]["sig"])


def test_an_unsigned_forgery_fails_verify(decided, tmp_path):
    """Case 1 of the review, by someone without the key: an attestation with no actions."""
    _, keys, pol_dir, records = decided
    _, att = abort_of(records)
    forged = reseal(dict(att, actions=[], approved_by="CISO"), keys)
    forged["signature"] = None
    out = bundle(tmp_path, keys, pol_dir, records + [(WANT_ATT, forged)])
    with pytest.raises(BundleError, match="missing_signature"):
        verify_bundle(out)


def test_other_scopes_inputs_and_claims_do_not_replay(decided, tmp_path, capsys):
    """Case 6 of the review (even by a key holder): the genuine svc-a attestation with a svc-b burn
    batch in front of its inputs, a made-up seed and a sign-off still lists the genuine abort."""
    _, keys, pol_dir, records = decided
    act, att = abort_of(records)
    inputs = [s for b in step_batches(11, "burn", 2.0, "svc-b").values() for s in b] + orjson.loads(att["inputs"])
    forged = dict(att, inputs=canonical_json(inputs).decode(), rng=dict(att["rng"], seeds=[1234]),
                  signed_off_by="release-manager")
    forged["hashes"] = dict(att["hashes"], inputs=__import__("hashlib").sha256(forged["inputs"].encode()).hexdigest())
    forged = reseal(forged, keys)
    out = bundle(tmp_path, keys, pol_dir, [(k, forged if v is att else v) for k, v in records])
    assert main(["verify", out, "--trusted-keys", keys, "--replay"]) == 1
    err = capsys.readouterr().err
    assert f"action {act['id']} (scope svc-a): attestation {forged['id']}: the recorded inputs are not all " \
           "signals of scope svc-a" in err, err


@pytest.mark.parametrize("change, why", [
    ({"actions": []}, "it lists none"),
    ({"rng": {"draws": 0, "seeds": [1234], "note": "x"}}, "differs from the one replay derives in id, rng"),
    ({"signed_off_by": "release-manager"}, "differs from the one replay derives in id, signed_off_by"),
    ({"ts": "2030-01-01T00:00:00.000Z"}, "differs from the one replay derives in id, ts"),
])
def test_every_claim_is_compared(decided, change, why):
    _, keys, _, records = decided
    _, att = abort_of(records)
    policy = load_policy_dir(decided[2])
    got = replay(lambda h: Engine(policy) if h == policy.hash else None, reseal(dict(att, **change), keys))[0]
    assert got is not None and why in got, got


def _files(pol_dir, entries) -> dict[str, bytes]:
    from pathlib import Path
    files = {f"policies/{p.relative_to(pol_dir)}": p.read_bytes() for p in Path(pol_dir).rglob("*.yml")}
    files["entries.ndjson"] = b"\n".join(orjson.dumps({"topic": f"gw.{k}", "value": v}) for k, v in entries)
    return files


def test_an_action_listed_by_two_attestations_is_refused(decided):
    _, keys, pol_dir, records = decided
    act, att = abort_of(records)
    twin = reseal(dict(att, rng=dict(att["rng"], note="the same decision, told twice")), keys)
    with pytest.raises(BundleError, match=f"action {act['id']} \\(scope svc-a\\): listed by 2 attestations"):
        replay_bundle(_files(pol_dir, records + [(WANT_ATT, twin)]))


def test_actions_from_before_attestations_are_reported_not_attested(decided):
    """An upgrade: the log holds actions of a gatewatch without attestations, then attested ones."""
    _, _, pol_dir, records = decided
    old = [v for k, v in records if k == "actions" and v["scope"] == "svc-a"]
    later = [(k, v) for k, v in records if v["scope"] == "svc-b"]
    n_atts, n_derived, notes = replay_bundle(_files(pol_dir, [("actions", a) for a in old] + later))
    assert n_derived == sum(k == "actions" for k, _ in later)
    assert notes == [f"replay: {len(old)} actions not attested: logged before the log's first attestation "
                     f"(decided before attestations existed), not re-derived: {', '.join(a['id'] for a in old)}"]
    # the same actions after the first attestation: missing evidence, refused
    with pytest.raises(BundleError, match=f"action {old[0]['id']} .*no attestation in the bundle names it"):
        replay_bundle(_files(pol_dir, later + [("actions", a) for a in old]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(2048, 12_000))
def test_an_oversize_attestation_leaves_its_pre_state_out(monkeypatch_limit, limit):
    """Whatever the scope state grows to, the signed record stays under the limit (decide never
    stalls on it), marks what it left out, and verify names its actions as not replayable."""
    policy, key = monkeypatch_limit(limit)
    from gatewatch.processors.policy import permit_signer
    eng = Engine(policy, permit_signer(key))
    acts = []
    for i in range(20):
        for b in step_batches(i, "burn" if i == 12 else "healthy", 2.0).values():
            acts += eng.on_batch(b)
    atts = eng.take_attestations()
    assert [aid for a in atts for aid in a["actions"]] == [a["id"] for a in acts]
    for att in atts:
        assert len(canonical_json(att)) <= limit
        if att["omitted"] is not None:
            assert att["pre_state"] is None and att["omitted"]["pre_state_bytes"] > 0
    assert base64.b64decode(atts[0]["signature"]["sig"])


def test_verify_names_the_actions_of_an_oversize_attestation(decided, monkeypatch):
    from gatewatch.processors.policy import attest, permit_signer
    _, keys, pol_dir, _ = decided
    policy = load_policy_dir(pol_dir)
    monkeypatch.setattr(attest, "MAX_ATTESTATION_BYTES", 3000)
    eng = Engine(policy, permit_signer(load_signing_key("decider", keys)))
    out = []
    for i in range(20):
        for b in step_batches(i, "burn" if i == 12 else "healthy", 2.0).values():
            acts = eng.on_batch(b)
            out += [("actions", a) for a in acts] + [(WANT_ATT, a) for a in eng.take_attestations()]
    big = [v for k, v in out if k == WANT_ATT and v["omitted"] is not None]
    assert big
    _, _, notes = replay_bundle(_files(pol_dir, out))
    sizes = big[0]["omitted"]["pre_state_bytes"]
    assert f"replay: action {big[0]['actions'][0]} (scope svc-a): not replayable: pre-state of {sizes} bytes " \
           "left out (attestation over 3000 bytes)" in notes


@pytest.fixture
def monkeypatch_limit(decided):
    from gatewatch.processors.policy import attest
    _, keys, pol_dir, _ = decided
    policy, key = load_policy_dir(pol_dir), load_signing_key("decider", keys)
    saved = attest.MAX_ATTESTATION_BYTES

    def set_limit(limit):
        attest.MAX_ATTESTATION_BYTES = limit
        return policy, key
    yield set_limit
    attest.MAX_ATTESTATION_BYTES = saved
