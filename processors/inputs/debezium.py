"""gw.cdc: Debezium change-event envelopes, schema-change events, heartbeats and tombstones."""
from __future__ import annotations

from fnmatch import fnmatchcase

import orjson

from gatewatch.processors.inputs.samples import Bad, Change, Heartbeat, field_str, field_time

CDC_OPS = frozenset("cudrt")
_NOT_SNAPSHOT = (None, False, "false", "")


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"  # int vs float is not a schema change for a JSON producer
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


def row_shape(row: dict) -> tuple:
    """The schema-drift shape of a row image: sorted (field, JSON type) pairs."""
    return tuple(sorted((str(k), _json_type(v)) for k, v in row.items()))


_DDL_TYPES = {
    "number": ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "INTEGER", "BIGINT", "FLOAT", "DOUBLE",
               "DOUBLE PRECISION", "REAL", "YEAR", "SERIAL", "BIGSERIAL", "SMALLSERIAL", "INT2",
               "INT4", "INT8", "FLOAT4", "FLOAT8", "DATE", "TIME", "DATETIME"),
    "string": ("CHAR", "VARCHAR", "NCHAR", "NVARCHAR", "CHARACTER", "CHARACTER VARYING", "TEXT",
               "TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "NTEXT", "ENUM", "SET", "JSON", "JSONB", "UUID",
               "BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BYTEA",
               "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
    "boolean": ("BOOL", "BOOLEAN"),
}
_DDL_TYPE = {t: j for j, ts in _DDL_TYPES.items() for t in ts}


def _ddl_json_type(col: dict) -> str:
    """A DDL column type -> the JSON type of its value in a Debezium row image ("null" = either)."""
    name = str(col.get("typeName") or "").upper().replace(" UNSIGNED", "").replace(" ZEROFILL", "").strip()
    if name == "BIT":
        return "boolean" if col.get("length") in (None, 1) else "string"
    return _DDL_TYPE.get(name, "null")


def _table_id(tc: dict, database) -> tuple[str, str]:
    """("db", "table") of a tableChanges entry: its id is "db"."table" (or "db"."schema"."table")."""
    parts = [p.strip('"`[]') for p in str(tc.get("id") or "").split(".") if p]
    if not parts:
        raise Bad("missing_field:tableChanges.id")
    db = parts[0] if len(parts) > 1 else database
    if not isinstance(db, str) or not db:
        raise Bad("missing_field:databaseName")
    return db, parts[-1]


def owner(table: str, opts) -> str:
    """The scope a table's CDC signals go to: the first `cdc.services` glob matching "db.table"
    (processors.inputs.samples.InputOptions), else the table itself."""
    for pattern, service in getattr(opts, "cdc_services", ()):
        if fnmatchcase(table, pattern):
            return service
    return table


def _schema_change(d: dict, kafka_ts_ms, out: list, opts=None) -> None:
    changes = d.get("tableChanges")
    if changes is None:
        changes = []
    if not isinstance(changes, list):
        raise Bad("bad_type:tableChanges", type(changes).__name__)
    src = d.get("source") if isinstance(d.get("source"), dict) else {}
    ts = field_time(d, ("ts_ms",), None) if d.get("ts_ms") is not None else field_time(src, ("ts_ms",), kafka_ts_ms)
    database = d.get("databaseName") or src.get("db")
    for tc in changes:
        if not isinstance(tc, dict):
            raise Bad("bad_type:tableChanges", type(tc).__name__)
        kind = str(tc.get("type") or "").upper()
        if kind not in ("CREATE", "ALTER", "DROP"):
            raise Bad("bad_value:tableChanges.type", kind[:20])
        db, table = _table_id(tc, database)
        full = f"{db}.{table}"
        cols = ((tc.get("table") or {}).get("columns") or []) if kind != "DROP" else []
        if not isinstance(cols, list) or not all(isinstance(c, dict) and c.get("name") for c in cols):
            raise Bad("bad_type:tableChanges.table.columns")
        shape = tuple(sorted((str(c["name"]), _ddl_json_type(c)) for c in cols))
        out.append(Change(full, owner(full, opts), "s", ts, None, shape))


def is_tombstone(topic: str, value: bytes | None) -> bool:
    """A Debezium tombstone: a null value or the legacy {"schema":null,"payload":null}."""
    if topic != "cdc":
        return False
    if not value:
        return True
    if len(value) > 64 or value[:1] != b"{":
        return False
    try:
        return orjson.loads(value) == {"schema": None, "payload": None}
    except orjson.JSONDecodeError:
        return False


# The source block's event time across Debezium versions and connectors: ts_ms (1.x+), ts_sec
# (MySQL 0.x), ts_usec (PostgreSQL 0.x), sec (MongoDB 0.x); field -> milliseconds per unit.
_SOURCE_TS = (("ts_ms", 1), ("ts_us", 0.001), ("ts_usec", 0.001), ("ts_ns", 0.000001), ("ts_sec", 1000),
              ("sec", 1000))


def _source_ts_ms(src: dict) -> int:
    for f, to_ms in _SOURCE_TS:
        v = src.get(f)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise Bad(f"bad_type:source.{f}", type(v).__name__)
        return int(v * to_ms)
    raise Bad("missing_field:source.ts_ms", "nor ts_sec, ts_usec, sec")


def _source_table(src: dict) -> tuple[str, str]:
    """(db, table): source.db + source.table (or MongoDB's collection); MongoDB 0.x's ns "db.coll"."""
    table = src.get("table", src.get("collection"))
    db = src.get("db")
    if table is None and db is None and isinstance(src.get("ns"), str) and "." in src["ns"]:
        db, table = src["ns"].split(".", 1)
    if not isinstance(table, str) or not table:
        raise Bad("missing_field:source.table" if table is None else "bad_value:source.table")
    if db is None:
        raise Bad("missing_field:source.db")
    return field_str({"db": db}, "db"), table


def decode_cdc(d: dict, key, kafka_ts_ms, out: list, opts=None) -> None:
    if "payload" in d and ("schema" in d or isinstance(d.get("payload"), dict)):
        d = d["payload"]
        if d is None:
            return  # a wrapped tombstone
        if not isinstance(d, dict):
            raise Bad("not_object", "payload")
    if "tableChanges" in d or "ddl" in d:
        _schema_change(d, kafka_ts_ms, out, opts)
        return
    op = d.get("op")
    if op is None:
        if "ts_ms" in d and "source" not in d and "after" not in d and "before" not in d:
            out.append(Heartbeat(field_time(d, ("ts_ms",), None)))
            return
        raise Bad("missing_field:op")
    if not isinstance(op, str) or op not in CDC_OPS:
        raise Bad("bad_value:op", str(op)[:20])
    ts = field_time(d, ("ts_ms",), kafka_ts_ms)
    src = d.get("source")
    if not isinstance(src, dict):
        raise Bad("missing_field:source" if src is None else "bad_type:source")
    db, table = _source_table(src)
    src_ts = _source_ts_ms(src)
    full = f"{db}.{table}"
    snapshot = op == "r" or src.get("snapshot") not in _NOT_SNAPSHOT
    row = d.get("after") if d.get("after") is not None else d.get("before")
    if row is not None and not isinstance(row, dict):
        raise Bad("bad_type:after", type(row).__name__)
    scope = d.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise Bad("bad_type:scope", type(scope).__name__)
    out.append(Change(full, scope or owner(full, opts), op, ts, None if snapshot else ts - int(src_ts),
                      row_shape(row) if row is not None else None))
