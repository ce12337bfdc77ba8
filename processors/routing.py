"""Which signals task owns a scope, and the partials ingest sends each task.

A signal (name, scope, cohort, subject, window) must be one value computed from every source
partition that carries the scope, whatever the producers keyed their records by. So ingest cuts
each source partition's partial into one partial per signals task (= gw.partials partition):
the buckets of the scopes that task owns, plus the source's progress (offsets, watermark,
caught-up), which every task needs even when none of its scopes appear (the watermark of a task
is the minimum over its sources: processors.signals.task).

The owner of a scope is Kafka's default partitioner applied to the scope as a key:
murmur2(utf-8 bytes) & 0x7fffffff mod the number of tasks, as Kafka's Java clients compute it
(org.apache.kafka.common.utils.Utils.murmur2), so gw.partials and gw.signals agree on a scope's
partition whenever they have as many partitions.
"""
from __future__ import annotations

from functools import lru_cache

from gatewatch.processors.canonical import content_id

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (seed 0x9747b28c) as a signed 32-bit int, like Utils.murmur2."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    tail = data[4 * n4:]
    if rest == 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=65_536)
def task_of(scope: str, tasks: int) -> int:
    """The signals task (gw.partials partition) that owns `scope`."""
    return (murmur2(scope.encode("utf-8")) & 0x7FFFFFFF) % tasks


def split_partial(partial: dict, tasks: int) -> list[dict]:
    """One partial per task, index = task: the buckets (and CDC shapes) of its scopes, and the
    source's progress in every one of them. Each gets its own content id."""
    parts = [{"buckets": [], "first_shapes": [], "shapes": {}} for _ in range(tasks)]
    for x in partial["buckets"]:
        parts[task_of(x["k"][0], tasks)]["buckets"].append(x)
    shapes = partial.get("shapes") or {}
    for fs in partial.get("first_shapes") or []:
        p = parts[task_of(fs[0], tasks)]
        p["first_shapes"].append(fs)
    for p in parts:
        used = {sid for x in p["buckets"] for sid in x.get("sh", ())} | {fs[2] for fs in p["first_shapes"]}
        p["shapes"] = {sid: shapes[sid] for sid in sorted(used) if sid in shapes}
    out = []
    progress = {k: v for k, v in partial.items() if k not in ("buckets", "first_shapes", "shapes", "id")}
    for t, p in enumerate(parts):
        body = {**progress, **p, "task": t, "tasks": tasks}
        body["id"] = content_id(body)
        out.append(body)
    return out
