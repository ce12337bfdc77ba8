"""Pre-aggregated metrics as points of series: what Prometheus and OpenTelemetry metrics decode to.

A service emitting metrics sends a histogram and a few counters every 10-60 s instead of one record
per request. Each observation is a Point of a series (a metric name with all its labels). Most of
them are cumulative (a counter's total since the process started), and producers write them without
a key, so the points of one series may land in any partition: turning them into counts per time
bucket (deltas, with counter resets) happens in the signals task that owns the service, once its
watermark has passed them (processors.signals.series).

A series' role says what it feeds:
- "requests": the HTTP server request series (OTLP http.server.request.duration, Prometheus
  http_requests_total and http_request_duration_seconds by default): request counts, errors
  (status >= 500) and latency, the same request signals per-request samples give;
- any other role is the name of a declared signal (policy `signals.declared`) the metric feeds.
"""
from __future__ import annotations

from typing import NamedTuple


class Point(NamedTuple):
    service: str
    cohort: str
    release: str
    role: str               # "requests", or a declared signal's name
    series: str             # the series: metric name and every label, canonical
    kind: str               # counter | histogram | bucket (one Prometheus `le` series) | gauge
    cumulative: bool        # a running total (deltas come from consecutive points) or a delta
    start_ms: int | None    # the series' start (OTLP start_time), None when unknown
    ts_ms: int
    status: int | None      # the HTTP status of a request series
    value: float            # counter or gauge value; histogram count; a bucket series' count <= le
    bounds: tuple = ()      # explicit histogram: bucket upper bounds (ms for requests), ascending
    counts: tuple = ()      # histogram: counts per bucket (explicit: len(bounds) + 1; exponential: from offset)
    scale: int | None = None  # exponential histogram: base = 2 ** (2 ** -scale)
    offset: int = 0         # exponential histogram: index of counts[0]
    zero: int = 0           # exponential histogram: zero bucket count
    le: float | None = None  # a Prometheus bucket series' upper bound (inf for +Inf)
    family: str = ""        # a bucket series' histogram (name and labels without le)
    origin: str = ""        # the producer: an OTLP process (start time, instance), a Prometheus target
    unit: float = 1.0       # exponential histogram: ms per unit of its bucket bounds (OTLP `s`: 1000)


def series_id(name: str, labels: dict) -> str:
    """name{k="v",...} with the labels sorted: the identity of a series."""
    return name + "{" + ",".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


def point_json(p: Point) -> dict:
    """The point as partials carry it (processors.signals.series reads it). A +Inf `le` is null."""
    le = p.le
    if le is not None and le == float("inf"):
        le = None
    return {"s": p.series, "kind": p.kind, "cum": p.cumulative, "start": p.start_ms, "t": p.ts_ms, "st": p.status,
            "v": p.value, "bd": list(p.bounds), "c": list(p.counts), "sc": p.scale, "off": p.offset, "z": p.zero,
            "le": le, "fam": p.family, "o": p.origin, "u": p.unit}


def interval_bucket(ts_ms: int, step_ms: int, kind: str) -> int:
    """The step a point counts in. A counter or histogram point ends the interval it counts
    ((previous t, t]): the step holding its last instant, t - 1 ms; a gauge is an instant."""
    t = ts_ms if kind == "gauge" else ts_ms - 1
    return t - t % step_ms
