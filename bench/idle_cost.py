"""What an idle pipeline costs an Apache Kafka broker, by consumer fetch wait, and what a test
broker's C1-only JIT saves; each as a ratio to its baseline measured in the same run.

    python bench/idle_cost.py [--seconds 30]

1. One broker (full JIT, as users run it): its CPU with ingest, signals and decide running idle
   at GATEWATCH_FETCH_WAIT_MS=50 and at 500 (the default since stop 30), each wait's
   produce->consume latency on it (a fetch returns as soon as a record arrives on Kafka, so the
   wait should not show there), then its CPU idle alone; and the same latency on the embedded tansu.
2. A broker with the test fixtures' JVM flags (streams/app/shared_broker.py) against one without:
   CPU seconds from launch to ready (format included), then idle CPU.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import NewTopic

from gatewatch.streams.app.shared_broker import TEST_JVM_FLAGS
from gatewatch.streams.runtime.brokers import EmbeddedBroker
from gatewatch.streams.runtime.brokers.apache import ApacheKafka
from gatewatch.streams.runtime.kafka import admin, consumer, create_topics, producer
from gatewatch.streams.runtime.keys import init_keys

STAGES = ("ingest", "signals", "decide")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def broker_share(broker: ApacheKafka, seconds: float) -> float:
    """The broker's CPU over `seconds`, as a share of one core."""
    pid = broker.nodes[0].proc.pid
    c0 = cpu_s(pid)
    time.sleep(seconds)
    return (cpu_s(pid) - c0) / seconds


def idle_stages_share(broker: ApacheKafka, wait_ms: str, seconds: float, tmp: Path) -> tuple[float, float]:
    prefix = f"b{uuid.uuid4().hex[:6]}."
    create_topics(broker.bootstrap, prefix)
    init_keys(tmp / prefix)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, GATEWATCH_TOPIC_PREFIX=prefix,
               GATEWATCH_FETCH_WAIT_MS=wait_ms, GATEWATCH_KEYS_DIR=str(tmp / prefix), GATEWATCH_LOG_LEVEL="ERROR")
    procs = [subprocess.Popen([sys.executable, "-m", "gatewatch.streams.cli", "worker", s], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for s in STAGES]
    try:
        time.sleep(20)  # joined, assigned, transactions initialised
        w0 = sum(cpu_s(p.pid) for p in procs)
        share = broker_share(broker, seconds)
        return share, (sum(cpu_s(p.pid) for p in procs) - w0) / seconds
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)


def latency_ms(bootstrap: str, wait_ms: int, n: int = 30) -> float:
    """Median produce -> consume of single records sent 137 ms apart."""
    topic = f"lat{uuid.uuid4().hex[:6]}"
    a = admin(bootstrap)
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result()
    c = consumer(bootstrap, f"g{topic}", **{"fetch.wait.max.ms": wait_ms})
    c.subscribe([topic])
    p = producer(bootstrap)
    while not c.assignment():
        c.poll(0.2)
    out = []
    for _ in range(n):
        time.sleep(0.137)
        t0 = time.monotonic()
        p.produce(topic, b"x")
        p.flush()
        while (m := c.poll(5)) is None or m.error():
            pass
        out.append((time.monotonic() - t0) * 1000)
    c.close()
    return statistics.median(out)


def jit_costs(flags: tuple[str, ...], seconds: float) -> tuple[float, float]:
    """(CPU seconds from launch to ready incl. the storage format, idle share of a core)."""
    before = children_cpu_s()
    b = ApacheKafka(jvm_flags=flags)
    b.start()
    try:
        pid = b.nodes[0].proc.pid
        start = children_cpu_s() - before + cpu_s(pid)
        time.sleep(5)
        return start, broker_share(b, seconds)
    finally:
        b.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of each CPU window")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ApacheKafka() as broker:
        runs = {w: idle_stages_share(broker, w, a.seconds, Path(tmp)) for w in ("50", "500")}
        lat = {w: latency_ms(broker.bootstrap, int(w)) for w in ("50", "500")}
        time.sleep(10)
        alone = broker_share(broker, a.seconds)  # last: the broker's own warm-up is behind it
    extra = {w: runs[w][0] - alone for w in runs}
    print(f"broker idle alone: {alone * 100:.1f} % of a core ({a.seconds:.0f} s windows, {broker.describe()})")
    for w in ("50", "500"):
        print(f"  + 3 idle stages at fetch.wait.max.ms={w}: broker {runs[w][0] * 100:.1f} % "
              f"(+{extra[w] * 100:.1f}), stages {runs[w][1] * 100:.1f} %; produce->consume p50 {lat[w]:.0f} ms")
    print(f"broker CPU with the idle stages, 500 ms / 50 ms: {runs['500'][0] / runs['50'][0]:.2f}x "
          f"(above idle alone: {extra['500'] / extra['50']:.2f}x); "
          f"stages' own CPU {runs['500'][1] / runs['50'][1]:.2f}x; latency p50 {lat['500'] / lat['50']:.2f}x")
    with EmbeddedBroker() as tansu:  # why its clients keep 50 ms (brokers/tansu.py)
        held = {w: latency_ms(tansu.bootstrap, w) for w in (50, 500)}
    print(f"embedded tansu, produce->consume p50: {held[50]:.0f} ms at 50, {held[500]:.0f} ms at 500 "
          f"= {held[500] / held[50]:.1f}x (it holds each fetch for the whole wait)")
    full, c1 = jit_costs((), a.seconds), jit_costs(TEST_JVM_FLAGS, a.seconds)
    print(f"test broker {' '.join(TEST_JVM_FLAGS)} against the full JIT: start {c1[0]:.1f} / {full[0]:.1f} CPU-s "
          f"= {c1[0] / full[0]:.2f}x, idle {c1[1] * 100:.1f} / {full[1] * 100:.1f} % = {c1[1] / full[1]:.2f}x")


if __name__ == "__main__":
    main()
