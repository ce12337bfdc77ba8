"""Trajectory linking benchmark: spans/s of the span cycle as a ratio of plain orjson decode of the
same corpus, measured side by side (interleaved rounds, best of each) in one run.

    python bench/trajectory.py [--n 100000] [--rounds 3] [--seed 1] [--e2e]

Paths over the same generated corpus (gatewatch.streams.cli.quality.generate_spans, default policy):
  orjson decode      orjson.loads per line (the floor any JSON consumer pays)
  decode+validate    gatewatch.processors.spans.decode: canonical_contract_v1
  full cycle         SpanCycle.process: validate, link, close, score, meter, guardrail, event ids
A fresh SpanCycle per round, so every round does the same work.

--e2e adds, through a broker (KAFKA_BOOTSTRAP_SERVERS, else the embedded tansu), the worker
(consume, cycle, produce events, flush + snapshot each second) against a plain confluent-kafka
consume + orjson.loads loop over the same topic, from first record to last (group join excluded).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from gatewatch.processors.quality import SpanCycle  # noqa: E402
from gatewatch.processors.spans import decode  # noqa: E402
from gatewatch.streams.cli.quality import generate_spans, load_policy  # noqa: E402


def _orjson(lines, _policy):
    loads = orjson.loads
    for line in lines:
        loads(line)


def _validate(lines, _policy):
    for line in lines:
        decode(line)


def _cycle(lines, policy):
    cycle = SpanCycle(policy)
    process, take = cycle.process, cycle.take_signals
    n = 0
    for line in lines:
        n += len(process(line)[0])
        take()
    return n


PATHS = (("orjson decode", _orjson), ("decode+validate", _validate), ("full cycle", _cycle))


def _e2e(lines, policy) -> None:
    import tempfile
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from gatewatch.streams.runtime import kafka, topics
    from gatewatch.streams.runtime.brokers import kafka_bootstrap
    from gatewatch.streams.runtime.lifecycle import StopFlag
    from gatewatch.streams.runtime.worker import Worker
    from gatewatch.streams.stages.trajectories import TrajectoryStage

    os.environ["GATEWATCH_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    n = len(lines)
    with kafka_bootstrap() as bs:
        kafka.create_topics(bs)
        p = kafka.producer(bs)
        for line in lines:
            p.produce(topics.topic("spans"), key=orjson.loads(line)["tenant"].encode(), value=line)
            p.poll(0)
        p.flush(60)

        c = kafka.consumer(bs, f"plain-{uuid.uuid4().hex[:6]}")
        c.assign([TopicPartition(topics.topic("spans"), i, OFFSET_BEGINNING) for i in range(3)])
        got, t_first = 0, None
        while got < n:
            msgs = c.consume(2000, 1.0)
            if msgs and t_first is None:
                t_first = time.perf_counter()
            for m in msgs:
                orjson.loads(m.value())
            got += len(msgs)
        plain = n / (time.perf_counter() - t_first)
        c.close()

        with tempfile.TemporaryDirectory() as d:
            stage = TrajectoryStage(policy, f"{d}/state", group=f"bench-{uuid.uuid4().hex[:6]}")
            marks = []
            orig = stage.process

            def timed(worker, msgs):
                if not marks:
                    marks.append(time.perf_counter())
                orig(worker, msgs)
                marks.append(time.perf_counter())
            stage.process = timed
            Worker(stage, bs, assignment="group", exit_when_idle_s=2, stop=StopFlag(install=False)).run()
        worker = n / (marks[-1] - marks[0])
    print(f"{'plain consume':18} {plain:12,.0f} {1.0:17.3f}x   (through the broker)")
    print(f"{'worker':18} {worker:12,.0f} {worker / plain:17.3f}x   (cycle + produce + snapshots)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--e2e", action="store_true", help="also measure the worker through a broker")
    args = ap.parse_args()
    lines = generate_spans(args.n, args.seed)
    policy = load_policy(None)
    best = {name: float("inf") for name, _ in PATHS}
    events = 0
    for _ in range(args.rounds):
        for name, fn in PATHS:
            t = time.perf_counter()
            r = fn(lines, policy)
            best[name] = min(best[name], time.perf_counter() - t)
            if r:
                events = r
    base = args.n / best["orjson decode"]
    print(f"corpus: {args.n} spans, {events} trajectory events; best of {args.rounds} rounds")
    print(f"{'path':18} {'spans/s':>12} {'vs orjson decode':>18}")
    for name, _ in PATHS:
        rate = args.n / best[name]
        print(f"{name:18} {rate:12,.0f} {rate / base:17.3f}x")
    if args.e2e:
        print()
        print(f"{'path':18} {'spans/s':>12} {'vs plain consume':>18}")
        _e2e(lines, policy)


if __name__ == "__main__":
    main()
