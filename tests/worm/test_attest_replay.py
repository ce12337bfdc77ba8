"""`gatewatch verify --replay`: a bundle whose log holds the engine's attestations re-derives every
action from its recorded pre-state and inputs; a recorded input that was altered (even by a decider
that re-hashed it and the log that bound it) makes it name that action and exit 1."""
from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.processors.canonical import canonical_json, content_id, sha256_hex
from gatewatch.processors.policy import permit_signer
from gatewatch.processors.policy.scoped import ScopedEngine
from gatewatch.processors.signing import key_id, sign_attestation
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm.admission import check_record
from gatewatch.sinks.worm.evidence import BundleError, build_files, verify_bundle, write_bundle
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime.keys import load_signing_key, load_verify_key, public_keys
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.policy.helpers import TEST_POLICY
from tests.policy.test_properties import step_batches
from tests.worm import factory

SCENARIO = [("burn", 2.0) if i == 12 else ("healthy", None) for i in range(20)]


@pytest.fixture(scope="module")
def decided(tmp_path_factory):
    """(tmp, keys dir, policy dir, [(kind, value)] in the order decide publishes them)."""
    tmp = tmp_path_factory.mktemp("attest")
    keys = factory.keys(tmp)
    pol_dir = tmp / "policies"
    pol_dir.mkdir()
    (pol_dir / "project.yml").write_text(TEST_POLICY)
    engine = ScopedEngine(load_policy_dir(pol_dir), permit_signer(load_signing_key("decider", keys)))
    out = []
    for scope in ("svc-a", "svc-b"):
        for i, (kind, arg) in enumerate(SCENARIO):
            for b in step_batches(i, kind, arg, scope).values():
                acts = engine.on_batch(b)
                out += [("attestations", a) for a in engine.take_attestations()] + [("actions", a) for a in acts]
    return tmp, keys, str(pol_dir), out


def bundle(tmp_path, keys, pol_dir, records) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = factory.quorum_log(str(tmp_path / "w.db"), keys, records)
    files = build_files(store, cp.default_policy(keys_path=keys), public_keys(keys), pol_dir,
                        log_key=load_signing_key("log", keys))
    store.close()
    out = str(tmp_path / "b.tar.gz")
    write_bundle(files, out)
    return out


def reseal(att: dict, keys) -> dict:
    """The attestation re-identified and signed with the decider key: what a decider (or whoever
    holds its key) that doctored it would log."""
    body = {k: v for k, v in att.items() if k not in ("id", "signature")}
    aid = content_id(body)
    return {"id": aid, **body, "signature": sign_attestation(load_signing_key("decider", keys), aid)}


def abort_of(records, scope="svc-a"):
    act = next(v for k, v in records if k == "actions" and v["kind"] == "abort" and v["scope"] == scope)
    att = next(v for k, v in records if k == "attestations" and act["id"] in v["actions"])
    return act, att


def test_replay_re_derives_every_action(decided, tmp_path, capsys):
    _, keys, pol_dir, records = decided
    n_actions = sum(k == "actions" for k, _ in records)
    n_atts = sum(k == "attestations" for k, _ in records)
    assert n_actions >= 10 and n_atts >= 2
    out = bundle(tmp_path, keys, pol_dir, records)
    assert main(["verify", out, "--trusted-keys", keys, "--replay"]) == 0
    printed = capsys.readouterr().out
    assert f"replay: {n_actions} of {n_actions} actions re-derived from {n_atts} attestations" in printed
    assert "verified against trusted keys" in printed


def test_an_altered_input_names_its_action(decided, tmp_path, capsys):
    """A decider that logs a doctored input (re-hashed, so every id and the Merkle tree agree):
    the bundle still verifies as a log, and --replay names the abort it no longer explains."""
    _, keys, pol_dir, records = decided
    act, att = abort_of(records)
    inputs = orjson.loads(att["inputs"])
    changed = [s for s in inputs if s["name"] == "burn_rate_4h"]
    assert changed
    for s in changed:
        s["value"] = 0.2  # the burn that fired the rollback, recorded as healthy
    forged = dict(att, inputs=canonical_json(inputs).decode())
    forged["hashes"] = dict(att["hashes"], inputs=sha256_hex(forged["inputs"].encode()))
    forged = reseal(forged, keys)
    out = bundle(tmp_path, keys, pol_dir, [(k, forged if v is att else v) for k, v in records])
    assert main(["verify", out, "--trusted-keys", keys]) == 0  # a consistent log of a wrong record
    capsys.readouterr()
    assert main(["verify", out, "--trusted-keys", keys, "--replay"]) == 1
    err = capsys.readouterr().err
    assert f"action {act['id']} (scope svc-a): attestation {forged['id']}:" in err, err
    # an input changed without re-hashing is caught by its hash, naming the same action
    lazy = reseal(dict(att, inputs=forged["inputs"]), keys)
    with pytest.raises(BundleError, match=f"action {act['id']} \\(scope svc-a\\): .*inputs do not hash"):
        verify_bundle(bundle(tmp_path / "lazy", keys, pol_dir, [(k, lazy if v is att else v) for k, v in records]),
                      replay=True)


