"""WORM store benchmark: durable appends/s and p99 commit latency with group commit, against
one fsync per record, measured side by side in the same run on the same disk.

    python bench/worm.py [--records 100000] [--batch 200,2000] [--baseline-records 2000] [--dir DIR] [--kafka]

--kafka also runs the whole sink (consume -> durable append -> offset commit) through a broker
(KAFKA_BOOTSTRAP_SERVERS or the embedded tansu), with --batch's largest value and with batch 1.

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

from gatewatch.processors.canonical import content_id  # noqa: E402
from gatewatch.sinks.worm.store import WormStore, candidate_from_record  # noqa: E402


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


def run_sink(bootstrap: str, db: str, values: list[bytes], batch: int) -> tuple[float, list[float]]:
    """Records/s through the real sink loop, timed from its first durable entry to the last."""
    import threading
    import uuid

    from gatewatch.sinks.worm.sink import SinkConfig, WormSink
    from gatewatch.streams.runtime import kafka, topics
    from gatewatch.streams.runtime.lifecycle import StopFlag
    from gatewatch.streams.runtime.worker import Worker
    os.environ["GATEWATCH_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    kafka.create_topics(bootstrap)
    p = kafka.producer(bootstrap)
    for i, v in enumerate(values):
        p.produce(topics.topic("receipts"), value=v)
        if i % 10_000 == 0:
            p.poll(0)
    p.flush(60)
    sink = WormSink(SinkConfig(db=db, batch_size=batch, checkpoint_every=10**9,
                               checkpoint_interval_s=10**6, exit_when_idle_s=2.0,
                               keys_dir=os.environ.get("GATEWATCH_KEYS_DIR")))
    lat, first = [], []
    append = sink.store.append_batch

    def timed(cands):
        t = time.perf_counter()
        out = append(cands)
        lat.append(time.perf_counter() - t)
        if out and not first:
            first.append(t)
        return out
    sink.store.append_batch = timed
    stop = StopFlag(install=False)
    t = threading.Thread(target=Worker(sink, bootstrap, assignment="group", stop=stop, exit_when_idle_s=2.0).run)
    t.start()
    done = None
    while t.is_alive():
        n = _count(db)
        if n >= len(values) and done is None:
            done = time.perf_counter()
            stop.stop()
        time.sleep(0.005)
    t.join()
    done = done or time.perf_counter()
    return len(values) / (done - first[0]), lat


def _count(db: str) -> int:
    import sqlite3
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        con.close()


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98] if len(xs) >= 2 else xs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch", default="200,2000", help="entries per commit with group commit (comma-separated)")
    ap.add_argument("--baseline-records", type=int, default=2000, help="records for one-fsync-per-record")
    ap.add_argument("--dir", default=None, help="directory on the disk to measure (default: a temp dir in .)")
    ap.add_argument("--kafka", action="store_true", help="also measure the whole sink through a broker")
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
        if a.kafka:
            kafka_bench(d, a.records, a.baseline_records, max(batches))
    finally:
        if not a.dir:
            shutil.rmtree(d, ignore_errors=True)


def kafka_bench(d: Path, records: int, baseline_records: int, batch: int) -> None:
    from gatewatch.streams.runtime.brokers import kafka_bootstrap
    from gatewatch.streams.runtime.keys import init_keys
    os.environ.setdefault("GATEWATCH_KEYS_DIR", str(d / "keys"))
    init_keys()
    vals = [orjson.dumps({"id": f"r{i}", "type": "INTENT", "action_id": f"a{i}", "pad": "x" * 400})
            for i in range(records + baseline_records)]
    with kafka_bootstrap() as bs:
        g_rate, g_lat = run_sink(bs, str(d / "sink-group.db"), vals[:records], batch)
        s_rate, s_lat = run_sink(bs, str(d / "sink-single.db"), vals[records:], 1)
    print(f"sink through Kafka, batch {batch}: {g_rate:,.0f} records/s over {records:,}; "
          f"p99 durable commit {p99(g_lat) * 1000:.2f} ms")
    print(f"sink through Kafka, batch 1:     {s_rate:,.0f} records/s over {baseline_records:,}; "
          f"p99 durable commit {p99(s_lat) * 1000:.2f} ms; ratio {g_rate / s_rate:.1f}x")


if __name__ == "__main__":
    main()
