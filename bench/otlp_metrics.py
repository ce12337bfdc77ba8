"""What a 50k-requests/s service costs gatewatch as OTLP metrics, against the same service sent as
one record per request, measured side by side in one run.

    python bench/otlp_metrics.py [--rps 50000] [--seconds 300] [--pods 10] [--interval 10] [--baseline-rps 2000]

The service: --pods instances, each exporting `http.server.request.duration` cumulative histograms
(the SDK's default bounds) per (route, status, version) every --interval seconds, one
ExportMetricsServiceRequest per pod and export, as the Collector's kafka exporter writes them
(otlp_proto). Both inputs run through `gatewatch replay`'s path (decode, ingest aggregation,
signals, decide: the streaming workers' functions) on the same policy; the time is this process's
CPU time, over --seconds of event time (more than the 120 s lateness, so windows close and signals
and decisions are paid for). Printed: CPU seconds per event second (a fraction of one core). The
per-request baseline runs at --baseline-rps (50k records a second for minutes would not fit a
benchmark run) and is also shown scaled linearly to --rps: its cost is per record.
The Kafka consume cost (a few µs per record) is left out of both: it scales with records, which
favours the metrics input further (a few records per interval against 50k per second).
"""
from __future__ import annotations

import argparse
import base64
import random
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewatch.processors.inputs import InputOptions  # noqa: E402
from gatewatch.streams.app.replay import Envelope, Replayer  # noqa: E402
from gatewatch.streams.runtime import topics  # noqa: E402
from gatewatch.streams.runtime.policy_files import load_policy_dir  # noqa: E402

BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
ROUTES = [f"/api/r{i}" for i in range(20)]
STATUSES = (200, 404, 500)
VERSIONS = {"1.4.0": "baseline", "1.5.0": "canary"}
START_MS = 1_800_000_000_000


def _attr(k, v):
    return {"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}


def otlp_exports(args, rnd) -> list[Envelope]:
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    series = [(r, s, v) for r in ROUTES for s in STATUSES for v in VERSIONS]
    per_point = args.rps * args.interval / (args.pods * len(series))
    cum = {(p, k): [0] * (len(BOUNDS_S) + 1) for p in range(args.pods) for k in series}
    envs, offset = [], 0
    for i in range(1, int(args.seconds / args.interval) + 1):
        e_ms = START_MS + i * args.interval * 1000
        for pod in range(args.pods):
            rms = []
            for version in VERSIONS:
                points = []
                for k in series:
                    if k[2] != version:
                        continue
                    counts = cum[(pod, k)]
                    for _ in range(3):  # a few draws per point: a shape, not one bucket
                        counts[rnd.randrange(3, 9)] += int(per_point / 3)
                    points.append({"attributes": [_attr("http.route", k[0]), _attr("http.response.status_code", k[1])],
                                   "startTimeUnixNano": str(START_MS * 1_000_000),
                                   "timeUnixNano": str(e_ms * 1_000_000), "count": str(sum(counts)),
                                   "bucketCounts": [str(c) for c in counts], "explicitBounds": list(BOUNDS_S)})
                rms.append({"resource": {"attributes": [_attr("service.name", "checkout"),
                                                        _attr("service.version", version),
                                                        _attr("service.instance.id", f"pod-{pod}")]},
                            "scopeMetrics": [{"metrics": [{"name": "http.server.request.duration", "unit": "s",
                                                           "histogram": {"dataPoints": points,
                                                                         "aggregationTemporality": 2}}]}]})
            value = ParseDict({"resourceMetrics": rms}, ExportMetricsServiceRequest()).SerializeToString()
            envs.append(Envelope(topic="otlp_metrics", partition=pod % 3, offset=offset // 3, ts=e_ms, key=None,
                                 payload=None, payload_b64=base64.b64encode(value).decode()))
            offset += 1
    return envs


def request_records(args, rnd) -> list[Envelope]:
    rps = args.baseline_rps
    envs, n = [], int(rps * args.seconds)
    topic = topics.topic("metrics")
    for i in range(n):
        ts = START_MS + i * 1000 // rps
        version = "1.5.0" if i % 10 == 0 else "1.4.0"
        value = orjson.dumps({"service": "checkout", "cohort": VERSIONS[version], "release": version,
                              "route": ROUTES[i % len(ROUTES)], "status": STATUSES[i % 97 == 0 and 2 or 0],
                              "latency_ms": round(rnd.lognormvariate(4.0, 0.6), 3), "ts": ts})
        envs.append(Envelope(topic=topic, partition=i % 3, offset=i // 3, ts=ts, key=None, payload=value.decode()))
    return envs


def cpu_per_event_second(policy, envs, seconds: float) -> float:
    rp = Replayer(policy, None, flush_every=10_000, inputs=InputOptions(otlp_cohorts=VERSIONS))
    t0 = time.process_time()
    for i in range(0, len(envs), 5000):
        rp.feed_many(envs[i:i + 5000])
    rp.finish()
    return (time.process_time() - t0) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rps", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=300.0, help="event seconds of traffic")
    ap.add_argument("--baseline-rps", type=int, default=2000, help="request rate of the per-request baseline")
    ap.add_argument("--pods", type=int, default=10)
    ap.add_argument("--interval", type=int, default=10, help="export interval, seconds")
    args = ap.parse_args()
    policy = load_policy_dir(str(ROOT / "configs" / "policies"))
    rnd = random.Random(7)
    metrics, per_request = otlp_exports(args, rnd), request_records(args, rnd)
    # alternate, best of 3 each: the machines are shared and noisy
    m = min(cpu_per_event_second(policy, metrics, args.seconds) for _ in range(3))
    r = min(cpu_per_event_second(policy, per_request, args.seconds) for _ in range(3))
    scaled = r * args.rps / args.baseline_rps
    print(f"{args.rps} requests/s, {args.pods} pods, {args.interval}s exports, {args.seconds:.0f} event s")
    print(f"  as OTLP metrics           {len(metrics):>9} records  {100 * m:8.3f} % of a core   (target < 1 %)")
    print(f"  per-request at {args.baseline_rps}/s     {len(per_request):>9} records  {100 * r:8.3f} % of a core")
    print(f"  per-request scaled to {args.rps}/s                  {100 * scaled:8.1f} % of a core")
    print(f"  ratio metrics / per-request (same rps): {m / scaled:.5f}x")

if __name__ == "__main__":
    main()
