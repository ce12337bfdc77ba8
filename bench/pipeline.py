"""Load benchmark of the streaming path: throughput, decision latency and worker RSS, as ratios to a
plain consume loop measured in the same run on the same broker.

    python bench/pipeline.py [--seconds 60] [--rate 8000]

A mixed scenario (requests for 8 services with baseline and canary, web-vitals, CDC, gauges) is
published live at --rate records per wall second with event time compressed 30x; every service's
canary flips between healthy and a 5xx surge every 2 minutes of event time, so rules keep firing.

Capacity: after the live phase, workers and the plain loop are paused (SIGSTOP) while a backlog
of --burst mixed records is produced; then the plain loop alone reads it (all input topics), then
the workers alone process it (until ingest has committed all of it and signals are out for the
backlog's windows that close by its end). Both rates are records per second of that backlog,
measured one after the other in the same run, with the CPU time each process spent on it. Two
backlogs: one at the live load's density (--rate / 30 records per event second), then one that
packs the same count into --span event seconds (default 240: longer than the 120 s lateness, so
its own windows close), where a record carries several times less signal and decision work.

Live-phase CPU: each process's CPU time from the first live record to the pipeline having caught
up, per live record (small batches at the offered rate: where fixed per-batch/per-step costs show).

Decision latency = wall time from producing the record that makes a rule true to seeing the
action on gw.actions. A rule at step end E becomes decidable when its source partition's
watermark passes E, i.e. when the first record with event time >= E + lateness arrives; that
record's produce time is the start. The baseline latency is the plain loop's produce -> consume.
"""
from __future__ import annotations

import argparse
import bisect
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gatewatch.processors.scenarios import Scenario  # noqa: E402
from gatewatch.processors.timefmt import parse_time_ms  # noqa: E402
from gatewatch.streams.runtime import topics  # noqa: E402
from gatewatch.streams.runtime.brokers import ENGINES, make_broker  # noqa: E402
from gatewatch.streams.runtime.consuming import watermarks  # noqa: E402
from gatewatch.streams.runtime.kafka import consumer, create_topics, producer  # noqa: E402
from gatewatch.streams.runtime.keys import init_keys  # noqa: E402

SERVICES = [f"svc-{i}" for i in range(8)]
SPEC = {"name": "load", "seed": 9, "services": [{"name": s, "routes": ["/a", "/b"]} for s in SERVICES],
        "cohorts": {"baseline": {"rps": 30, "error_rate": 0.0005, "latency_ms": {"median": 90, "p95": 300}},
                    "canary": {"rps": 10, "error_rate": 0.0005, "latency_ms": {"median": 90, "p95": 300}}},
        "rum": {"service": "svc-0", "rate": 2, "routes": {"/": {"inp_ms": 150, "lcp_ms": 1900, "cls": 0.05}}},
        "cdc": {"tables": ["shop.orders", "shop.items"], "rate": 3, "lag_s": 1},
        "gauges": {"every": "10s", "values": {"invariant": 0}},
        "phases": [{"at": f"{m}m", "until": f"{m + 2}m", "set": {"cohorts.canary.error_rate": 0.3}}
                   for m in range(2, 600, 4)]}
SCOPES = {*SERVICES, *SPEC["cdc"]["tables"]}  # every scope the scenario's signals come in
SPEED = 30.0
LATENESS_MS = 120_000


def rss_kb(pid: int) -> int | None:
    try:
        return int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0])
    except (OSError, IndexError):
        return None


def wait_signals_until(bootstrap: str, ts_ms: int, timeout_s: float) -> bool:
    """True once gw.signals carries a window ending at or after ts_ms for every scope (caught up)."""
    c = consumer(bootstrap, f"load-catchup-{uuid.uuid4().hex[:6]}")
    c.subscribe([topics.topic("signals")])
    deadline, done = time.monotonic() + timeout_s, set()
    try:
        while time.monotonic() < deadline:
            for m in c.consume(5000, 0.2):
                if m.error() is None:
                    sig = orjson.loads(m.value())
                    if parse_time_ms(sig["ts"]) >= ts_ms:
                        done.add(sig["scope"])
            if done >= SCOPES:
                return True
        return False
    finally:
        c.close()


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its threads so far."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def event_ms(value: dict) -> int:
    return parse_time_ms(value.get("ts") or value.get("timestamp") or value.get("payload", {}).get("ts_ms")
                         or value.get("ts_ms"))


