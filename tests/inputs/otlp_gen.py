"""A seeded OTLP trace stream and its equivalent request-sample stream (test data generator).

`batches()` -> list of batches; a batch is one ExportTraceServiceRequest's worth of spans, as
plain dicts. `otlp_json`/`otlp_proto` encode a batch as the Collector's kafka exporter does;
`requests_json` writes the request samples gatewatch should derive from it (one JSON array per
batch, so records line up one to one and the per-record late/future rules see the same samples).
"""
from __future__ import annotations

import random

import orjson

from tests.timebase import RECENT_MS

START_NS = RECENT_MS * 1_000_000
COHORTS = {"1.4.0": "baseline", "1.5.0": "canary"}


def batches(n_batches: int = 120, per_batch: int = 12, seed: int = 7) -> list[list[dict]]:
    rnd = random.Random(seed)
    out, t = [], START_NS
    for b in range(n_batches):
        batch = []
        for _ in range(per_batch):
            t += rnd.randrange(200, 6000) * 1_000_000 // per_batch
            version = rnd.choice(["1.4.0", "1.5.0", "1.5.0", "0.9.9"])
            late_phase = b > n_batches // 2
            kind = rnd.choice([2, 2, 2, 2, 3, 1])
            err_p = 0.3 if (late_phase and version == "1.5.0") else 0.01
            http = rnd.choice([200, 200, 201, 404]) if rnd.random() > err_p else rnd.choice([500, 503])
            dur = rnd.randrange(1, 900_000_000)  # ns, not a whole ms
            span = {"service": rnd.choice(["checkout", "search"]), "version": version, "kind": kind,
                    "route": rnd.choice(["/api/pay", "/q", None]), "start": t - dur, "end": t,
                    "status_code": 2 if rnd.random() < 0.03 else rnd.choice([0, 0, 1]),
                    "attr": rnd.choice(["http.response.status_code", "http.status_code"]),
                    "http": http if rnd.random() > 0.05 else None}
            batch.append(span)
        out.append(batch)
    return out


def _groups(batch):
    groups: dict = {}
    for s in batch:
        groups.setdefault((s["service"], s["version"]), []).append(s)
    return groups


def otlp_json(batch: list[dict], i: int = 0) -> bytes:
    rs = []
    for (svc, ver), spans in _groups(batch).items():
        js = []
        for j, s in enumerate(spans):
            attrs = []
            if s["route"]:
                attrs.append({"key": "http.route", "value": {"stringValue": s["route"]}})
            if s["http"] is not None:
                attrs.append({"key": s["attr"], "value": {"intValue": str(s["http"])}})
            sp = {"traceId": f"{i:016x}{j:016x}", "spanId": f"{j:016x}", "name": "GET", "kind": s["kind"],
                  "startTimeUnixNano": str(s["start"]), "endTimeUnixNano": str(s["end"]),
                  "attributes": attrs, "status": {"code": s["status_code"]} if s["status_code"] else {}}
            js.append(sp)
        rs.append({"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}},
                                               {"key": "service.version", "value": {"stringValue": ver}}]},
                   "scopeSpans": [{"scope": {"name": "io.opentelemetry.http"}, "spans": js}]})
    return orjson.dumps({"resourceSpans": rs})


def otlp_proto(batch: list[dict], i: int = 0) -> bytes:
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    doc = orjson.loads(otlp_json(batch, i))
    for rs in doc["resourceSpans"]:  # OTLP JSON ids are hex; proto3 JSON mapping wants base64
        for sp in rs["scopeSpans"][0]["spans"]:
            del sp["traceId"], sp["spanId"]
    return ParseDict(doc, ExportTraceServiceRequest()).SerializeToString()


def requests_json(batch: list[dict], cohorts: dict = COHORTS) -> bytes:
    samples = []
    for (svc, ver), spans in _groups(batch).items():
        for s in spans:
            if s["kind"] != 2 or s["http"] is None:
                continue
            status = 500 if (s["status_code"] == 2 and s["http"] < 500) else s["http"]
            sample = {"service": svc, "cohort": cohorts.get(ver, "stable"), "status": status,
                      "latency_ms": (s["end"] - s["start"]) / 1_000_000, "ts": s["end"] // 1_000_000}
            if s["route"]:
                sample["route"] = s["route"]
            if ver:  # the OTLP decoder reads the release from the same attribute as the cohort
                sample["release"] = ver
            samples.append(sample)
    return orjson.dumps(samples)


def kafka_ts_ms(batch: list[dict]) -> int:
    return max(s["end"] for s in batch) // 1_000_000
