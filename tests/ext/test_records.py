"""The kit's Records stay generated from schemas/: same fields, same required ones, and what an agent
encodes is valid against the topic's JSON Schema and decodes in gatewatch as intended."""
from __future__ import annotations

from pathlib import Path

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch import schemas
from gatewatch.streams.ext import RECORDS, encode
from gatewatch.streams.ext.codegen import class_name, render

RECORDS_FILE = Path(__file__).resolve().parents[2] / "streams" / "ext" / "records.py"


def test_records_file_is_what_the_generator_writes_from_schemas():
    assert RECORDS_FILE.read_text(encoding="utf-8") == render(), \
        "schemas/ changed: python -m gatewatch.streams.ext.codegen > streams/ext/records.py"


@pytest.mark.parametrize("name", sorted(schemas.available()))
def test_every_schema_with_properties_has_its_record(name):
    props = schemas.json_schema(name).get("properties") or {}
    if not props:
        assert name not in RECORDS  # debezium_envelope: Debezium's shape, not ours to type
        return
    rec = RECORDS[name]
    assert rec.__name__ == class_name(name)
    fields = rec._options.fields
    assert set(fields) == set(props)
    required = set(schemas.json_schema(name).get("required", []))
    # the required properties come first and take no default (faust gives a nullable one None)
    assert set(list(fields)[:len(required)]) == required
    assert set(fields) - required <= set(rec._options.defaults)


_names = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@settings(deadline=None)  # the first example imports the decoders
@given(service=_names, metric=st.from_regex(r"[A-Za-z_][A-Za-z0-9_.:-]{0,30}", fullmatch=True),
       value=st.floats(allow_nan=False, allow_infinity=False, width=32), ts=st.integers(10**12, 4 * 10**12),
       cohort=st.none() | _names, release=st.none() | st.from_regex(r"[0-9][0-9.]{0,10}", fullmatch=True))
def test_an_encoded_gauge_sample_is_valid_and_decodes_to_the_same_gauge(service, metric, value, ts, cohort, release):
    from gatewatch.processors.inputs import decode
    rec = RECORDS["gauge_sample"](name=metric, value=value, type="gauge", service=service, cohort=cohort,
                                  release=release, ts=ts)
    body = encode(rec)
    jsonschema.validate(orjson.loads(body), schemas.json_schema("gauge_sample"))
    [g] = decode("metrics", service.encode(), body, None)
    assert (g.service, g.cohort, g.name, g.value, g.ts_ms, g.release) == \
        (service, cohort or "stable", metric, value, ts, release or "")


def test_a_decided_action_and_a_null_signal_round_trip_through_their_records():
    from gatewatch.processors.policy import Engine
    from tests.policy.helpers import make_policy, sig, step_batches
    eng, actions = Engine(make_policy()), []
    for i in range(20):
        for b in step_batches(i, overrides={"invariant": 1}):
            actions += eng.on_batch(b)
    assert any(a["gate"] is None and a["permit"] is None for a in actions)  # required, null
    for a in actions:
        body = encode(RECORDS["action"](**a))
        assert orjson.loads(body) == a
        jsonschema.validate(orjson.loads(body), schemas.json_schema("action"))
    null = dict(sig("err5xx_rate", None, 1_767_225_600_000, samples=0), subject="", release="1.0")
    assert orjson.loads(encode(RECORDS["signal"](**null))) == null  # value stays, as null
    jsonschema.validate(null, schemas.json_schema("signal"))
