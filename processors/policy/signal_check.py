"""A gw.signals record checked and made compact for the engine: plain, Avro-stable types (floats
for values, ints for counts, strings or null for labels), so that an action survives the Avro round
trip with its digest (and permit) intact. Anything else is a SignalError naming the field."""
from __future__ import annotations

import math

from gatewatch.processors.policy.errors import SignalError
from gatewatch.processors.policy.grammar import SignalInfo, signal_info
from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms_cached


def validate_signal(sig, declared: dict | None = None, infos: dict | None = None) -> tuple:
    """(scope, domain, step ms, the compact signal), or SignalError. infos: a cache of the
    catalogue/declared lookups by name (an engine's declared signals never change)."""
    if not isinstance(sig, dict):
        raise SignalError(f"a signal must be an object, got {type(sig).__name__}")
    name, scope = sig.get("name"), sig.get("scope")
    if not isinstance(name, str) or not isinstance(scope, str) or not scope:
        raise SignalError(f"signal needs string name and scope: {sig!r:.200}")
    info = infos.get(name) if infos is not None else None
    if info is None:
        info = signal_info(name, declared)
        if info is not None and infos is not None:
            infos[name] = info
    if info is None and sig.get("domain") == "gauges":
        # a named gauge outside the catalogue: context only (policy check refuses rules on unknown names)
        info = SignalInfo(name, "count", "gauges")
    if info is None:
        raise SignalError(f"unknown signal {name!r}")
    try:
        ts = parse_time_ms_cached(sig.get("ts"))
    except TimeFormatError as e:
        raise SignalError(f"signal {name}: {e}") from None
    value, samples = sig.get("value"), sig.get("samples", 0)
    # the exact-type tests first are only shortcuts for the common case (a finite float, an int count)
    if value is not None and not (type(value) is float and math.isfinite(value)) and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise SignalError(f"signal {name}: value must be a number or null, got {value!r}")
    if samples is None:
        samples = 0
    if type(samples) is not int and (isinstance(samples, bool) or not isinstance(samples, int)) or samples < 0:
        raise SignalError(f"signal {name}: samples must be a non-negative integer, got {samples!r}")
    # plain, Avro-stable types: floats for values, ints for counts, strings or null for labels,
    # so that an action survives the Avro round trip with its digest (and permit) intact
    cohort, subject, release, window_s = sig.get("cohort"), sig.get("subject"), sig.get("release"), sig.get("window_s")
    compact = {"name": info.name, "cohort": None if cohort is None else str(cohort),
               "subject": None if subject is None else str(subject),
               "window_s": window_s if type(window_s) is int else _whole(window_s),
               "value": None if value is None else float(value), "samples": samples,
               "release": "" if release is None else str(release)}
    if not sig.keys().isdisjoint(REFERENCE_FIELDS):  # most signals carry no reference: skip the lookups
        ref = {k: sig.get(k) for k in REFERENCE_FIELDS if sig.get(k) is not None}
        if ref:
            compact["reference"] = {"baseline": _num(ref.get("baseline")),
                                    "baseline_samples": _whole(ref.get("baseline_samples")),
                                    "baseline_source": _label(ref.get("baseline_source")),
                                    "ci_low": _num(ref.get("ci_low")), "ci_high": _num(ref.get("ci_high"))}
    return scope, info.domain, ts, compact


REFERENCE_FIELDS = ("baseline", "baseline_samples", "baseline_source", "ci_low", "ci_high")


def _label(v):
    return None if v is None else str(v)


def _whole(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return int(v)


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)
