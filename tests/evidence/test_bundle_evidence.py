"""evidence/ files in the bundle: bound by the signed manifest, checked for form by verify, named when altered."""
from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.cardinality import count_series, report
from gatewatch.processors.span_coverage import coverage_report
from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import evidence_files as ef
from gatewatch.sinks.worm.evidence import BundleError, build_files, sign_manifest, verify_bundle, write_bundle
from gatewatch.streams.runtime.keys import public_keys
from tests.worm import factory

COVERAGE = coverage_report([("checkout", {"a", "b"})] * 19 + [("checkout", {"a"})], {"checkout": ["a", "b"]})
DRILL = {"format": "gatewatch.drill/1", "policy_hash": "p" * 64, "ok": True, "pass": 1, "fail": 0,
         "hooks": [{"hook": "cdc_lag", "status": "PASS", "kind": "hook", "scenario": "cdc_freeze"}]}
SCHEMAS = {"format": "gatewatch.input-schemas/1", "records": 3, "histogram_schemas": [], "rows": [
    {"service": "checkout", "input": "metrics", "schema": "gauge_sample", "version": "", "histogram": "-", "records": 3}]}
CARD = report(count_series([{"name": "err", "domain": "requests", "scope": "checkout"}]))


def _evidence() -> dict[str, bytes]:
    return {ef.COVERAGE: ef.encode(COVERAGE), ef.SCHEMAS: ef.encode(SCHEMAS), ef.CARDINALITY: ef.encode(CARD),
            ef.DRILL: ef.encode(DRILL)}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("evb")
    keys = factory.keys(tmp)
    store = factory.log_with_quorum(str(tmp / "w.db"), keys, n_actions=3)
    policy = cp.default_policy(keys_path=keys)
    files = build_files(store, policy, public_keys(keys), None, (), factory.load_signing_key("log", keys), _evidence())
    store.close()
    return tmp, files, factory.load_signing_key("log", keys), policy


def _verify(tmp, files, name="x.tar.gz"):
    write_bundle(files, str(tmp / name))
    return verify_bundle(str(tmp / name))


def test_bound_and_reported(bundle):
    tmp, files, _, _ = bundle
    lines = _verify(tmp, files).lines
    assert "span coverage: PASS (1 services, 20 traces, target 95 %)" in lines
    assert any(x.startswith("cardinality: OK (series_active=1") for x in lines)
    assert any(x.startswith("drill: 1 PASS, 0 FAIL") for x in lines)
    assert any(x.startswith("input schemas: 1 (service, input, schema) rows over 3 records") for x in lines)


def test_a_tampered_coverage_file_fails_verify(bundle):
    tmp, files, _, _ = bundle
    doc = orjson.loads(files[ef.COVERAGE])
    doc["services"]["checkout"]["covered"] = 20
    altered = dict(files, **{ef.COVERAGE: ef.encode(doc)})
    with pytest.raises(BundleError, match="file evidence/span_coverage.json: sha256 differs"):
        _verify(tmp, altered)


def test_a_resigned_contradiction_is_still_refused(bundle):
    """Even the log key's holder cannot bind a coverage that says PASS while its numbers say FAIL."""
    tmp, files, log_key, policy = bundle
    doc = orjson.loads(files[ef.COVERAGE])
    doc["services"]["checkout"].update(covered=10, coverage=0.5)  # status stays PASS: a lie
    altered = dict(files, **{ef.COVERAGE: ef.encode(doc)})
    m = orjson.loads(altered["manifest.json"])
    import hashlib
    m["files"] = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(altered.items()) if k not in
                  ("manifest.json", "manifest.sig")}
    altered["manifest.json"] = orjson.dumps(m, option=orjson.OPT_INDENT_2)
    altered["manifest.sig"] = sign_manifest(altered, policy.log.name, log_key)
    with pytest.raises(BundleError, match="service checkout: status PASS contradicts"):
        _verify(tmp, altered)


