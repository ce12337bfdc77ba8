"""web-vitals batch beacons (route from the page URL via route templates, Kafka-timestamp
fallback) and Debezium tombstones / schema-change events."""
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewatch.processors.inputs import (
    UNMATCHED_ROUTE,
    Change,
    InputOptions,
    Vital,
    decode,
    is_tombstone,
    route_for_path,
)
from gatewatch.processors.otlp import InputAggregator
from gatewatch.processors.signals import run_pipeline
from tests.timebase import RECENT_MS

TEMPLATES = ("/market/:id", "/trade/:id", "/")
OPTS = InputOptions(route_templates=TEMPLATES)
KTS = RECENT_MS

# The web-vitals README's batching snippet sends JSON.stringify([...queue]) of Metric objects.
BEACON = [
    {"name": "LCP", "value": 1820.4, "rating": "good", "delta": 1820.4, "id": "v4-1", "entries": [{"startTime": 1}],
     "navigationType": "navigate", "navigationURL": "https://shop.example/market/42?ref=x#top"},
    {"name": "CLS", "value": 0.02, "rating": "good", "delta": 0.02, "id": "v4-2", "entries": [],
     "navigationType": "navigate", "navigationURL": "https://shop.example/trade/7/"},
    {"name": "INP", "value": 120, "rating": "good", "delta": 120, "id": "v4-3", "entries": [],
     "navigationType": "back-forward", "attribution": {"url": "https://shop.example/"}},
]


def test_batch_beacon_gives_one_sample_per_metric_with_derived_routes():
    got = decode("rum", None, orjson.dumps(BEACON), KTS, OPTS)
    assert got == [Vital("web", "/market/:id", "stable", "lcp", 1820.4, KTS),
                   Vital("web", "/trade/:id", "stable", "cls", 0.02, KTS),
                   Vital("web", "/", "stable", "inp", 120, KTS)]


def test_route_fallbacks():
    one = {"name": "TTFB", "value": 80, "navigationURL": "https://x/help/faq"}
    assert decode("rum", None, orjson.dumps(one), KTS, OPTS)[0].route == UNMATCHED_ROUTE
    assert decode("rum", None, orjson.dumps(one), KTS)[0].route == "/help/faq"  # no table: the bare path
    assert decode("rum", None, orjson.dumps({**one, "route": "/given"}), KTS, OPTS)[0].route == "/given"
    assert decode("rum", None, orjson.dumps({**one, "navigationURL": 5}), KTS).reason == "bad_type:navigationURL"


def test_timestamp_given_beats_kafka_timestamp_and_none_at_all_is_rejected():
    one = {"name": "FCP", "value": 900, "route": "/", "timestamp": KTS - 5000}
    assert decode("rum", None, orjson.dumps(one), KTS)[0].ts_ms == KTS - 5000
    del one["timestamp"]
    assert decode("rum", None, orjson.dumps(one), KTS)[0].ts_ms == KTS
    assert decode("rum", None, orjson.dumps(one), None).reason == "missing_field:timestamp"


def test_options_from_policy():
    o = InputOptions.from_policy({"rum": {"route_templates": list(TEMPLATES)},
                                  "otlp": {"cohort_attribute": "service.version", "cohorts": {"1.5.0": "canary"}}})
    assert o.route_templates == TEMPLATES and o.otlp_cohorts == {"1.5.0": "canary"}
    assert InputOptions.from_policy(None) == InputOptions()
    with pytest.raises(ValueError):
        InputOptions.from_policy({"rum": {"route_templates": "/market/:id"}})


@given(st.lists(st.text(alphabet="abc/:1", max_size=6), max_size=4))
def test_route_is_a_template_or_unmatched(segs):
    r = route_for_path("/" + "/".join(segs), TEMPLATES)
    assert r in TEMPLATES or r == UNMATCHED_ROUTE


# ---- Debezium -------------------------------------------------------------------------------

