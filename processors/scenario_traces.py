"""Seeded OTLP traces for a scenario's services: the span stream span coverage is judged on in the
demo (gatewatch.streams.app.demo), as the Collector's kafka exporter writes it (otlp_json).

Each trace is one request: a SERVER root span "<METHOD> <route>" and its children, the essential
spans of configs/evidence.yml (checkout.handle, db.query, payment.authorize); each child is left
out with probability `drop` (an uninstrumented code path), so coverage is about (1 - drop)^3.
Root spans carry no HTTP status: these traces stand for a trace sample, not for the requests the
gate counts (those are the scenario's request samples). Pure and deterministic: random.Random(seed).
"""
from __future__ import annotations

import random
from typing import Iterator

CHILDREN = ("checkout.handle", "db.query", "payment.authorize")


def _attr(k: str, v: str) -> dict:
    return {"key": k, "value": {"stringValue": v}}


def trace_records(services: list[dict], start_ms: int, duration_ms: int, traces_per_min: float = 60,
                  drop: float = 0.01, seed: int = 7) -> Iterator[tuple[str, dict]]:
    """(service, ExportTraceServiceRequest as JSON) per trace, in event-time order."""
    rng = random.Random(seed)
    n = max(1, int(duration_ms / 60_000 * traces_per_min))
    for i in range(n):
        svc = services[i % len(services)]
        routes = svc.get("routes") or ["/"]
        t0_ns = (start_ms + i * duration_ms // n) * 1_000_000
        trace_id = f"{rng.getrandbits(128):032x}"
        root_id = f"{rng.getrandbits(64):016x}"
        spans = [{"traceId": trace_id, "spanId": root_id, "name": f"GET {rng.choice(routes)}", "kind": 2,
                  "startTimeUnixNano": str(t0_ns), "endTimeUnixNano": str(t0_ns + 120_000_000)}]
        for j, name in enumerate(CHILDREN):
            if rng.random() < drop:
                continue
            s = t0_ns + (j + 1) * 10_000_000
            spans.append({"traceId": trace_id, "spanId": f"{rng.getrandbits(64):016x}", "parentSpanId": root_id,
                          "name": name, "kind": 1, "startTimeUnixNano": str(s), "endTimeUnixNano": str(s + 20_000_000)})
        yield svc["name"], {"resourceSpans": [{
            "resource": {"attributes": [_attr("service.name", svc["name"])]},
            "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
            "scopeSpans": [{"scope": {"name": "gatewatch.demo"}, "spans": spans}]}]}