@pytest.mark.parametrize("name,edit,why", [
    (ef.CARDINALITY, lambda d: d["domains"]["DEC"].update(series=5000), "status contradicts series"),
    (ef.DRILL, lambda d: d.update(fail=3), "pass/fail counts"),
    (ef.SCHEMAS, lambda d: d.update(records=4), "record total"),
])
def test_each_file_is_checked_for_consistency(name, edit, why):
    doc = orjson.loads(_evidence()[name])
    edit(doc)
    with pytest.raises(BundleError, match=why):
        ef.check_evidence({name: ef.encode(doc)})


def test_reformatted_or_unknown_evidence_is_refused():
    with pytest.raises(BundleError, match="not as the exporter writes it"):
        ef.check_evidence({ef.DRILL: orjson.dumps(DRILL)})
    with pytest.raises(BundleError, match="not a known evidence file"):
        ef.check_evidence({"evidence/extra.json": b"{}"})


def test_absent_evidence_is_said_so_or_refused_when_required(bundle):
    tmp, files, _, _ = bundle
    write_bundle(files, str(tmp / "all.tar.gz"))
    assert verify_bundle(str(tmp / "all.tar.gz"), require_evidence=True).size > 0
    with pytest.raises(BundleError, match="file evidence/drill.json: missing"):
        ef.check_evidence({k: v for k, v in files.items() if k != ef.DRILL}, require=True)
    assert ef.check_evidence({}) == ["span coverage: not in this bundle", "input schemas: not in this bundle",
                                     "cardinality: not in this bundle", "drill: not in this bundle"]


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=5), max_leaves=20)


def _mutations(name: str):
    base = orjson.loads(_evidence()[name])
    return st.builds(lambda k, v: {**base, k: v}, st.sampled_from(sorted(base)), JSON) | JSON


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(ef.CHECKS)), st.data())
def test_any_evidence_document_is_accepted_or_named_never_a_crash(name, data):
    doc = data.draw(_mutations(name))
    try:
        ef.check_evidence({name: ef.encode(doc) if isinstance(doc, dict) else orjson.dumps(doc)})
    except BundleError as e:
        assert str(e).startswith(f"file {name}: ")


def test_a_drill_of_another_policy_is_refused():
    files = {ef.DRILL: ef.encode(DRILL)}
    assert ef.check_evidence(files, DRILL["policy_hash"])[3].startswith("drill: 1 PASS")
    with pytest.raises(BundleError, match="drilled policy pppppppppppp, the bundled policy is 0123"):
        ef.check_evidence(files, "0123" * 16)


def test_a_service_cannot_claim_fewer_essential_spans_than_declared():
    doc = orjson.loads(ef.encode(COVERAGE))
    doc["services"]["checkout"]["essential"] = ["a"]
    with pytest.raises(BundleError, match="service checkout: essential spans differ from the declaration"):
        ef.check_evidence({ef.COVERAGE: ef.encode(doc)})


def test_evidence_that_judged_nothing_never_passes():
    """Review finding 9: all services UNDECLARED, an empty essential list, a drill of no hooks."""
    undeclared = coverage_report([("payments-api", {"a"})] * 3, {"checkout*": ["a"]})
    assert undeclared["status"] == "UNDECLARED"
    files = {ef.COVERAGE: ef.encode(undeclared)}
    assert ef.check_evidence(files)[0].startswith("span coverage: UNDECLARED (1 services, 3 traces")
    with pytest.raises(BundleError, match="span coverage UNDECLARED: no declared service was judged"):
        ef.check_evidence({**_evidence(), **files}, require=True)
    with pytest.raises(BundleError, match="overall status contradicts"):  # the old rule's PASS is refused
        ef.check_evidence({ef.COVERAGE: ef.encode({**undeclared, "status": "PASS"})})
    empty = coverage_report([("checkout", {"x"})], {"*": []})  # every trace "covers" nothing
    with pytest.raises(BundleError, match="bad essential span declaration"):
        ef.check_evidence({ef.COVERAGE: ef.encode(empty)})
    with pytest.raises(BundleError, match="no hook was drilled"):
        ef.check_evidence({ef.DRILL: ef.encode({**DRILL, "hooks": [], "pass": 0, "fail": 0, "ok": True})})
    no_data = coverage_report([], {"checkout*": ["a"]})
    with pytest.raises(BundleError, match="span coverage NO_DATA"):
        ef.check_evidence({**_evidence(), ef.COVERAGE: ef.encode(no_data)}, require=True)
