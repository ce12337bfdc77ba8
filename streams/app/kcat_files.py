"""kcat -J files (what `gatewatch tail` prints and `gatewatch replay` reads): envelopes decoded
in C a batch of lines at a time, and the input partitions a set of files holds.

Each line is an envelope {"topic","partition","offset","ts","key","payload"} (payload = the record
value as a string, null for a tombstone; a binary value such as an otlp_proto record may come as
"payload_b64" instead). Unreadable lines are counted, never raised.
"""
from __future__ import annotations

import base64
import binascii
from collections import Counter
from itertools import islice
from operator import attrgetter
from typing import Annotated, Iterable, Iterator

import msgspec
import orjson

from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.topics import INPUTS

_WHERE = attrgetter("topic", "partition")


class Envelope(msgspec.Struct, kw_only=True, gc=False):
    """One kcat -J line. msgspec decodes the usual shape in C; other lines go through
    `envelope_from_dict` (a string partition, a non-string key...). Fields we do not read (tstype,
    broker, headers) are skipped unchecked: a line with invalid UTF-8 there still replays."""
    partition: Annotated[int, msgspec.Meta(ge=0)]
    offset: Annotated[int, msgspec.Meta(ge=0)]
    topic: str | None = None
    ts: int | None = None
    key: str | None = None
    payload: str | None = None
    payload_b64: str | None = None


_decode_envelope = msgspec.json.Decoder(Envelope).decode


def envelope_from_dict(d: dict) -> Envelope:
    """The envelope of a decoded kcat -J object; ValueError/TypeError when it is not one."""
    if not isinstance(d, dict) or "partition" not in d or "offset" not in d:
        raise ValueError("not a kcat -J envelope")
    ts, key, payload, b64 = d.get("ts"), d.get("key"), d.get("payload"), d.get("payload_b64")
    topic = d.get("topic")
    if int(d["partition"]) < 0 or int(d["offset"]) < 0:
        raise ValueError("a negative partition or offset")
    return Envelope(partition=int(d["partition"]), offset=int(d["offset"]), topic=None if topic is None else str(topic),
                    ts=ts if type(ts) is int else None, key=None if key is None else str(key),
                    payload=None if payload is None else str(payload), payload_b64=None if b64 is None else str(b64))


def logical_name(full: str, prefix: str) -> str | None:
    if full.startswith(prefix) and full[len(prefix):] in topics.BY_NAME:
        return full[len(prefix):]
    tail = full.rsplit(".", 1)[-1]
    return tail if tail in topics.BY_NAME else None


class _Where(msgspec.Struct, gc=False):
    partition: int
    topic: str | None = None


_decode_where = msgspec.json.Decoder(_Where).decode


def sources_of(envs: Iterable) -> list[str]:
    """The input partitions ("metrics:0", "otlp:1", ...) among these envelopes (anything with .topic
    and .partition): what the signals task waits for, as streaming waits for every partition of
    the input topics."""
    prefix, seen = topics.prefix(), set()
    collector = {t: lg for lg, t in topics.collector_topics().items()}
    for topic, partition in set(map(_WHERE, envs)):  # the distinct pairs, gathered in C
        full = topic or ""
        logical = collector.get(full) or logical_name(full, prefix)
        if logical in INPUTS or logical in topics.COLLECTOR:
            seen.add(f"{logical}:{partition}")
    return sorted(seen)


def scan_sources(paths: Iterable[str]) -> list[str]:
    """sources_of the kcat -J files' lines, reading only their topic and partition. A partition
    counts only when one of its lines is an envelope the feed reads (_read_each decides, for one
    line per partition): a line that merely names one (no offset, invalid UTF-8 in its payload)
    must not leave the signals task waiting for a source that never reports."""
    confirmed: set[tuple] = set()
    for path in paths:
        with open(path, "rb") as f:
            while batch := list(islice(f, 1024)):
                wheres = _wheres(batch)
                for where in set(wheres) - confirmed:  # empty once every partition is confirmed
                    if where is None:
                        continue
                    for line, w in zip(batch, wheres):
                        envs = _read_each([line], Counter()) if w == where else ()
                        if envs and _WHERE(envs[0]) == where:
                            confirmed.add(where)
                            break
    return sources_of(_Where(partition=p, topic=t) for t, p in confirmed)


def _wheres(batch: list[bytes]) -> list[tuple | None]:
    """(topic, partition) of each line, None for a line that names none. Decoded in C, line by
    line when a line is refused (then as the feed's fallback reads it)."""
    try:
        return list(map(_WHERE, map(_decode_where, batch)))
    except (msgspec.DecodeError, ValueError):
        pass
    out: list[tuple | None] = []
    for line in batch:
        try:
            out.append(_WHERE(_decode_where(line)))
        except (msgspec.DecodeError, ValueError):
            try:
                out.append(_WHERE(envelope_from_dict(orjson.loads(line))))
            except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError, RecursionError):
                out.append(None)
    return out


def read_envelopes(lines: Iterable[bytes], bad: Counter) -> Iterator[Envelope]:
    """The envelopes of kcat -J lines; unreadable lines are counted in `bad`."""
    for batch in envelope_batches(lines, bad):
        yield from batch


def envelope_batches(lines: Iterable[bytes], bad: Counter, size: int = 1024) -> Iterator[list[Envelope]]:
    """read_envelopes, `size` lines at a time: decoded in C (a batch with a line msgspec refuses
    is read line by line), handed on as lists (a generator's step per record was ~3 % of replay)."""
    it = iter(lines)
    while batch := list(islice(it, size)):
        try:
            yield list(map(_decode_envelope, batch))
        except (msgspec.DecodeError, ValueError, RecursionError):
            yield _read_each(batch, bad)


def _read_each(lines: list[bytes], bad: Counter) -> list[Envelope]:
    out = []
    for line in lines:
        try:
            out.append(_decode_envelope(line))
            continue
        except (msgspec.DecodeError, ValueError, RecursionError):  # orjson and the checks below decide
            pass
        line = line.strip()
        if not line:
            continue
        try:
            out.append(envelope_from_dict(orjson.loads(line)))
        except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError, RecursionError):
            bad["bad_envelope"] += 1
    return out


def value_of(env: Envelope) -> bytes | None:
    """The record value an envelope carries, as bytes; None for a tombstone or a `payload_b64`
    that is not base64 (callers skip and count such lines first: see b64_value)."""
    if env.payload_b64 is not None:  # binary values (otlp_proto): base64 in the envelope
        return b64_value(env.payload_b64)
    return None if env.payload is None else env.payload.encode()


def b64_value(text: str) -> bytes | None:
    """The bytes of a kcat -J `payload_b64`; None when it is not base64."""
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return None
