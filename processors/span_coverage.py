"""Span coverage (seed 000 "spans >= 95 %"): per service, the share of requests (traces) whose
spans include every essential span name declared for that service.

Input: OTLP trace exports (the Collector's kafka exporter records, otlp_json or otlp_proto, as
gatewatch.processors.otlp reads them). A trace is attributed to the service of its root span (the
span without a parent); a trace whose root was not seen is attributed to the first service seen
in it, so a trace cut by sampling still counts. Essential names are declared per service pattern
(fnmatch, the first matching pattern in declaration order wins):

    {"checkout*": ["checkout.validate", "db.query"], "payments-*": ["payment.authorize"]}

A service no pattern matches is reported with `declared: false` and no verdict (UNDECLARED); the
overall status is PASS only if at least one service was declared and none fails (all UNDECLARED:
UNDECLARED, no traces: NO_DATA). An empty list would declare a service that every trace covers,
so the config parser (streams.app.evidence_inputs) and `verify` refuse it. Each service's
traces are also counted per event-time window (default 1 h, by the root span's start, else the
earliest start seen), so a dip hidden by the total shows as its window's coverage. Pure: no I/O,
no clock; traces are counted the same whatever order their spans come in.
"""
from __future__ import annotations

from collections import Counter
from fnmatch import fnmatchcase
from typing import Iterable, Iterator, NamedTuple

from gatewatch.processors.inputs.otlp_common import any_proto, attrs_json, decode_export, list_of, service_of
from gatewatch.processors.inputs.samples import Bad
from gatewatch.processors.timefmt import format_ts

FORMAT = "gatewatch.span-coverage/1"
DEFAULT_TARGET = 0.95  # seed 000: spans >= 95 %
DEFAULT_WINDOW_MS = 3_600_000


class SpanRef(NamedTuple):
    trace_id: str
    service: str
    name: str
    root: bool
    start_ms: int | None = None


def spans_of_export(value: bytes | None, key: bytes | None = None) -> list[SpanRef] | str:
    """The spans of one OTLP trace export record, or the rejection reason (never raises)."""
    out: list[SpanRef] = []
    bad = decode_export(value, "otlp", lambda doc: _walk_json(doc, key, out), lambda raw: _walk_proto(raw, key, out))
    return bad.reason if bad is not None else out


def _walk_json(doc, key, out: list) -> None:
    if not isinstance(doc, dict) or "resourceSpans" not in doc:
        raise Bad("missing_field:resourceSpans", "not an OTLP ExportTraceServiceRequest")
    for rs in list_of(doc, "resourceSpans"):
        if not isinstance(rs, dict):
            raise Bad("bad_type:resourceSpans", type(rs).__name__)
        service = service_of(attrs_json((rs.get("resource") or {}).get("attributes"), "resource"), key)
        for ss in list_of(rs, "scopeSpans"):
            for sp in list_of(ss, "spans"):
                if not isinstance(sp, dict) or not isinstance(sp.get("traceId"), str) \
                        or not isinstance(sp.get("name"), str):
                    raise Bad("bad_type:spans", "expected {traceId, name, ...}")
                out.append(SpanRef(sp["traceId"].lower(), service, sp["name"], not sp.get("parentSpanId"),
                                   _start_ms(sp.get("startTimeUnixNano"))))


