"""A PartitionAggregator's aggregates to and from the partial body (docs/partials.md): the wire
format kept apart from the aggregation (processors.partials), both ways in one place."""
from __future__ import annotations

from gatewatch.processors.digest import LogHistogram


def body_of(agg, wire: bool = True) -> dict:
    """The aggregates of a PartitionAggregator as the partial's body (docs/partials.md). wire=False
    keeps the histograms as LogHistogram objects: for a signals task in this process (replay)."""
    buckets = []
    hist = LogHistogram.to_json if wire else _same
    for (svc, coh, rel, b), (n, e, h) in agg.req.items():
        buckets.append({"d": "requests", "k": [svc, coh, rel], "b": b, "n": n, "e": e, "h": hist(h)})
    for (svc, coh, name, rel, b), (n, t, v) in agg.gauge.items():
        buckets.append({"d": "gauges", "k": [svc, coh, name, rel], "b": b, "n": n, "t": t, "v": v})
    for (scope, route, coh, metric, rel, b), h in agg.rum.items():
        buckets.append({"d": "rum", "k": [scope, route, coh, metric, rel], "b": b, "h": hist(h)})
    for (scope, table, b), (n, rows, lc, h, sh) in agg.cdc.items():
        buckets.append({"d": "cdc", "k": [scope, table], "b": b, "n": n, "rows": rows, "lc": lc,
                        "h": hist(h), "sh": dict(sorted(sh.items()))})
    for (svc, coh, rel, role, b), ps in agg.series.items():
        buckets.append({"d": "series", "k": [svc, coh, rel, role], "b": b,
                        "p": sorted(ps, key=lambda p: (p["t"], p["s"]))})
    buckets.sort(key=lambda x: (x["d"], x["k"], x["b"]))
    return {"source": agg.source, "topic": agg.topic, "partition": agg.partition,
            "first_offset": agg.first_offset, "last_offset": agg.last_offset,
            "records": agg.records, "rejected": agg.rejected,
            "origin_ms": agg.origin_ms, "max_event_ms": agg.max_event_ms,
            "watermark_ms": agg.watermark_ms, "buckets": buckets,
            "shapes": dict(sorted(agg.shapes.items())),
            "first_shapes": sorted([s, t, sid, ts] for (s, t), (ts, sid) in agg.first_shapes.items())}


def _same(h: LogHistogram) -> LogHistogram:
    return h


def load_body(agg, body: dict) -> None:
    """body_of's inverse: restore a PartitionAggregator's aggregates (a restart)."""
    agg.first_offset, agg.last_offset = body["first_offset"], body["last_offset"]
    agg.records, agg.rejected = body["records"], body["rejected"]
    for x in body["buckets"]:
        d, k, b = x["d"], x["k"], x["b"]
        if d == "requests":
            agg.req[(*k, b)] = [x["n"], x["e"], LogHistogram.from_json(x["h"])]
        elif d == "gauges":
            agg.gauge[(*k, b)] = [x["n"], x["t"], x["v"]]
        elif d == "rum":
            agg.rum[(*k, b)] = LogHistogram.from_json(x["h"])
        elif d == "cdc":
            agg.cdc[(*k, b)] = [x["n"], x["rows"], x["lc"], LogHistogram.from_json(x["h"]),
                                 dict(x["sh"])]
        elif d == "series":
            agg.series[(*k, b)] = list(x["p"])
    agg.shapes = dict(body["shapes"])
    for s, t, sid, ts in body["first_shapes"]:
        agg.first_shapes[(s, t)] = [ts, sid]
    for sid, shape in agg.shapes.items():
        agg._shape_ids[tuple(tuple(p) for p in shape)] = sid
