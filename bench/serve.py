"""`gatewatch serve` latency: GET /v1/gates/{scope} against GET /healthz, measured in the same run.

    python bench/serve.py [--scopes 500] [--clients 8] [--requests 20000] [--rounds 3]

The server runs in its own process (the real HttpServer and Api over a GateStore holding
--scopes scopes x 3 releases of real gate records); --clients threads with keep-alive
connections alternate a gate lookup (random scope, latest release) and a /healthz, so both paths
see the same load. Prints p50 / p99 of each and the p99 ratio (the issue's bar: gates <= 2x healthz).
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402


def _serve(scopes: int, q) -> None:
    from gatewatch.streams.app.serve.server import Api, HttpServer
    from gatewatch.streams.app.serve.store import GateStore
    from tests.serve.helpers import gate
    store = GateStore()
    for i in range(scopes):
        for j, verdict in enumerate(("pass", "fail", "pending")):
            g = gate(f"svc-{i}", f"1.{j}.0", verdict, ts=1_790_000_000_000 + j * 60_000, missing=("err5xx_rate",))
            store.apply_gate(f"svc-{i}@1.{j}.0".encode(), orjson.dumps(g))
    srv = HttpServer(Api(store, lambda: True), "127.0.0.1", 0).start()
    q.put(srv.port)
    threading.Event().wait()


def _client(port: int, n: int, scopes: int, seed: int, out: dict, lock) -> None:
    rnd = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    gates, health = [], []
    for i in range(n):
        path, sink = ((f"/v1/gates/svc-{rnd.randrange(scopes)}", gates) if i % 2 == 0 else ("/healthz", health))
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        sink.append(time.perf_counter() - t0)
        assert r.status == 200, (path, r.status)
    conn.close()
    with lock:
        out["gates"] += gates
        out["healthz"] += health


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scopes", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=20000, help="per round, over all clients")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    q = mp.Queue()
    proc = mp.Process(target=_serve, args=(a.scopes, q), daemon=True)
    proc.start()
    port = q.get(timeout=60)
    print(f"serve bench: {a.scopes} scopes x 3 releases, {a.clients} keep-alive clients, "
          f"{a.requests} requests per round (half gates, half healthz)")
    ratios = []
    try:
        for rnd in range(a.rounds):
            out, lock = {"gates": [], "healthz": []}, threading.Lock()
            threads = [threading.Thread(target=_client, args=(port, a.requests // a.clients, a.scopes,
                                                               rnd * 100 + c, out, lock)) for c in range(a.clients)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            g50, g99 = _pct(out["gates"], 0.5), _pct(out["gates"], 0.99)
            h50, h99 = _pct(out["healthz"], 0.5), _pct(out["healthz"], 0.99)
            ratios.append(g99 / h99)
            print(f"round {rnd + 1}: {len(out['gates']) + len(out['healthz'])} req in {wall:.2f} s "
                  f"({(len(out['gates']) + len(out['healthz'])) / wall:.0f} req/s)  "
                  f"gates p50 {g50:.2f} ms p99 {g99:.2f} ms | healthz p50 {h50:.2f} ms p99 {h99:.2f} ms | "
                  f"p99 ratio {g99 / h99:.2f}")
    finally:
        proc.terminate()
    print(f"p99 gates / p99 healthz: median {statistics.median(ratios):.2f} over {len(ratios)} rounds "
          f"(bar: <= 2)")


if __name__ == "__main__":
    main()