def test_an_altered_pre_state_names_its_action(decided, tmp_path):
    _, keys, pol_dir, records = decided
    act, att = abort_of(records, "svc-b")
    state = orjson.loads(att["pre_state"])
    state["units"][""]["gate"]["state"] = "PLAN_OK"  # as if the gate had not advanced
    forged = dict(att, pre_state=canonical_json(state).decode())
    forged["hashes"] = dict(att["hashes"], pre_state=sha256_hex(forged["pre_state"].encode()))
    forged = reseal(forged, keys)
    out = bundle(tmp_path, keys, pol_dir, [(k, forged if v is att else v) for k, v in records])
    with pytest.raises(BundleError, match=f"action {act['id']} \\(scope svc-b\\)"):
        verify_bundle(out, replay=True)


def test_an_unattested_action_is_named(decided, tmp_path):
    _, keys, pol_dir, records = decided
    act, att = abort_of(records)
    out = bundle(tmp_path, keys, pol_dir, [(k, v) for k, v in records if v is not att])
    assert verify_bundle(out).actions == sum(k == "actions" for k, _ in records)  # fine as a log
    with pytest.raises(BundleError, match=f"action {act['id']} \\(scope svc-a\\): no attestation"):
        verify_bundle(out, replay=True)


def test_replay_needs_the_bundled_policy(decided, tmp_path):
    _, keys, _, records = decided
    with pytest.raises(BundleError, match="--replay needs the policy files"):
        verify_bundle(bundle(tmp_path, keys, None, records), replay=True)


def test_the_log_admits_attestations_on_their_topic_only(decided):
    _, keys, _, records = decided
    vk = load_verify_key("decider", keys)
    decider = {key_id(vk): vk}
    att = next(v for k, v in records if k == "attestations")
    assert check_record("attestations", "gw.attestations", att, decider, {}) == (None, "attestation")
    assert check_record("trajectories", "gw.trajectories", att, decider, {})[0] == "attestation_on_trajectories"
    assert check_record("attestations", "gw.attestations", dict(att, scope="other"), decider, {})[0] \
        == "attestation refused: bad_id: not the content hash of the attestation"


JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["scope", "policy_hash", "pre_state", "inputs", "hashes", "actions", "rng", "ts",
                        "state_version"]), JSON, st.booleans())
def test_a_malformed_attestation_is_named_never_a_traceback(decided, field, value, as_text):
    """Whatever a (re-hashed) attestation field holds, --replay fails with one named line or passes."""
    _, keys, pol_dir, records = decided
    _, att = abort_of(records)
    bad = reseal(dict(att, **{field: canonical_json(value).decode() if as_text else value}), keys)
    with tempfile.TemporaryDirectory() as tmp:
        out = bundle(Path(tmp), keys, pol_dir, [(k, bad if v is att else v) for k, v in records])
        try:
            verify_bundle(out, replay=True)
        except BundleError as e:
            assert str(e).startswith("action ") and "\n" not in str(e), str(e)


def test_an_attestation_under_another_policy_exports_and_is_named(decided, tmp_path):
    """policy_hashes.json counts the actions' hashes only (as verify does), so the bundle exports
    and verifies as a log; replay names the action whose attestation names a policy not bundled."""
    _, keys, pol_dir, records = decided
    act, att = abort_of(records)
    other = reseal(dict(att, policy_hash="0" * 64), keys)
    out = bundle(tmp_path, keys, pol_dir, [(k, other if v is att else v) for k, v in records])
    assert verify_bundle(out).actions == sum(k == "actions" for k, _ in records)
    with pytest.raises(BundleError, match=f"action {act['id']} .*policy 0{{64}} is not among the bundled policies"):
        verify_bundle(out, replay=True)