class SignalWatch(threading.Thread):
    """Notes the monotonic time when gw.signals carries a window ending at or after `target_ms` for
    every scope (each scope's source partitions advance on their own); reads from the current end
    (assign, no group join: no delay)."""

    def __init__(self, bootstrap: str, target_ms: int):
        super().__init__(daemon=True)
        from confluent_kafka import OFFSET_END, TopicPartition

        from gatewatch.streams.runtime.consuming import static_partitions
        self.target_ms, self.seen_at, self.stop = target_ms, None, threading.Event()
        self.done: set[str] = set()
        self.c = consumer(bootstrap, f"load-cap-{uuid.uuid4().hex[:6]}")
        name = topics.topic("signals")
        self.c.assign([TopicPartition(name, p, OFFSET_END) for p in static_partitions(self.c, name, None)])

    def run(self) -> None:
        while self.seen_at is None and not self.stop.is_set():
            for m in self.c.consume(5000, 0.1):
                if m.error() is None:
                    sig = orjson.loads(m.value())
                    if parse_time_ms(sig["ts"]) >= self.target_ms:
                        self.done.add(sig["scope"])
            if self.done >= SCOPES:
                self.seen_at = time.monotonic()
        self.c.close()


class CommitWatch(threading.Thread):
    """Notes the monotonic time when ingest's committed offsets reach the end of its input topics."""

    def __init__(self, bootstrap: str, input_topics: list[str]):
        super().__init__(daemon=True)
        from confluent_kafka import TopicPartition
        self.c = consumer(bootstrap, topics.group_id("ingest"))  # reads the group's commits, never joins
        self.tps = [TopicPartition(t, p) for t in input_topics for p in self.c.list_topics(t, timeout=10).topics[t].partitions]
        self.ends = {(tp.topic, tp.partition): watermarks(self.c, tp.topic, tp.partition)[1] for tp in self.tps}
        self.seen_at, self.stop, self.error = None, threading.Event(), None

    def run(self) -> None:
        while self.seen_at is None and not self.stop.wait(0.02):
            try:
                got = {(tp.topic, tp.partition): tp.offset for tp in self.c.committed(self.tps, timeout=10)}
            except Exception as e:  # noqa: BLE001  an open transaction: the broker may say "unstable"; ask again
                self.error = e
                continue
            if all(got[k] >= end for k, end in self.ends.items() if end > 0):
                self.seen_at = time.monotonic()
        self.c.close()


