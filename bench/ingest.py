"""Ingest benchmark: events/s of the full ingest -> signals path, as ratios measured in one run.

    python bench/ingest.py [--events 300000] [--faust-events 30000] [--replay-only]

Baselines in the same run, on the same embedded broker and topic:
  plain   a confluent-kafka consume + orjson.loads loop (the ceiling for any Python consumer)
  faust   a per-event faust agent updating a Table (the design the ingest stage replaces)
  decode  orjson.loads alone over the replay input, a kcat -J file of the same records: each line
          and the payload inside it (the JSON work replay cannot skip), and the payloads alone

The plain loop runs before and after the pipeline and the faster run is the baseline; replay and
its decode baselines alternate, best of 3 each (the machines are shared and noisy).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections import Counter
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewatch.processors.scenarios import Scenario  # noqa: E402
from gatewatch.processors.windows import SignalConfig  # noqa: E402
from gatewatch.streams.app.replay import Replayer  # noqa: E402
from gatewatch.streams.runtime import topics  # noqa: E402
from gatewatch.streams.runtime.brokers import ENGINES, make_broker  # noqa: E402
from gatewatch.streams.runtime.kafka import consumer, create_topics, producer  # noqa: E402
from gatewatch.streams.runtime.lifecycle import StopFlag  # noqa: E402
from gatewatch.streams.runtime.policy_files import load_policy_dir  # noqa: E402
from gatewatch.streams.runtime.worker import Worker  # noqa: E402
from gatewatch.streams.stages.ingest import IngestStage  # noqa: E402
from gatewatch.streams.stages.signals import SignalStage  # noqa: E402

SPEC = {"name": "bench", "duration": "1h", "seed": 5,
        "services": [{"name": f"svc-{i}", "routes": ["/a", "/b"]} for i in range(6)],
        "cohorts": {"baseline": {"rps": 60, "error_rate": 0.002, "latency_ms": {"median": 90, "p95": 400}},
                    "canary": {"rps": 20, "error_rate": 0.004, "latency_ms": {"median": 95, "p95": 420}}}}


def payloads(n: int) -> list[tuple[bytes, bytes, int]]:
    """(key, value, event time ms); producers stamp records with the event time."""
    from gatewatch.processors.timefmt import parse_time_ms
    out = []
    # an hour that ends now: Apache Kafka refuses record timestamps over an hour ahead of its clock
    start = int(time.time() * 1000) - 3_660_000
    for _t, key, value in Scenario(SPEC, start_ms=start - start % 10_000).records():
        out.append((key.encode(), orjson.dumps(value), parse_time_ms(value["ts"])))
        if len(out) >= n:
            break
    return out


def plain_loop(bs: str, topic: str, n: int) -> float:
    c = consumer(bs, f"bench-plain-{uuid.uuid4().hex[:6]}")
    c.subscribe([topic])
    got, t0, deadline = 0, None, time.monotonic() + 600
    while got < n:
        if time.monotonic() > deadline:
            sys.exit(f"bench: the plain loop read {got} of {n} records in 600 s")
        for m in c.consume(10_000, 1.0):
            if m.error():
                continue
            if t0 is None:
                t0 = time.monotonic()
            orjson.loads(m.value())
            got += 1
    dt = time.monotonic() - t0
    c.close()
    return n / dt


class TimedIngest(IngestStage):
    first = last = None
    consumed = 0

    def process(self, worker, msgs):
        if self.first is None:
            self.first = time.monotonic()
        nexts = super().process(worker, msgs)
        self.consumed += len(msgs)
        return nexts

    def after_commit(self, worker, offsets):
        super().after_commit(worker, offsets)
        self.last = time.monotonic()

    def rejected(self) -> int:
        return sum(a.rejected for a in self.aggs.values())


class TimedSignals(SignalStage):
    last = None
    applied = rejected = 0

    def handle(self, worker, state, msg):
        out = super().handle(worker, state, msg)
        partial = orjson.loads(msg.value())
        if partial.get("task", 0) == 0:  # every task gets the source's counts: take them once
            self.applied += partial["records"]
            self.rejected += partial["rejected"]
        self.last = time.monotonic()
        return out


def pipeline(bs: str, n: int, tmp: Path) -> tuple[float, float]:
    policy = load_policy_dir(ROOT / "configs/policies")
    cfg = SignalConfig.from_policy(policy.doc, policy.hash)
    ing = TimedIngest(cfg, tmp / "ingest", batch_size=20_000)
    sig = TimedSignals(cfg, tmp / "signals")
    ts = [threading.Thread(target=Worker(ing, bs, exit_when_idle_s=3, stop=StopFlag(False)).run),
          threading.Thread(target=Worker(sig, bs, exit_when_idle_s=5, stop=StopFlag(False)).run)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert ing.consumed == n and sig.applied == n, (ing.consumed, sig.applied, n)
    assert sig.rejected == 0, f"{sig.rejected} records rejected: the benchmark would measure the DLQ path"
    return n / (ing.last - ing.first), n / (sig.last - ing.first)


def faust_rate(bs: str, topic: str, n: int, tmp: Path) -> float:
    env = dict(os.environ, FAUST_BROKER=bs, IN_TOPIC=topic, BENCH_N=str(n), APP_ID=f"bench-{uuid.uuid4().hex[:6]}",
               DATADIR=str(tmp / "faust"), PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, str(ROOT / "bench/faust_counter.py")], env=env, capture_output=True,
                         text=True, timeout=600)
    import re
    m = re.search(r"FAUST_RATE ([0-9.]+)", out.stdout + out.stderr)  # faust routes stdout through its logger
    if m:
        return float(m.group(1))
    raise RuntimeError(f"faust run failed: {out.stdout[-500:]} {out.stderr[-1500:]}")


def kcat_lines(data: list[tuple[bytes, bytes, int]]) -> list[bytes]:
    """The records as `kcat -J` / `gatewatch tail` print them (what `gatewatch replay` reads):
    keyed onto 3 partitions, in runs of one partition the way a consumer's fetches return them."""
    topic = topics.topic("metrics")
    offsets = [0, 0, 0]
    lines = []
    for block in range(0, len(data), 1500):
        rows = [(zlib.crc32(k) % 3, k, v, ts) for k, v, ts in data[block:block + 1500]]
        for part, k, v, ts in sorted(rows, key=lambda r: r[0]):  # stable: event order within a partition
            lines.append(orjson.dumps({"topic": topic, "partition": part, "offset": offsets[part], "tstype": "create",
                                       "ts": ts, "broker": 0, "key": k.decode(), "payload": v.decode()}) + b"\n")
            offsets[part] += 1
    return lines