def _walk_proto(value: bytes, key, out: list) -> None:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    try:
        req = ExportTraceServiceRequest.FromString(value)
    except DecodeError as e:
        raise Bad("bad_protobuf", str(e)[:200]) from None
    if not req.resource_spans:
        raise Bad("bad_protobuf", "no resource_spans")
    for rs in req.resource_spans:
        service = service_of({kv.key: any_proto(kv.value) for kv in rs.resource.attributes}, key)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                out.append(SpanRef(sp.trace_id.hex(), service, sp.name, not sp.parent_span_id,
                                   sp.start_time_unix_nano // 1_000_000 or None))


def _start_ms(v) -> int | None:
    """A span's start in ms; None when absent or unreadable (the trace is then counted unwindowed)."""
    try:
        ns = int(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else 0
    except ValueError:
        return None
    return ns // 1_000_000 if 0 < ns < 1 << 63 else None


def essential_for(service: str, essential: dict[str, list[str]]) -> tuple[str, ...] | None:
    for pattern, names in essential.items():
        if fnmatchcase(service, pattern):
            return tuple(names)
    return None


class CoverageMeter:
    """Accumulates spans by trace; report() judges each trace once, at the end of the input."""

    def __init__(self) -> None:
        # trace id -> (names, [root service, first service seen, root start, earliest start])
        self.traces: dict[str, tuple[set[str], list]] = {}
        self.rejected: Counter = Counter()

    def add(self, spans: Iterable[SpanRef]) -> None:
        for s in spans:
            names, meta = self.traces.setdefault(s.trace_id, (set(), ["", s.service, None, None]))
            names.add(s.name)
            if s.root:
                meta[0], meta[2] = s.service, s.start_ms
            if s.start_ms is not None and (meta[3] is None or s.start_ms < meta[3]):
                meta[3] = s.start_ms

    def add_record(self, value: bytes | None, key: bytes | None = None) -> None:
        res = spans_of_export(value, key)
        if isinstance(res, str):
            self.rejected[res] += 1
        else:
            self.add(res)

    def per_trace(self) -> Iterator[tuple[str, set[str], int | None]]:
        for names, (root, first, root_ms, first_ms) in self.traces.values():
            yield root or first, names, root_ms if root_ms is not None else first_ms

    def report(self, essential: dict[str, list[str]], target: float = DEFAULT_TARGET,
               window_ms: int = DEFAULT_WINDOW_MS) -> dict:
        return coverage_report(self.per_trace(), essential, target, dict(self.rejected), window_ms)


def coverage_report(traces: Iterable[tuple], essential: dict[str, list[str]], target: float = DEFAULT_TARGET,
                    rejected: dict | None = None, window_ms: int = DEFAULT_WINDOW_MS) -> dict:
    """Per service: traces, covered (every essential name present), coverage in [0, 1], the
    traces missing each essential name, pass/fail against target (UNDECLARED without essential
    names) and the same counts per event-time window. traces: (service, span names[, start ms])."""
    per: dict[str, dict] = {}
    for service, names, *when in traces:
        want = essential_for(service, essential)
        row = per.setdefault(service, {"traces": 0, "covered": 0, "essential": list(want or ()),
                                       "declared": want is not None, "missing": Counter(), "windows": {}})
        row["traces"] += 1
        lacking = [n for n in (want or ()) if n not in names]
        if not lacking:
            row["covered"] += 1
        row["missing"].update(lacking)
        if when and when[0] is not None:
            w = row["windows"].setdefault(when[0] - when[0] % window_ms, [0, 0])
            w[0] += 1
            w[1] += not lacking
    services = {}
    for service in sorted(per):
        row = per[service]
        cov = row["covered"] / row["traces"]
        services[service] = {
            "traces": row["traces"], "covered": row["covered"], "coverage": round(cov, 6),
            "essential": row["essential"], "declared": row["declared"],
            "missing": dict(sorted(row["missing"].items())),
            "windows": [{"start": format_ts(t), "traces": n, "covered": c, "coverage": round(c / n, 6)}
                        for t, (n, c) in sorted(row["windows"].items())],
            "status": ("PASS" if cov >= target else "FAIL") if row["declared"] else "UNDECLARED"}
    failing = [s for s, r in services.items() if r["status"] == "FAIL"]
    return {"format": FORMAT, "target": target, "window_s": window_ms // 1000, "essential": {k: list(v) for k, v in essential.items()},
            "services": services, "traces": sum(r["traces"] for r in services.values()),
            "rejected_records": dict(sorted((rejected or {}).items())),
            "status": overall_status(services, failing), "failing": failing}


def overall_status(services: dict, failing: list) -> str:
    """FAIL if any declared service fails; PASS only when at least one service was declared and
    judged: services that are all UNDECLARED judge nothing, so they never make a PASS."""
    if failing:
        return "FAIL"
    if any(r["declared"] for r in services.values()):
        return "PASS"
    return "UNDECLARED" if services else "NO_DATA"

