"""CDC schema drift: compare a row shape against the table's reference shape.

A shape is {field: JSON type} (gatewatch.processors.inputs.row_shape: null, boolean, number, string, array,
object). The reference is the shape registered in the policy (`cdc.schemas: {db.table: {field:
type}}`; Avro/Debezium/SQL type names are mapped to JSON types) or else the first shape seen for
the table in partition order. A shape is incompatible when it lacks a reference field or gives
a field another non-null type; added fields and nulls are compatible. schema_drift over a window
= the number of distinct incompatible shapes seen in it.
"""
from __future__ import annotations

_TYPE_MAP = {
    "int": "number", "int8": "number", "int16": "number", "int32": "number", "int64": "number",
    "integer": "number", "long": "number", "float": "number", "float32": "number",
    "float64": "number", "double": "number", "decimal": "number", "numeric": "number",
    "bigint": "number", "smallint": "number", "real": "number",
    "bool": "boolean", "boolean": "boolean", "str": "string", "string": "string",
    "text": "string", "varchar": "string", "bytes": "string", "uuid": "string",
    "array": "array", "list": "array", "struct": "object", "map": "object", "object": "object",
    "null": "null",
}


def normalize(shape: dict) -> dict:
    return {str(f): _TYPE_MAP.get(str(t).lower(), str(t).lower()) for f, t in shape.items()}


def incompatible(reference: dict, shape: dict) -> bool:
    for field, ref_type in reference.items():
        t = shape.get(field)
        if t is None:
            return True
        if t != ref_type and "null" not in (t, ref_type):
            return True
    return False
