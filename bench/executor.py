"""Executor benchmark: what the exactly-once discipline costs per action, measured side by side.

    python bench/executor.py [--actions 2000] [--rounds 3] [--dir DIR]

Three paths over the same permitted actions, interleaved in rounds on the same disk:
  verify only   check_permit + content id (the stateless floor, no ledger, no effect)
  dry-run       the full handler: permit, nonce, INTENT txn (fsync), dry-run effect, RESULT txn (fsync)
  webhook       the full handler with a signed POST to a local HTTP server answering 200 at once
Ratios are against "verify only" and between the two full paths.
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

from processors.canonical import canonical_json, content_id  # noqa: E402
from processors.signing import check_permit  # noqa: E402
from sinks.executor.backends import DryRunBackend, WebhookBackend  # noqa: E402
from sinks.executor.core import EXECUTED, ActionHandler  # noqa: E402
from sinks.executor.ledger import Ledger  # noqa: E402
from sinks.executor.receipts import seal  # noqa: E402
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--actions", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    d = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix=".executor-bench-", dir="."))
    d.mkdir(parents=True, exist_ok=True)
    rates: dict[str, list[float]] = {"verify only": [], "dry-run": [], "webhook": []}
    try:
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


if __name__ == "__main__":
    main()
