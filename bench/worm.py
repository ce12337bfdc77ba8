"""WORM store benchmark: durable appends/s and p99 commit latency with group commit, against
one fsync per record, measured side by side in the same run on the same disk.

    python bench/worm.py [--records 100000] [--batch 200,2000] [--baseline-records 2000] [--dir DIR]

Each "commit" is one WormStore.append_batch call = one SQLite transaction in WAL mode with
synchronous=FULL (one WAL fsync). Records are action-sized JSON (~600 bytes canonical).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from processors.canonical import content_id  # noqa: E402
from sinks.worm.store import WormStore, candidate_from_record  # noqa: E402


def make_records(n: int, offset: int = 0) -> list:
    out = []
    for i in range(offset, offset + n):
        rec = {"kind": "abort", "action": "rollback", "scope": f"checkout-{i % 7}",
               "rule": {"id": "r1", "text": "err5xx_rate >= 0.001 for 5m"}, "policy_hash": "9f" * 32,
               "ts": "2026-01-01T00:00:00.000Z", "values": {"err5xx_rate": 0.002, "samples": 1000 + i},
               "permit": {"sig": "A" * 88, "nonce": "b" * 32, "expires": "2026-01-01T00:05:00.000Z"}}
        rec["id"] = content_id(rec)
        out.append(candidate_from_record("actions", "gw.actions", orjson.dumps(rec)))
    return out


def run(path: str, cands: list, batch: int) -> tuple[float, list[float]]:
    lat = []
    with WormStore(path) as store:
        t0 = time.perf_counter()
        for i in range(0, len(cands), batch):
            t = time.perf_counter()
            store.append_batch(cands[i:i + batch])
            lat.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - t0
        assert store.size == len(cands)
    return len(cands) / elapsed, lat


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98] if len(xs) >= 2 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", default="200,2000", help="entries per commit with group commit (comma-separated)")
    ap.add_argument("--baseline-records", type=int, default=2000, help="records for one-fsync-per-record")
    ap.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir in .)")
    a = ap.parse_args()
    d = Path(a.dir) if a.dir else Path(tempfile.mkdtemp(prefix=".worm-bench-", dir="."))
    d.mkdir(parents=True, exist_ok=True)
    try:
        group = make_records(a.records)
        single = make_records(a.baseline_records, offset=a.records)
        batches = [int(b) for b in a.batch.split(",")]
        # interleave: baseline, group commits, baseline again, so disk-state drift hits both sides
        b1_rate, b1_lat = run(str(d / "single1.db"), single[: len(single) // 2], 1)
        grouped = [(b, *run(str(d / f"group{b}.db"), group, b)) for b in batches]
        b2_rate, b2_lat = run(str(d / "single2.db"), single[len(single) // 2:], 1)
        b_rate = statistics.mean([b1_rate, b2_rate])
        b_lat = b1_lat + b2_lat
        print(f"disk: {os.path.abspath(d)}  (SQLite WAL, synchronous=FULL)")
        print(f"one fsync per record:      {b_rate:>9,.0f} durable appends/s over {a.baseline_records:,} records; "
              f"p99 commit latency {p99(b_lat) * 1000:7.2f} ms")
        for b, g_rate, g_lat in grouped:
            print(f"group commit {b:>5}/commit: {g_rate:>9,.0f} durable appends/s over {a.records:,} records; "
                  f"p99 commit latency {p99(g_lat) * 1000:7.2f} ms ({len(g_lat)} commits); "
                  f"ratio vs per-record {g_rate / b_rate:.1f}x; target >= 20,000/s "
                  f"{'met' if g_rate >= 20_000 else 'NOT met'}")
    finally:
        if not a.dir:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
