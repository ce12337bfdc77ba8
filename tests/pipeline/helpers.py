"""Shared by the pipeline tests: a small scenario with a breach, bad records, and reading topics back."""
from __future__ import annotations

import time

import orjson

from gatewatch.processors.scenarios import Scenario
from gatewatch.streams.app.simulate import event_ms, publish
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.consuming import message_ts_ms
from gatewatch.streams.runtime.kafka import ordered_producer, read_to_end

# Event time half an hour ago, to the minute: a real broker refuses record timestamps more than
# message.timestamp.after.max.ms (1 h) ahead of its clock and deletes records older than retention.
START_MS = (int(time.time()) // 60 - 30) * 60_000
SPEC = {
    "name": "pipeline_test", "duration": "6m", "seed": 3,
    "services": [{"name": "checkout", "routes": ["/api/pay"]}, {"name": "search", "routes": ["/q"]}],
    "cohorts": {"baseline": {"rps": 6, "error_rate": 0.001, "latency_ms": {"median": 100, "p95": 300}},
                "canary": {"rps": 3, "error_rate": 0.001, "latency_ms": {"median": 100, "p95": 300}}},
    "rum": {"service": "checkout", "rate": 0.5, "routes": {"/": {"inp_ms": 150, "lcp_ms": 1900, "cls": 0.05}}},
    "cdc": {"tables": ["shop.orders"], "rate": 1, "lag_s": 1},
    "gauges": {"every": "10s", "values": {"invariant": 0}},
    "phases": [{"at": "3m", "set": {"cohorts.canary.error_rate": 0.2, "gauges.invariant": 1}}],
}
BAD = [(b"checkout", b"not json"), (b"checkout", b'{"service":"checkout","status":200}'),
       (b"checkout", b'[1,2]'), (None, b'{"status":"x","latency_ms":1,"ts":"2027-01-15T08:00:00Z"}')]


def publish_inputs(bootstrap: str, spread_seed: int | None = None) -> int:
    """The scenario, keyed by service as the topics document, or with spread_seed every record on
    a random partition (producers that key by anything), plus bad and late records."""
    if spread_seed is None:
        n = publish(Scenario(SPEC, start_ms=START_MS), ordered_producer(bootstrap))
    else:
        n = publish_spread(Scenario(SPEC, start_ms=START_MS), bootstrap, spread_seed)
    p = ordered_producer(bootstrap)
    for k, v in BAD:
        p.produce(topics.topic("metrics"), key=k, value=v, timestamp=START_MS)
    # a record far behind the watermark: late
    late = {"service": "checkout", "cohort": "canary", "status": 200, "latency_ms": 5,
            "ts": START_MS + 1000}
    p.produce(topics.topic("metrics"), key=b"checkout", value=orjson.dumps(late), timestamp=START_MS)
    assert p.flush(10) == 0
    return n + len(BAD) + 1


def publish_spread(scenario: Scenario, bootstrap: str, seed: int) -> int:
    import random

    from confluent_kafka.admin import AdminClient
    rng = random.Random(seed)
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    parts = {t: len(md.topics[topics.topic(t)].partitions) for t in ("metrics", "rum", "cdc")}
    p, n = ordered_producer(bootstrap), 0
    for logical, key, value in scenario.records():
        p.produce(topics.topic(logical), key=key.encode(), value=orjson.dumps(value),
                  partition=rng.randrange(parts[logical]), timestamp=event_ms(value) or 0)
        n += 1
        if n % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    return n


def read_topic(bootstrap: str, logical: str, timeout_s: float = 90.0) -> list:
    """Every record of a topic as (partition, offset, key, value, ts), up to its current end."""
    return [(m.partition(), m.offset(), m.key(), m.value(), message_ts_ms(m))
            for m in read_to_end(bootstrap, topics.topic(logical), timeout_s)]


def envelopes(bootstrap: str) -> list[dict]:
    """The input topics as kcat -J envelopes, per partition in offset order."""
    envs = []
    for logical in ("metrics", "rum", "cdc"):
        for part, off, key, value, ts in sorted(read_topic(bootstrap, logical), key=lambda r: (r[0], r[1])):
            envs.append({"topic": topics.topic(logical), "partition": part, "offset": off, "ts": ts,
                         "key": None if key is None else key.decode(),
                         "payload": None if value is None else value.decode()})
    return envs


def replay_outputs(envs: list[dict], policy, signer) -> dict[str, list[tuple[bytes, bytes]]]:
    from gatewatch.streams.app.replay import Replayer, envelope_from_dict, sources_of
    envs = [envelope_from_dict(e) for e in envs]
    rp = Replayer(policy, signer, flush_every=97, sources=sources_of(envs))
    outs = []
    for env in envs:
        outs.extend(rp.feed(env))
    outs.extend(rp.finish())
    by_topic: dict[str, list] = {}
    for topic, k, v in outs:
        by_topic.setdefault(topic, []).append((k, v))
    return by_topic


def streamed(bootstrap: str, logical: str) -> list[tuple[bytes, bytes]]:
    return [(k, v) for _p, _o, k, v, _ts in read_topic(bootstrap, logical)]


def run_until_idle(workers: list, timeout_s: float = 120.0) -> None:
    """Run in-process Workers (upstream first) side by side until each has exited idle (caught up).
    A worker that idled out while a worker upstream of it was still running is run again, as the
    supervisor does: it was caught up with an input that was still growing (on a loaded host decide
    left before signals had published anything, and the run decided nothing)."""
    import threading
    deadline = time.monotonic() + timeout_s
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    ended: list[float | None] = [None] * len(workers)
    while time.monotonic() < deadline:
        for i, t in enumerate(threads):
            if ended[i] is None and not t.is_alive():
                ended[i] = time.monotonic()
        if any(e is None for e in ended):
            time.sleep(0.1)
            continue
        early = [i for i in range(1, len(workers)) if ended[i] <= max(ended[:i])]
        if not early:
            return
        for i in early:
            ended[i] = None
            threads[i] = threading.Thread(target=workers[i].run, daemon=True)
            threads[i].start()
    raise AssertionError("a worker did not drain within the timeout")