def measure_capacity(bootstrap, p, burst, before_n, workers, plain, plain_lines, broker_pid):
    """(plain loop, pipeline) records/s over the same backlog, one after the other (module docstring),
    and the CPU seconds each process spent on it. before_n: records the plain loop reads first."""
    import signal
    deadline = time.monotonic() + 120
    while not (plain_lines and plain_lines[-1]["n"] >= before_n) and time.monotonic() < deadline:
        time.sleep(0.2)  # the plain loop must start the backlog with the records before it read
    for proc in (*workers.values(), plain):
        proc.send_signal(signal.SIGSTOP)
    for logical, key, value in burst:
        while True:
            try:
                p.produce(topics.topic(logical), key=key.encode(), value=orjson.dumps(value), timestamp=event_ms(value))
                break
            except BufferError:
                p.poll(0.05)
    p.flush(120)
    cpu0 = {"plain": cpu_s(plain.pid), "broker": cpu_s(broker_pid)}
    t_plain = time.monotonic()
    plain.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 600
    while not plain_lines[-1]["n"] >= before_n + len(burst) and time.monotonic() < deadline:
        time.sleep(0.05)
    if plain_lines[-1]["n"] < before_n + len(burst):
        raise SystemExit("the plain loop did not read the backlog within 600 s")
    plain_rate = len(burst) / (plain_lines[-1]["now"] - t_plain)
    cpu = {"plain": plain_lines[-1]["cpu_s"] - cpu0["plain"], "broker (plain)": cpu_s(broker_pid) - cpu0["broker"]}
    last = max(event_ms(v) for _t, _k, v in burst[-2000:])
    watch = SignalWatch(bootstrap, last - LATENESS_MS - 20_000)
    watch.start()
    ingest_watch = CommitWatch(bootstrap, [topics.topic(t) for t in ("metrics", "rum", "cdc")])
    time.sleep(1.0)  # the watch is positioned at the end of gw.signals
    cpu0 = {s: cpu_s(w.pid) for s, w in workers.items()} | {"broker": cpu_s(broker_pid)}
    t_pipe = time.monotonic()
    for proc in workers.values():
        proc.send_signal(signal.SIGCONT)
    ingest_watch.start()
    watch.join(600)
    ingest_watch.join(60)
    ingest_watch.stop.set()
    watch.stop.set()
    if watch.seen_at is None or ingest_watch.seen_at is None:
        raise SystemExit("the pipeline did not process the backlog within 600 s"
                         + (f" (last committed-offsets error: {ingest_watch.error})" if ingest_watch.error else ""))
    cpu |= {s: cpu_s(w.pid) - cpu0[s] for s, w in workers.items()} | {"broker (pipeline)": cpu_s(broker_pid) - cpu0["broker"]}
    done = {"ingest committed all after s": ingest_watch.seen_at - t_pipe,
            "signals out after s": watch.seen_at - t_pipe}
    return plain_rate, len(burst) / max(done.values()), cpu, done


