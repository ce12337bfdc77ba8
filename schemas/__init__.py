"""The wire contract: one Avro schema (<name>.avsc) and one JSON Schema (<name>.json) per topic value.

Topic -> schema name is in gatewatch.streams.runtime.topics.CATALOGUE (TopicSpec.value).
"""
from __future__ import annotations

import functools
from importlib import resources

import orjson


@functools.lru_cache(maxsize=None)
def avro_schema(name: str, without: tuple[str, ...] = ()) -> dict:
    """The parsed (fastavro) Avro schema for a schema name; `without`: less these fields (an
    earlier layout, from before they were appended)."""
    import fastavro
    raw = orjson.loads(resources.files(__name__).joinpath(f"{name}.avsc").read_bytes())
    raw["fields"] = [f for f in raw["fields"] if f["name"] not in without]
    return fastavro.parse_schema(raw)


@functools.lru_cache(maxsize=None)
def json_schema(name: str) -> dict:
    return orjson.loads(resources.files(__name__).joinpath(f"{name}.json").read_bytes())


def available() -> set[str]:
    return {p.name.rsplit(".", 1)[0] for p in resources.files(__name__).iterdir()
            if p.name.endswith((".avsc", ".json"))}
