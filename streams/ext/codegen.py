"""Writes streams/ext/records.py: one faust Record per topic value schema in schemas/*.json.

    python -m gatewatch.streams.ext.codegen > streams/ext/records.py

tests/ext/test_records.py regenerates it and fails when schemas/ and the file differ, so a schema
change without a regenerated kit is caught. Required fields come first (no default); optional ones
default to None. Nested objects and arrays stay plain dicts and lists: the Records type a topic's
top level, which is what an agent reads and writes.
"""
from __future__ import annotations

import keyword
import re
import sys

from gatewatch import schemas

HEADER = '''"""Typed faust Records of gatewatch's topic values. GENERATED from schemas/*.json by
`python -m gatewatch.streams.ext.codegen`: do not edit (tests/ext/test_records.py checks it).

Each Record serializes as plain JSON without faust's metadata (include_metadata=False), so what an
agent sends is what gatewatch's decoders read. `RECORDS` maps a schema name to its Record,
`REQUIRED` a Record to the properties its schema requires.
"""
from __future__ import annotations

{typing}
from gatewatch.streams.ext.faust_import import faust
'''

_SCALAR = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "object": "dict",
           "array": "list"}


def class_name(schema_name: str) -> str:
    return "".join(part.capitalize() for part in schema_name.split("_"))


def py_type(prop: dict) -> str:
    """The annotation for one JSON Schema property (top level only)."""
    if "const" in prop or "enum" in prop:
        values = prop.get("enum", [prop.get("const")])
        kinds = sorted({type(v).__name__ for v in values if v is not None})
        base = kinds[0] if len(kinds) == 1 and kinds[0] in ("str", "int", "float", "bool") else "Any"
        return f"Optional[{base}]" if None in values else base
    for combo in ("oneOf", "anyOf"):
        if combo in prop:
            parts = [py_type(p) for p in prop[combo]]
            nullable = "None" in parts
            parts = list(dict.fromkeys(p for p in parts if p != "None"))
            inner = parts[0] if len(parts) == 1 else f"Union[{', '.join(parts)}]"
            return f"Optional[{inner}]" if nullable else inner
    t = prop.get("type")
    if t is None:
        return "Any"
    types = t if isinstance(t, list) else [t]
    if types == ["null"]:
        return "None"
    parts = list(dict.fromkeys(_SCALAR[x] for x in types if x != "null"))
    inner = parts[0] if len(parts) == 1 else f"Union[{', '.join(parts)}]"
    return f"Optional[{inner}]" if "null" in types else inner


def record_source(name: str, schema: dict) -> str | None:
    props = schema.get("properties") or {}
    if not props:
        return None  # e.g. debezium_envelope: Debezium's own shape, validated by the decoder
    required = [p for p in schema.get("required", []) if p in props]
    optional = [p for p in props if p not in required]
    for p in props:
        if not p.isidentifier() or keyword.iskeyword(p):
            raise SystemExit(f"schemas/{name}.json: property {p!r} is not a Python identifier")
    title = schema.get("title", name)
    lines = [f"class {class_name(name)}(faust.Record, serializer=\"json\", include_metadata=False,",
             f"{' ' * (7 + len(class_name(name)))}namespace=\"gatewatch.{name}\"):",
             f'    """{title}: schemas/{name}.json."""']
    for p in required:
        lines.append(f"    {p}: {py_type(props[p])}")
    for p in optional:
        t = py_type(props[p])
        lines.append(f"    {p}: {t if t.startswith('Optional[') or t == 'Any' else f'Optional[{t}]'} = None")
    return "\n".join(lines)


def render() -> str:
    out, names = [], []
    for name in sorted(schemas.available()):
        src = record_source(name, schemas.json_schema(name))
        if src is not None:
            out.append("\n\n" + src)
            names.append(name)
    out.append("\n\nRECORDS = {\n" + "".join(f"    {n!r}: {class_name(n)},\n" for n in names) + "}")
    out.append("\n# the properties each value must carry, null or not (encode keeps them when None)\nREQUIRED = {\n"
               + "".join(f"    {class_name(n)}: frozenset({sorted(schemas.json_schema(n).get('required', []))!r}),\n"
                         for n in names) + "}")
    body = "\n".join(out)
    used = [t for t in ("Any", "Optional", "Union") if re.search(rf"\b{t}\b", body)]
    typing = f"from typing import {', '.join(used)}\n" if used else ""
    return HEADER.format(typing=typing) + body + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