def print_capacity(what: str, n: int, capacity) -> None:
    plain_cap, pipe_cap, cpu, done = capacity
    print(f"capacity, {what}, {n:,} records: plain consume+orjson loop {plain_cap:,.0f} rec/s, "
          f"pipeline (ingest -> signals) {pipe_cap:,.0f} rec/s -> {pipe_cap / plain_cap:.2f}x (target >= 0.5x)")
    print("  CPU microseconds per record: " + ", ".join(f"{k} {v * 1e6 / n:.2f}" for k, v in cpu.items()))
    print("  " + ", ".join(f"{k} {v:.2f}" for k, v in done.items()))


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=8000, help="records per wall second")
    ap.add_argument("--burst", type=int, default=400_000, help="records in each capacity backlog")
    ap.add_argument("--span", type=float, default=240,
                    help="event seconds the dense backlog spans: more than the lateness, so its own windows close")
    ap.add_argument("--engine", choices=ENGINES, default="tansu",
                    help="broker: the embedded tansu or Apache Kafka from Maven jars (Java 17)")
    ap.add_argument("--workers-root", type=Path, default=ROOT,
                    help="source tree the workers import gatewatch from (bench/ab.py: another commit's)")
    ap.add_argument("--pids", type=Path, help="write the workers' process ids here (JSON), for a profiler")
    a = ap.parse_args()
    prefix = f"load{uuid.uuid4().hex[:6]}."
    os.environ["GATEWATCH_TOPIC_PREFIX"] = prefix
    event_seconds = a.seconds * SPEED
    rps_total = a.rate / SPEED  # event-time records/s that give --rate wall records/s
    with make_broker(a.engine) as b, tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        create_topics(b.bootstrap)
        init_keys(tmp / "keys", roles=("decider",))
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=b.bootstrap, GATEWATCH_KEYS_DIR=str(tmp / "keys"),
                   GATEWATCH_LOG_LEVEL="WARNING", PYTHONPATH=str(a.workers_root))
        workers = {s: subprocess.Popen([sys.executable, "-m", "gatewatch", "worker", s, "--state-dir", str(tmp / "st"),
                                        "--policy", str(ROOT / "configs/policies")], env=env,
                                       cwd=a.workers_root,  # `-m` puts the cwd first on sys.path
                                       stdout=subprocess.DEVNULL, stderr=open(tmp / f"{s}.log", "wb"))
                   for s in ("ingest", "signals", "decide")}
        if a.pids:
            a.pids.write_bytes(orjson.dumps({s: w.pid for s, w in workers.items()}))
        sc = Scenario(SPEC, start_ms=int(time.time() * 1000), duration=f"{int(event_seconds)}s", rate=rps_total)
        records = list(sc.records())
        last_live = max(event_ms(v) for _t, _k, v in records[-2000:])
        # backlogs: the live phase's density (signal work per record is high), then --span event
        # seconds (work per record is mostly ingest's)
        burst = list(Scenario(SPEC, start_ms=last_live + 1000, duration=f"{int(a.burst / rps_total) + 1}s",
                              rate=rps_total).records())[:a.burst]
        last_burst = max(event_ms(v) for _t, _k, v in burst[-2000:])
        dense_rate = a.burst / a.span
        dense = list(Scenario(SPEC, start_ms=last_burst + 1000, duration=f"{int(a.span) + 1}s",
                              rate=dense_rate).records())[:a.burst]
        inputs = ",".join(topics.topic(t) for t in ("metrics", "rum", "cdc"))
        plain = subprocess.Popen([sys.executable, str(ROOT / "bench/plain_consumer.py"), b.bootstrap, inputs,
                                  f"{len(records)},{len(records) + len(burst)},{len(records) + len(burst) + len(dense)}"],
                                 stdout=subprocess.PIPE, text=True, env=env)
        plain_lines: list[dict] = []
        threading.Thread(target=lambda: plain_lines.extend(orjson.loads(x) for x in plain.stdout if x.strip()),
                         daemon=True).start()
        # watch actions
        seen: dict[str, float] = {}
        actions: list[dict] = []
        stop = threading.Event()

        def watch():
            c = consumer(b.bootstrap, f"load-watch-{uuid.uuid4().hex[:6]}")
            c.subscribe([topics.topic("actions")])
            while not stop.is_set():
                for m in c.consume(500, 0.2):
                    if m.error() is None:
                        act = orjson.loads(m.value())
                        if act["id"] not in seen:
                            seen[act["id"]] = time.monotonic()
                            actions.append(act)
            c.close()

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(2)
        # publish live, recording produce time per (partition, event time) for the metrics topic
        produced: dict[tuple[str, int], list[tuple[int, float]]] = {}
        p = producer(b.bootstrap, **{"linger.ms": 5})
        rss_samples: list[tuple[int, dict]] = []
        t0, sent, next_rss = time.monotonic(), 0, time.monotonic()
        live_cpu0 = {s: cpu_s(w.pid) for s, w in {"plain": plain, **workers}.items()}

        def on_delivery(err, msg, ev_ms, t_produce):
            if err is None and msg.topic() == topics.topic("metrics"):
                produced.setdefault((msg.key().decode(), msg.partition()), []).append((ev_ms, t_produce))

        for logical, key, value in records:
            ev_ms = event_ms(value)
            due = (ev_ms - sc.start_ms) / 1000 / SPEED
            lag = due - (time.monotonic() - t0)
            if lag > 0.002:
                p.poll(lag)
            while True:
                try:
                    p.produce(topics.topic(logical), key=key.encode(), value=orjson.dumps(value), timestamp=ev_ms,
                              headers=[("produced_ms", str(int(time.time() * 1000)).encode())],
                              on_delivery=lambda e, m, ev=ev_ms, t=time.monotonic(): on_delivery(e, m, ev, t))
                    break
                except BufferError:
                    p.poll(0.01)
            sent += 1
            if time.monotonic() >= next_rss:
                rss_samples.append((sent, {s: rss_kb(w.pid) for s, w in workers.items()}))
                next_rss += 2.0
        p.flush(30)
        wall = time.monotonic() - t0
        t_last = time.monotonic()
        caught_up = wait_signals_until(b.bootstrap, last_live - LATENESS_MS - 20_000, 120)
        catch_up_s = time.monotonic() - t_last if caught_up else None
        # small batches at the offered rate: where fixed per-batch and per-step costs show
        live_cpu = {s: cpu_s(w.pid) - live_cpu0[s] for s, w in {"plain": plain, **workers}.items()}
        rss_samples.append((sent, {s: rss_kb(w.pid) for s, w in workers.items()}))
        stop.set()
        live_plain = list(plain_lines)
        capacity = measure_capacity(b.bootstrap, p, burst, len(records), workers, plain, plain_lines, b.proc.pid)
        rss_after = [{s: rss_kb(w.pid) for s, w in workers.items()}]  # the backlogs: apart from the live phase
        capacity_dense = measure_capacity(b.bootstrap, p, dense, len(records) + len(burst), workers, plain,
                                          plain_lines, b.proc.pid)
        rss_after.append({s: rss_kb(w.pid) for s, w in workers.items()})
        for w in workers.values():
            w.terminate()
        for w in workers.values():
            w.wait(20)

    # decision latency: action at E -> first metrics record of its scope with event time >= E + lateness
    lats = []
    for act in actions:
        if act.get("kind") not in ("abort", "hook"):
            continue
        end = parse_time_ms(act["ts"]) + LATENESS_MS
        cands = []
        for (key, _part), recs in produced.items():
            if key != act["scope"]:
                continue
            recs.sort()
            i = bisect.bisect_left(recs, (end, 0.0))
            if i < len(recs):
                cands.append(recs[i][1])
        if cands:
            lats.append(seen[act["id"]] - min(cands))
    base_lat = [x / 1000 for line in live_plain for x in line["lat_ms"]]
    plain_rss = live_plain[-1]["rss_kb"] if live_plain else float("nan")
    print(f"live load: {sent} records in {wall:.1f} s = {sent / wall:,.0f} rec/s offered "
          f"(event time {SPEED:g}x, {len(SERVICES)} services, mixed topics)")
    if catch_up_s is None:
        print(f"live: the pipeline did NOT keep up with {sent / wall:,.0f} rec/s (no final signals within 120 s)")
    else:
        print(f"live: the pipeline kept up with {sent / wall:,.0f} rec/s offered (last windows out "
              f"{catch_up_s:.1f} s after the last record)")
    print(f"live phase, {sent:,} records (all of them processed): CPU microseconds per record: "
          + ", ".join(f"{k} {v * 1e6 / sent:.2f}" for k, v in live_cpu.items()))
    print_capacity(f"the live load's density ({rps_total:,.0f} records per event second)", len(burst), capacity)
    print_capacity(f"dense ({dense_rate:,.0f} records per event second over {a.span:g} event s)", len(dense),
                   capacity_dense)
    if lats:
        p50, p99 = statistics.median(lats), pct(lats, 0.99)
        b50, b99 = statistics.median(base_lat), pct(base_lat, 0.99)
        print(f"decision latency over {len(lats)} actions: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
              f"(target p99 <= 500 ms); plain produce->consume p50 {b50 * 1000:.0f} ms, p99 {b99 * 1000:.0f} ms "
              f"-> {p50 / b50:.1f}x / {p99 / b99:.1f}x")
    else:
        print("decision latency: no abort/hook actions observed")
    print("worker RSS (MB) at the live phase's quarters (flat in event count: last/first-quarter near 1.0), "
          "its end as a ratio to the plain loop's, then after each backlog:")
    for s in ("ingest", "signals", "decide"):
        series = [(n, r[s]) for n, r in rss_samples if r.get(s)]
        if not series:
            continue
        q = [series[int(i * (len(series) - 1) / 4)] for i in range(5)]
        after = " / ".join(f"{r[s] / 1024:.1f}" if r.get(s) else "-" for r in rss_after)
        print(f"  {s:8} " + "  ".join(f"{n:>7} rec: {kb / 1024:6.1f}" for n, kb in q)
              + f"   last/first-quarter {q[-1][1] / q[1][1]:.2f}   vs plain {q[-1][1] / plain_rss:.2f}x"
              + f"   after backlogs {after}")


if __name__ == "__main__":
    main()
