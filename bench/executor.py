"""Executor benchmark: what the exactly-once discipline costs per action, measured side by side.

    python bench/executor.py [--actions 2000] [--rounds 3] [--dir DIR]

Three paths over the same permitted actions, interleaved in rounds on the same disk:
  verify only   check_permit + content id (the stateless floor, no ledger, no effect)
  dry-run       the full handler: permit, nonce, INTENT txn (fsync), dry-run effect, RESULT txn (fsync)
  webhook       the full handler with a signed POST to a local HTTP server answering 200 at once
Ratios are against "verify only" and between the two full paths.

With --kafka, also the whole worker on the embedded broker (dry-run backend, 8 lanes), with and
without waiting for each INTENT receipt to be on Kafka before the effect.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nacl.signing import SigningKey  # noqa: E402

from gatewatch.processors.canonical import canonical_json, content_id  # noqa: E402
from gatewatch.processors.signing import check_permit  # noqa: E402
from gatewatch.sinks.executor.backends import DryRunBackend, WebhookBackend  # noqa: E402
from gatewatch.sinks.executor.core import EXECUTED, ActionHandler  # noqa: E402
from gatewatch.sinks.executor.ledger import Ledger  # noqa: E402
from gatewatch.sinks.executor.receipts import seal  # noqa: E402
from tests.executor.helpers import action_record, now_ms, permitted, trusted  # noqa: E402
from tests.executor.webhook_server import WebhookServer  # noqa: E402

DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)


def verify_only(raws: list[bytes]) -> float:
    import orjson
    keys = trusted(DECIDER)
    t0 = time.perf_counter()
    for raw in raws:
        rec = orjson.loads(raw)
        content_id(rec)
        assert check_permit(rec, keys, now_ms()) is None
    return len(raws) / (time.perf_counter() - t0)


def full(raws: list[bytes], path: Path, backend) -> float:
    led = Ledger(path, lambda b: seal(EXECUTOR, b))
    h = ActionHandler(led, {"b": backend}, lambda r: "b", trusted(DECIDER))
    t0 = time.perf_counter()
    for raw in raws:
        assert h.handle(raw) == EXECUTED
    rate = len(raws) / (time.perf_counter() - t0)
    led.close()
    return rate


def worker_rate(n: int, intent_timeout: str, tmp: Path) -> float:
    import os
    import threading
    import uuid

    from gatewatch.sinks.executor.config import config_from_dict
    from gatewatch.sinks.executor.worker import ExecutorWorker
    from gatewatch.streams.runtime.brokers import kafka_bootstrap
    from gatewatch.streams.runtime.kafka import create_topics
    from gatewatch.streams.runtime.keys import init_keys, load_signing_key
    from tests.executor.kafka_io import produce_actions

    keys = tmp / f"keys-{uuid.uuid4().hex[:6]}"
    init_keys(keys, roles=("decider", "executor"))
    decider = load_signing_key("decider", keys)
    os.environ["GATEWATCH_TOPIC_PREFIX"] = pfx = f"b{uuid.uuid4().hex[:8]}."
    with kafka_bootstrap() as bs:
        create_topics(bs, pfx)
        produce_actions(bs, [permitted(decider, action_record(i, scope=f"s{i % 16}")) for i in range(n)])
        cfg = config_from_dict({"executor": {"keys_dir": str(keys), "intent_publish_timeout": intent_timeout}})
        worker = ExecutorWorker(cfg, tmp / f"w-{pfx}db", bs)
        idle = 0.5
        t0 = time.perf_counter()
        stats = worker.run(threading.Event(), exit_when_idle_s=idle)
        elapsed = time.perf_counter() - t0 - idle
    assert stats["executed"] == n, stats
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--actions", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--kafka", action="store_true", help="also time the worker end to end (embedded broker)")
    a = ap.parse_args()
    d = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix=".executor-bench-", dir="."))
    d.mkdir(parents=True, exist_ok=True)
    rates: dict[str, list[float]] = {"verify only": [], "dry-run": [], "webhook": []}
    kafka: dict[str, list[float]] = {"no wait": [], "INTENT first": []}
    try:
        if a.kafka:
            for _ in range(a.rounds):
                kafka["no wait"].append(worker_rate(a.actions, "0s", d))
                kafka["INTENT first"].append(worker_rate(a.actions, "5s", d))
        with WebhookServer() as srv:
            for r in range(a.rounds):
                raws = [canonical_json(permitted(DECIDER, action_record(r * a.actions + i, scope=f"s{i % 8}")))
                        for i in range(a.actions)]
                rates["verify only"].append(verify_only(raws))
                rates["dry-run"].append(full(raws, d / f"dry{r}.db", DryRunBackend()))
                rates["webhook"].append(full(raws, d / f"hook{r}.db", WebhookBackend("b", srv.url, EXECUTOR)))
    finally:
        if not a.dir:
            shutil.rmtree(d, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"{a.actions:,} actions x {a.rounds} rounds, one thread, SQLite WAL synchronous=FULL on {d}")
    for k, v in med.items():
        print(f"  {k:12} {v:>9,.0f} actions/s (median)")
    print(f"dry-run / verify only : {med['dry-run'] / med['verify only']:.2f}x  (cost of ledger + receipts)")
    print(f"webhook / verify only : {med['webhook'] / med['verify only']:.2f}x")
    print(f"webhook / dry-run     : {med['webhook'] / med['dry-run']:.2f}x  (cost of one signed local POST)")
    if a.kafka:
        km = {k: statistics.median(v) for k, v in kafka.items()}
        for k, v in km.items():
            print(f"  worker, {k:12} {v:>9,.0f} actions/s end to end (median, embedded broker, dry-run)")
        print(f"INTENT-first / no wait: {km['INTENT first'] / km['no wait']:.2f}x  (cost of INTENT on Kafka before effect)")


if __name__ == "__main__":
    main()
