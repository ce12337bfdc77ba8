"""Trajectory linking benchmark: spans/s of the span cycle as a ratio of plain orjson decode of the
same corpus, measured side by side (interleaved rounds, best of each) in one run.

    python bench/trajectory.py [--n 100000] [--rounds 3] [--seed 1]

Paths over the same generated corpus (streams.cmd_quality.generate_spans, default policy):
  orjson decode      orjson.loads per line (the floor any JSON consumer pays)
  decode+validate    processors.spans.decode: canonical_contract_v1
  full cycle         SpanCycle.process: validate, link, close, score, meter, guardrail, event ids
A fresh SpanCycle per round, so every round does the same work.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import orjson  # noqa: E402

from processors.quality import SpanCycle  # noqa: E402
from processors.spans import decode  # noqa: E402
from streams.cmd_quality import generate_spans, load_policy  # noqa: E402


def _orjson(lines, _policy):
    loads = orjson.loads
    for line in lines:
        loads(line)


def _validate(lines, _policy):
    for line in lines:
        decode(line)


def _cycle(lines, policy):
    process = SpanCycle(policy).process
    n = 0
    for line in lines:
        n += len(process(line)[0])
    return n


PATHS = (("orjson decode", _orjson), ("decode+validate", _validate), ("full cycle", _cycle))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
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


if __name__ == "__main__":
    main()
