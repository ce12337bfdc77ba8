"""Seeded HTTP traffic as three equivalent streams (test data generator):

- per-request samples on gw.metrics (one JSON array per service and step);
- OTLP metrics as the Collector's kafka exporter writes them: one ExportMetricsServiceRequest per
  service and export, `http.server.request.duration` cumulative explicit-bucket histograms (seconds,
  the SDK's default bounds) per (status, route), exported at every step end;
- Prometheus samples as prometheus-kafka-adapter writes them: http_requests_total{code,...} and
  http_request_duration_seconds_bucket{le,...} cumulative series, scraped at every step end.

Requests of step [E - 10 s, E) end inside it; the exports at E cover exactly them, so every count of
the three streams is the same per step.
"""
from __future__ import annotations

import base64
import bisect
import random
from datetime import datetime, timezone

import orjson

from tests.timebase import RECENT_MS

STEP_MS = 10_000
START_MS = RECENT_MS - RECENT_MS % STEP_MS
BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
VERSIONS = {"1.4.0": "baseline", "1.5.0": "canary"}


def traffic(steps: int = 120, per_step: int = 60, seed: int = 3, surge_from: int = 60) -> list[dict]:
    """[{service, version, route, status, latency_ms, ts}], ts in ms; the canary's 5xx surge
    starts at step `surge_from`."""
    rnd = random.Random(seed)
    out = []
    for i in range(steps):
        e0 = START_MS + i * STEP_MS
        for _ in range(per_step):
            version = rnd.choice(["1.4.0", "1.4.0", "1.5.0"])
            err = 0.25 if (version == "1.5.0" and i >= surge_from) else 0.002
            status = rnd.choice([500, 503]) if rnd.random() < err else rnd.choice([200, 200, 201, 404])
            out.append({"service": "checkout", "version": version, "route": rnd.choice(["/pay", "/cart"]),
                        "status": status, "latency_ms": round(rnd.lognormvariate(4.0, 0.6), 3),
                        "ts": e0 + rnd.randrange(STEP_MS)})
    return out


def by_step(reqs: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list] = {}
    for r in reqs:
        out.setdefault(r["ts"] - r["ts"] % STEP_MS, []).append(r)
    return dict(sorted(out.items()))


def request_records(reqs: list[dict]) -> list[tuple[int, bytes]]:
    """(kafka ts, value) per step: the per-request samples."""
    out = []
    for b, rs in by_step(reqs).items():
        samples = [{"service": r["service"], "cohort": VERSIONS[r["version"]], "release": r["version"],
                    "route": r["route"], "status": r["status"], "latency_ms": r["latency_ms"], "ts": r["ts"]}
                   for r in rs]
        out.append((b + STEP_MS, orjson.dumps(samples)))
    return out


class _Cumulative:
    """Running totals per series: what an SDK or a client library holds between exports."""

    def __init__(self):
        self.hist: dict[tuple, list[int]] = {}

    def add(self, key: tuple, latency_ms: float) -> None:
        counts = self.hist.setdefault(key, [0] * (len(BOUNDS_S) + 1))
        counts[bisect.bisect_left(BOUNDS_S, latency_ms / 1000.0)] += 1  # bucket i: (b[i-1], b[i]]


def _exports(reqs: list[dict]):
    """(E, {(version, status, route): cumulative bucket counts}) at every step end."""
    cum = _Cumulative()
    for b, rs in by_step(reqs).items():
        for r in rs:
            cum.add((r["version"], r["status"], r["route"]), r["latency_ms"])
        yield b + STEP_MS, {k: list(v) for k, v in cum.hist.items()}


def _attr(k, v):
    return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}


def otlp_metrics_doc(e_ms: int, series: dict, start_ms: int = START_MS, service: str = "checkout",
                     temporality: int = 2) -> dict:
    """One ExportMetricsServiceRequest (OTLP/JSON) with the histograms of one export."""
    rms = []
    for version in sorted({k[0] for k in series}):
        points = []
        for (ver, status, route), counts in sorted(series.items()):
            if ver != version:
                continue
            points.append({"attributes": [_attr("http.response.status_code", status), _attr("http.route", route),
                                          _attr("http.request.method", "GET")],
                           "startTimeUnixNano": str(start_ms * 1_000_000), "timeUnixNano": str(e_ms * 1_000_000),
                           "count": str(sum(counts)), "sum": 0.0, "bucketCounts": [str(c) for c in counts],
                           "explicitBounds": list(BOUNDS_S)})
        rms.append({"resource": {"attributes": [_attr("service.name", service), _attr("service.version", version)]},
                    "scopeMetrics": [{"scope": {"name": "io.opentelemetry.http"}, "metrics": [
                        {"name": "http.server.request.duration", "unit": "s",
                         "histogram": {"dataPoints": points, "aggregationTemporality": temporality}}]}]})
    return {"resourceMetrics": rms}


def otlp_json(doc: dict) -> bytes:
    return orjson.dumps(doc)


def otlp_proto(doc: dict) -> bytes:
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    return ParseDict(doc, ExportMetricsServiceRequest()).SerializeToString()


def otlp_records(reqs: list[dict], encode=otlp_json) -> list[tuple[int, bytes]]:
    return [(e, encode(otlp_metrics_doc(e, series))) for e, series in _exports(reqs)]


def _rfc3339(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def adapter_sample(name: str, labels: dict, value, ms: int) -> bytes:
    """One sample as prometheus-kafka-adapter's JSON serializer writes it."""
    return orjson.dumps({"timestamp": _rfc3339(ms), "value": value if isinstance(value, str) else repr(value),
                         "name": name, "labels": {"__name__": name, **labels}})


def prometheus_records(reqs: list[dict]) -> list[tuple[int, bytes]]:
    """The client library's series, scraped at every step end (one record per sample). The first
    scrape, as the target starts, shows one series per version at zero (the application creates
    them at start): without a start time, that is how gatewatch knows later series are new."""
    out = []
    for ver in sorted(VERSIONS):
        labels = {"job": "checkout", "instance": "10.0.0.7:8080", "handler": "/pay", "code": "200",
                  "service_version": ver}
        out.append((START_MS, adapter_sample("http_requests_total", labels, "0", START_MS)))
    for e, series in _exports(reqs):
        for (ver, status, route), counts in sorted(series.items()):
            labels = {"job": "checkout", "instance": "10.0.0.7:8080", "handler": route, "code": str(status),
                      "service_version": ver}
            out.append((e, adapter_sample("http_requests_total", labels, f"{sum(counts)}", e)))
            running = 0
            for i, c in enumerate(counts):
                running += c
                le = "+Inf" if i == len(BOUNDS_S) else repr(BOUNDS_S[i])
                out.append((e, adapter_sample("http_request_duration_seconds_bucket", {**labels, "le": le},
                                              f"{running}", e)))
    return out


def envelopes(records: list[tuple[int, bytes]], topic: str, partitions: int = 1) -> list[dict]:
    """kcat -J envelopes, spread round-robin over `partitions` (producers that send no key)."""
    offsets = [0] * partitions
    out = []
    for i, (ts, value) in enumerate(records):
        p = i % partitions
        env = {"topic": topic, "partition": p, "offset": offsets[p], "ts": ts, "key": None}
        if value[:1] in (b"{", b"["):
            env["payload"] = value.decode()
        else:  # otlp_proto: binary, as kcat -J cannot print it
            env["payload"], env["payload_b64"] = None, base64.b64encode(value).decode()
        out.append(env)
        offsets[p] += 1
    return out
