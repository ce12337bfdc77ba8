"""Whether a gw.partials record is one the signals task can apply (docs/partials.md), checked before
it touches the task: a record that fails halfway through SignalTask.apply would leave some of its
buckets merged and stop the worker on every restart. The check is a msgspec decode in C of the
fields the task reads, with their types as PartitionAggregator writes them; other fields pass.

partial_problem(raw) -> None, or one line saying what is wrong (where, for a gw.dlq record)."""
from __future__ import annotations

from typing import Annotated, Union

import msgspec

Name = str
Count = Annotated[int, msgspec.Meta(ge=0)]
Number = Union[int, float]


class Hist(msgspec.Struct):
    z: int = 0
    p: list[int] = []
    n: list[int] = []


class Requests(msgspec.Struct, tag_field="d", tag="requests"):
    k: tuple[Name, Name, Name]
    b: int
    n: int
    e: int
    h: Hist


class Gauges(msgspec.Struct, tag_field="d", tag="gauges"):
    k: tuple[Name, Name, Name, Name]
    b: int
    n: int
    t: int
    v: Number


class Rum(msgspec.Struct, tag_field="d", tag="rum"):
    k: tuple[Name, Name, Name, Name, Name]
    b: int
    h: Hist


class Cdc(msgspec.Struct, tag_field="d", tag="cdc"):
    k: tuple[Name, Name]
    b: int
    n: int
    rows: int
    lc: Union[int, None]
    h: Hist
    sh: dict[str, int]


class Point(msgspec.Struct):  # processors.inputs.points.point_json
    s: str
    kind: str
    cum: bool
    start: Union[int, None]
    t: int
    st: Union[int, None]
    v: Number
    bd: list[Number]
    c: list[Number]
    sc: Union[int, None]
    off: int
    z: Number
    le: Union[Number, None]
    fam: str
    o: str
    u: Number = 1.0  # absent from partials of earlier versions


class Series(msgspec.Struct, tag_field="d", tag="series"):
    k: tuple[Name, Name, Name, Name]
    b: int
    p: list[Point]


class Partial(msgspec.Struct):
    topic: str
    partition: int
    buckets: list[Union[Requests, Gauges, Rum, Cdc, Series]]
    source: Union[str, None] = None
    first_offset: Union[int, None] = None
    last_offset: Union[int, None] = None
    next_offset: Union[int, None] = None
    records: Count = 0
    rejected: Count = 0
    max_event_ms: Union[int, None] = None
    watermark_ms: Union[int, None] = None
    caught_up: bool = False
    shapes: dict[str, list[tuple[str, str]]] = {}
    first_shapes: list[tuple[str, str, str, int]] = []


_decode = msgspec.json.Decoder(Partial).decode


def partial_problem(raw: bytes | None) -> str | None:
    if raw is None:
        return "no value"
    try:
        p = _decode(raw)
    except msgspec.ValidationError as e:
        return str(e)
    except msgspec.DecodeError as e:
        return f"not JSON: {e}"
    if (p.first_offset is None) != (p.last_offset is None) or \
            (p.first_offset is not None and p.first_offset > p.last_offset):
        return f"offsets {p.first_offset}..{p.last_offset}"
    for i, x in enumerate(p.buckets):
        h = getattr(x, "h", None)
        if h is not None and (len(h.p) % 2 or len(h.n) % 2):
            return f"a histogram of odd length (bucket index, count pairs) - at `$.buckets[{i}].h`"
        if type(x) is Cdc and not x.sh.keys() <= p.shapes.keys():
            return f"a shape id not in `shapes` - at `$.buckets[{i}].sh`"
    if any(fs[2] not in p.shapes for fs in p.first_shapes):
        return "a shape id not in `shapes` - at `$.first_shapes`"
    return None