def test_tombstones_are_skipped_and_counted_not_rejected():
    agg = InputAggregator("cdc", 0)
    legacy = b'{"schema":null,"payload":null}'
    assert agg.add(0, b"k", None, KTS) is None
    assert agg.add(1, b"k", legacy, KTS) is None
    assert agg.take_skipped() == {"cdc:tombstone": 2}
    assert agg.flush()["rejected"] == 0
    assert is_tombstone("cdc", b"") and is_tombstone("cdc", legacy) and not is_tombstone("cdc", b'{"ts_ms":1}')
    assert not is_tombstone("metrics", None)


def _col(name, type_name, length=None):
    return {"name": name, "jdbcType": 4, "typeName": type_name, "typeExpression": type_name, "length": length,
            "position": 1, "optional": True, "autoIncremented": False, "generated": False}


def schema_change(kind, columns, ts, ddl="ALTER TABLE customers ..."):
    # the shape of a Debezium MySQL schema change topic record (JSON converter, with schema)
    return orjson.dumps({"schema": {"type": "struct", "name": "io.debezium.connector.mysql.SchemaChangeValue"},
                         "payload": {"source": {"connector": "mysql", "name": "dbserver1", "ts_ms": ts, "db": "inventory",
                                                "table": "customers", "snapshot": "false"},
                                     "ts_ms": ts + 5, "databaseName": "inventory", "schemaName": None, "ddl": ddl,
                                     "tableChanges": [{"type": kind, "id": '"inventory"."customers"',
                                                       "table": {"defaultCharsetName": "utf8mb4",
                                                                 "primaryKeyColumnNames": ["id"],
                                                                 "columns": columns}}]}})


def test_schema_change_event_decodes_to_a_shape():
    v = schema_change("ALTER", [_col("id", "INT"), _col("email", "VARCHAR", 255), _col("vip", "BIT", 1),
                                _col("price", "DECIMAL")], KTS)
    assert decode("cdc", None, v, None) == [Change("inventory.customers", "inventory.customers", "s", KTS + 5, None,
                                                    (("email", "string"), ("id", "number"), ("price", "null"),
                                                     ("vip", "boolean")))]
    drop = schema_change("DROP", [], KTS, "DROP TABLE customers")
    assert decode("cdc", None, drop, None)[0].shape == ()
    assert decode("cdc", None, b'{"ddl":"SET NAMES utf8","tableChanges":[]}', KTS) == []
    assert decode("cdc", None, b'{"ddl":"x","tableChanges":[{"type":"RENAME"}]}', KTS).reason == \
        "bad_value:tableChanges.type"


def _row(i, ts, **after):
    return orjson.dumps({"payload": {"op": "c", "ts_ms": ts, "after": after,
                                     "source": {"db": "inventory", "table": "customers", "ts_ms": ts - 100}}})


def _drift(records):
    batches, rejections = run_pipeline(records)
    assert not rejections
    return {s["ts"]: s["value"] for b in batches for s in b if s["name"] == "schema_drift"}


@pytest.mark.parametrize("change,drifts", [
    ([_col("id", "INT"), _col("email", "VARCHAR")], False),                 # unchanged
    ([_col("id", "INT"), _col("email", "VARCHAR"), _col("vip", "BOOL")], False),  # added column
    ([_col("id", "INT")], True),                                            # dropped column
    ([_col("id", "VARCHAR"), _col("email", "VARCHAR")], True),              # type change
])
def test_schema_change_feeds_schema_drift(change, drifts):
    recs = [("cdc", 0, i, b"k", _row(i, KTS + i * 1000, id=i, email="a@b"), KTS + i * 1000) for i in range(30)]
    recs.append(("cdc", 0, 30, b"k", schema_change("ALTER", change, KTS + 30_500), KTS + 30_500))
    recs += [("cdc", 0, 31 + i, b"k", _row(i, KTS + (31 + i) * 1000, id=i, email="a@b"), KTS + (31 + i) * 1000)
             for i in range(400)]
    drift = _drift(recs)
    assert drift and (max(v or 0 for v in drift.values()) >= 1) == drifts
