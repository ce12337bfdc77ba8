"""PartitionAggregator.add_batch's loop for the metrics topic: request samples decoded and checked
by msgspec in C (processors.inputs.RequestWire) and grouped by (key as sent, bucket) into the
aggregator's `latency_groups`, which `fold_groups` counts into its `req` aggregates (in C, per
group) before anything reads them: the loop makes no per-record Python call.

Same state and rejections as PartitionAggregator.add() record by record (property-tested in
tests/signals/test_add_batch.py): a record this loop does not take plainly (another shape, a
service outside the name grammar, late, future, an unusual timestamp) goes through add(), and
aggregates are sums, so counting a group later gives the same aggregates.
"""
from __future__ import annotations

from gatewatch.processors.digest import _INV_LN_GAMMA, _MIN, LogHistogram, _ceil, _log
from gatewatch.processors.inputs import (
    DEFAULT_COHORT,
    MAX_TS_MS,
    MILLIS_Z,
    MIN_TS_MS,
    SECOND_MS,
    UNSET,
    WIRE_ERRORS,
    Rejection,
    cached_rfc3339_ms,
    decode_request_wire,
)
from gatewatch.processors.names import valid_name

_INF = float("inf")
_MAX_NAMES = 4096  # bound on the valid service names remembered per aggregator


def count_into(mapping: dict, iterable) -> None:
    """mapping[x] += 1 for each x: collections._count_elements (Counter.update's C loop) in Python,
    for an interpreter whose collections no longer has that private function."""
    get = mapping.get
    for x in iterable:
        mapping[x] = get(x, 0) + 1


try:
    from collections import _count_elements
except ImportError:
    _count_elements = count_into


def add_request_batch(agg, offsets, keys, values, kafka_ts, raw_values=None) -> list[tuple[int, Rejection]]:
    """add_batch for a metrics aggregator. `values` may be str (msgspec decodes either); then
    `raw_values` holds the same records as bytes, which add() and the caller's DLQ records get."""
    out: list[tuple[int, Rejection]] = []
    if not values:
        return out
    if agg.first_offset is None:
        agg.first_offset = offsets[0]
    step, lateness, max_future = agg._step, agg._lateness, agg._max_future
    names = agg._valid_services
    dec, errors, unset, parse_ts = decode_request_wire, WIRE_ERRORS, UNSET, cached_rfc3339_ms
    seconds, millis = SECOND_MS, MILLIS_Z
    groups, errs = agg.latency_groups, agg.error_groups
    general = 0  # records handed to add(), which counts them itself
    mx = agg.max_event_ms
    floor = None if mx is None else mx - lateness
    for i, (v, kts) in enumerate(zip(values, kafka_ts)):
        try:
            r = dec(v)
        except errors:
            r = None
        if r is not None and r.type is unset and ((svc := r.service) in names or _learn_name(names, svc)):
            ts = r.ts
            if type(ts) is str:
                sec = seconds.get(ts[:19])  # cached_rfc3339_ms, inlined for a seen second
                ms = millis.get(ts[19:])
                ts = sec + ms if sec is not None and ms is not None else parse_ts(ts)
            lat = r.latency_ms
            if (ts is not None and 100_000_000_000 <= ts < 100_000_000_000_000  # else for the general path
                    and lat < _INF and (floor is None or ts >= floor)
                    and (kts is None or not MIN_TS_MS < kts < MAX_TS_MS or ts <= kts + max_future)):
                if mx is None:
                    agg.origin_ms = mx = ts
                    floor = mx - lateness
                elif ts > mx:
                    mx = ts
                    floor = mx - lateness
                k = (svc, r.cohort, r.release, ts - ts % step)
                groups[k].append(lat)
                if r.status >= 500:
                    errs[k] += 1
                continue
        agg.max_event_ms = mx
        general += 1
        rej = agg.add(offsets[i], keys[i], v if raw_values is None else raw_values[i], kts)
        if rej is not None:
            out.append((i, rej))
        mx = agg.max_event_ms
        floor = None if mx is None else mx - lateness
    agg.max_event_ms = mx
    agg.records += len(values) - general
    agg.last_offset = offsets[-1]
    return out


class LazyColumn:
    """get(run[i]) on demand, as a sequence: add_request_batch reads offsets, keys and raw values
    only for the first and last record and for the records its loop does not take."""
    __slots__ = ("run", "get")

    def __init__(self, run: list, get):
        self.run, self.get = run, get

    def __len__(self) -> int:
        return len(self.run)

    def __getitem__(self, i: int):
        return self.get(self.run[i])


def _learn_name(names: set, service: str) -> bool:
    """Whether `service` is in the name grammar (processors.names), remembered when it is: the
    regex runs once per service instead of once per record."""
    if not valid_name(service):
        return False
    if len(names) >= _MAX_NAMES:
        names.clear()
    names.add(service)
    return True


def fold_groups(agg) -> None:
    """Count agg's latency groups into agg.req as _count_request would have, record by record,
    and empty them."""
    req, base, errs = agg.req, agg._baseline, agg.error_groups
    for raw, lats in agg.latency_groups.items():
        service, cohort, release, b = raw
        cohort = cohort or DEFAULT_COHORT
        k = (service, cohort, "" if release is None or cohort in base else release, b)
        a = req.get(k)
        if a is None:
            a = req[k] = [0, 0, LogHistogram()]
        a[0] += len(lats)
        a[1] += errs.get(raw, 0)
        add_all(a[2], lats)
    agg.latency_groups.clear()
    agg.error_groups.clear()


def add_all(h: LogHistogram, xs: list[float]) -> None:
    """h.add() of each value. A list of positive values (request latencies) is counted in C: the
    same float operations as LogHistogram.add (log, times 1/log(gamma), ceil), so the same buckets."""
    if all(map(_MIN.__lt__, xs)):  # add()'s first branch for every x
        _count_elements(h.pos, map(_ceil, map(_INV_LN_GAMMA.__mul__, map(_log, xs))))
    else:
        for x in xs:
            h.add(x)