def replay_rates(data: list[tuple[bytes, bytes, int]], tmp: Path) -> tuple[float, float, float]:
    """(payload decode, kcat line decode, replay) events/s over the same kcat -J file.

    Replay runs as `gatewatch replay` does: scan_sources (a first read of the file: the input
    partitions the signals task waits for), then feed_files (envelopes -> Replayer.feed_many) -> output lines
    (to /dev/null). Its decode-alone baselines read the same file: orjson.loads of each payload
    (the record values), and of each line plus its payload (the JSON work replay cannot skip)."""
    from gatewatch.streams.app.replay import feed_files, output_line, scan_sources
    path = tmp / "records.kcat.json"
    path.write_bytes(b"".join(kcat_lines(data)))
    payloads_only = [v for _k, v, _ts in data]
    policy = load_policy_dir(ROOT / "configs/policies")

    def decode_payloads() -> None:
        for v in payloads_only:
            orjson.loads(v)

    def decode_lines() -> None:
        with open(path, "rb") as f:
            for line in f:
                orjson.loads(orjson.loads(line)["payload"])

    def replay() -> None:
        nonlocal out
        rp = Replayer(policy, None, flush_every=10_000,  # the CLI's default --flush-every
                      sources=scan_sources([str(path)]))
        with open(os.devnull, "wb") as sink:
            for recs in feed_files(rp, [str(path)], bad):
                for rec in recs:
                    sink.write(output_line(*rec))
                    out += 1

    # alternated, best of 3 each, in this process's CPU time (all three run in this one thread):
    # a noisy neighbour slows one round, not one side, and waiting for a core is not counted
    best = {f: float("inf") for f in (decode_payloads, decode_lines, replay)}
    bad, out = Counter(), 0
    for _round in range(3):
        for f in best:
            t0 = time.process_time()
            f()
            best[f] = min(best[f], time.process_time() - t0)
    payload_rate, line_rate, replay_rate = (len(data) / best[f] for f in (decode_payloads, decode_lines, replay))
    assert out > 0 and not bad
    return payload_rate, line_rate, replay_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--faust-events", type=int, default=30_000)
    ap.add_argument("--engine", choices=ENGINES, default="tansu",
                    help="broker: the embedded tansu or Apache Kafka from Maven jars (Java 17)")
    ap.add_argument("--replay-only", action="store_true",
                    help="only replay and its decode baselines (no broker: a quick check of replay's ratio)")
    a = ap.parse_args()
    data = payloads(a.events)
    n = len(data)
    if a.replay_only:
        os.environ.setdefault("GATEWATCH_TOPIC_PREFIX", "bench.")
        with tempfile.TemporaryDirectory() as tmpd:
            payload_rate, line_rate, replay = replay_rates(data, Path(tmpd))
        print(f"events: {n} request samples on 3 partitions (replay only, no broker)")
        print_replay(payload_rate, line_rate, replay)
        return
    os.environ["GATEWATCH_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    with make_broker(a.engine) as b, tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        create_topics(b.bootstrap)
        topic = topics.topic("metrics")
        p = producer(b.bootstrap, **{"linger.ms": 20})
        for k, v, ts in data:
            while True:
                try:
                    p.produce(topic, key=k, value=v, timestamp=ts)
                    break
                except BufferError:
                    p.poll(0.05)
        left = p.flush(300)
        if left:
            sys.exit(f"bench: {left} records still unsent to the broker after 300 s")
        plain_before = plain_loop(b.bootstrap, topic, n)
        ingest, full = pipeline(b.bootstrap, n, tmp)
        plain_after = plain_loop(b.bootstrap, topic, n)
        plain = max(plain_before, plain_after)  # the faster baseline: the ratio errs against us
        fr = faust_rate(b.bootstrap, topic, min(a.faust_events, n), tmp)
        payload_rate, line_rate, replay = replay_rates(data, tmp)
    print(f"events: {n} request samples on 3 partitions ({b.describe()}, same topic for every consumer)")
    print(f"plain confluent-kafka consume+orjson loop : {plain:>10,.0f} ev/s   1.00x  "
          f"(the faster of a run before, {plain_before:,.0f}, and after, {plain_after:,.0f}, the pipeline)")
    print(f"ingest stage (decode, validate, partials)  : {ingest:>10,.0f} ev/s   {ingest / plain:.2f}x plain")
    print(f"ingest -> signals (last signal emitted)     : {full:>10,.0f} ev/s   {full / plain:.2f}x plain  (target >= 0.5x)")
    print(f"per-event faust agent with a Table          : {fr:>10,.0f} ev/s   {fr / plain:.3f}x plain  "
          f"(ingest->signals is {full / fr:.0f}x faster)")
    print_replay(payload_rate, line_rate, replay)


def print_replay(payload_rate: float, line_rate: float, replay: float) -> None:
    print(f"orjson decode of the kcat lines + payloads  : {line_rate:>10,.0f} ev/s   1.00x")
    print(f"orjson decode of the payloads alone         : {payload_rate:>10,.0f} ev/s   "
          f"{payload_rate / line_rate:.2f}x line decode")
    print(f"replay of the kcat file (same processors)   : {replay:>10,.0f} ev/s   {replay / line_rate:.2f}x line decode"
          f"  (target >= 0.5x)   {replay / payload_rate:.2f}x payload decode")


if __name__ == "__main__":
    main()
