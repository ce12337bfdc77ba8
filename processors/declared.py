"""Declared signals: signals a policy defines from its inputs (`signals.declared`), beside the catalogue.

    signals:
      declared:
        queue_depth:                    # the signal's name, used in rules like a built-in
          metric: orders_queue_depth    # the source metric (gauge sample name, Prometheus or OTLP metric)
          labels: {queue: orders}       # optional: only series with these labels (Prometheus / OTLP)
          kind: gauge                   # gauge | counter | histogram
          aggregation: max              # gauge: last | max | min | mean; counter: rate | increase;
                                        # histogram: p50 | p75 | p90 | p95 | p99
          window: 5m                    # the window the aggregation covers (a multiple of the step)
          unit: count                   # a catalogue unit: ms s ratio delta multiple rps count
          min_samples: 1                # the rules' default minimum samples for this signal
          description: orders waiting   # for `policy explain` and docs/signals.md

A declared signal is computed per (service, cohort, release) by the signals task that owns the
service (processors.signals.declared) and delivered in the "gauges" domain. Counters are rates of
increase (per second over the window, counter resets handled: processors.signals.series), histograms
are quantiles. A gauge sample on gw.metrics whose name a declared signal's `metric` names (and that
declares no labels) feeds that declared signal instead of the plain gauge signal of that name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from gatewatch.processors.catalogue import CATALOGUE, resolve
from gatewatch.processors.timefmt import parse_duration_ms

KINDS = {"gauge": ("last", "max", "min", "mean"), "counter": ("rate", "increase"),
         "histogram": ("p95", "p50", "p75", "p90", "p99")}
UNITS = ("ms", "s", "ratio", "delta", "multiple", "rps", "count")
KEYS = ("metric", "labels", "kind", "aggregation", "window", "unit", "min_samples", "description")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,127}$")
DEFAULT_WINDOW_MS = 300_000


@dataclass(frozen=True)
class Declared:
    name: str
    metric: str
    labels: tuple            # ((label, value), ...) sorted
    kind: str
    aggregation: str
    window_ms: int
    unit: str
    min_samples: int
    description: str = ""

    def matches(self, labels: dict) -> bool:
        return all(labels.get(k) == v for k, v in self.labels)


class DeclaredError(ValueError):
    """path: where in the policy document; message: what is wrong (one line)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path


def parse_declared(doc: dict | None) -> dict[str, Declared]:
    """{name: Declared} from a composed policy document. Raises DeclaredError."""
    sig = (doc or {}).get("signals") or {}
    section = sig.get("declared") or {}
    step_ms = parse_duration_ms(sig.get("step") or "10s")
    if not isinstance(section, dict):
        raise DeclaredError("signals.declared", "must map signal names to their definitions")
    out = {}
    for name, spec in sorted(section.items()):
        out[str(name)] = _one(str(name), spec, step_ms)
    return out


def _one(name: str, spec, step_ms: int) -> Declared:
    path = f"signals.declared.{name}"
    if not _NAME.match(name):
        raise DeclaredError(path, "a declared signal name is lower_snake_case, at most 64 characters")
    if resolve(name) is not None:
        raise DeclaredError(path, f"{name} is a built-in signal (signal catalogue); declare another name")
    if not isinstance(spec, dict):
        raise DeclaredError(path, "must be a mapping with metric and kind")
    for k in spec:
        if k not in KEYS:
            raise DeclaredError(f"{path}.{k}", f"unknown key (known: {', '.join(KEYS)})")
    metric = spec.get("metric", name)
    if not isinstance(metric, str) or not _METRIC.match(metric):
        raise DeclaredError(f"{path}.metric", f"not a metric name: {metric!r}"[:120])
    labels = spec.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, (str, int)) for v in labels.values()):
        raise DeclaredError(f"{path}.labels", "must map label names to values")
    kind = spec.get("kind", "gauge")
    if kind not in KINDS:
        raise DeclaredError(f"{path}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}"[:120])
    agg = spec.get("aggregation", KINDS[kind][0])
    if agg not in KINDS[kind]:
        raise DeclaredError(f"{path}.aggregation", f"a {kind} aggregates by one of {', '.join(KINDS[kind])}")
    try:
        window = parse_duration_ms(spec.get("window", "5m"))
    except (ValueError, TypeError) as e:
        raise DeclaredError(f"{path}.window", str(e)) from None
    if window <= 0 or window % step_ms or window > 6 * 3_600_000:
        raise DeclaredError(f"{path}.window", "must be a positive multiple of the step, at most 6h")
    unit = spec.get("unit", "rps" if kind == "counter" and agg == "rate" else "count")
    if unit not in UNITS:
        raise DeclaredError(f"{path}.unit", f"must be one of {', '.join(UNITS)}")
    ms = spec.get("min_samples", 1)
    if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
        raise DeclaredError(f"{path}.min_samples", "must be a non-negative integer")
    desc = spec.get("description", "")
    return Declared(name, metric, tuple(sorted((str(k), str(v)) for k, v in labels.items())), kind, agg,
                    window, unit, ms, str(desc))


def units_of(declared: dict[str, Declared]) -> dict[str, str]:
    return {n: d.unit for n, d in declared.items()}


def by_metric(declared: dict[str, Declared]) -> dict[str, tuple]:
    """metric name -> (Declared, ...): what decoders look a metric up in."""
    out: dict[str, list] = {}
    for d in declared.values():
        out.setdefault(d.metric, []).append(d)
    return {m: tuple(ds) for m, ds in out.items()}


def roles_for(table: dict, metric: str, labels: dict) -> list[str]:
    """The declared signals a series of `metric` with `labels` feeds."""
    return [d.name for d in table.get(metric, ()) if d.matches(labels)]


def known_names(declared: dict[str, Declared]) -> list[str]:
    return sorted(set(CATALOGUE) | set(declared))
