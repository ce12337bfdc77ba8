"""Issue 19, fuzzing: bundle verify, the policy loader, the executor config and every input decoder
get random input and may only refuse it their documented way (BundleError, PolicyError,
GatewatchError, a Rejection with a named reason), never crash with another exception or an
"unknown_format: <ExceptionType>" catch-all. The CI run is short; the longer run is

    GATEWATCH_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -n 0 tests/security/test_fuzz.py -p no:cacheprovider

(figures in docs/security.md). Hangs are bounded by pytest-timeout."""
from __future__ import annotations

import os
import re

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatewatch.processors import spans
from gatewatch.processors.inputs import decode
from gatewatch.processors.otlp import decode_otlp
from gatewatch.processors.policy import PolicyError
from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.sinks.worm.bundle import BundleError, write_bundle
from gatewatch.sinks.worm.evidence import verify_bundle
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.policy_files import compose

EXAMPLES = int(os.environ.get("GATEWATCH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
CRASH = re.compile(r"^(otlp: )?[A-Z]\w*(Error|Exception): ")

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(
    st.sampled_from(["service", "status", "latency_ms", "ts", "type", "name", "value", "cohort", "route", "release",
                     "payload", "before", "after", "op", "source", "ts_ms", "schema", "id", "delta", "url",
                     "resourceSpans", "scopeSpans", "spans", "attributes", "key", "stringValue", "x"]) | st.text(max_size=8),
    c, max_size=6), max_leaves=20)


def _no_crash(r):
    reason, detail = getattr(r, "reason", None), getattr(r, "detail", "") or ""
    assert not (reason == "unknown_format" and CRASH.match(detail)), detail


@FUZZ
@given(topic=st.sampled_from(["metrics", "rum", "cdc"]), doc=json_value, key=st.none() | st.binary(max_size=12),
       ts=st.none() | st.integers(-2**63, 2**63 - 1))
def test_input_decoders_on_random_json(topic, doc, key, ts):
    r = decode(topic, key, orjson.dumps(doc), ts)
    assert isinstance(r, list) or hasattr(r, "reason")
    _no_crash(r)


@FUZZ
@given(topic=st.sampled_from(["metrics", "rum", "cdc"]), raw=st.binary(max_size=200))
def test_input_decoders_on_random_bytes(topic, raw):
    _no_crash(decode(topic, None, raw, None))


@FUZZ
@given(raw=st.binary(max_size=300) | json_value.map(orjson.dumps))
def test_otlp_and_span_decoders(raw):
    _no_crash(decode_otlp(raw))
    r = spans.decode(raw)
    assert r is not None


@FUZZ
@given(text=st.text(max_size=300) | json_value.map(lambda v: orjson.dumps({"abort_rules": v}).decode()))
def test_policy_loader(text):
    try:
        compose([("project.yml", text)])
    except PolicyError as e:
        assert "\n" not in str(e)


@FUZZ
@given(doc=json_value)
def test_executor_config(doc):
    try:
        config_from_dict(doc if isinstance(doc, dict) else {"executor": doc}, "executor.yml").build_backends(None)
    except GatewatchError as e:
        assert "\n" not in str(e)


@FUZZ
@given(files=st.dictionaries(st.sampled_from(["manifest.json", "manifest.sig", "checkpoint.note", "entries.ndjson",
                                              "proofs.ndjson", "keys/public_keys.json", "policy/witness.policy",
                                              "policy_hashes.json", "policies/project.yml"]),
                             st.binary(max_size=200) | json_value.map(orjson.dumps), max_size=9))
def test_bundle_verify_on_random_files(tmp_path_factory, files):
    out = str(tmp_path_factory.mktemp("fz") / "b.tar.gz")
    write_bundle(files, out)
    with pytest.raises(BundleError):
        verify_bundle(out)


@FUZZ
@given(raw=st.binary(max_size=400))
def test_bundle_verify_on_random_bytes(tmp_path_factory, raw):
    p = tmp_path_factory.mktemp("fz") / "b.tar.gz"
    p.write_bytes(raw)
    with pytest.raises(BundleError):
        verify_bundle(str(p))
