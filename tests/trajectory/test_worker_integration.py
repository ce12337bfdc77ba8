"""Streaming through the fixture broker == `quality simulate`, also across a SIGKILL + restart."""
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition
from prometheus_client import REGISTRY

from gatewatch.streams.cli.quality import generate_spans, load_policy, simulate_lines
from gatewatch.streams.runtime import kafka, topics
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.worker import Worker
from gatewatch.streams.stages.trajectories import TrajectoryStage

pytestmark = pytest.mark.integration
METRICS = ("gatewatch_diamond_candidates_total", "gatewatch_trajectory_quality_score_count")


def _key(line: bytes) -> bytes:
    try:
        return orjson.loads(line)["tenant"].encode()
    except Exception:  # a malformed line: any key, it is rejected anyway
        return b"?"


def publish_spans(bootstrap, lines):
    p = kafka.producer(bootstrap)
    for line in lines:
        p.produce(topics.topic("spans"), key=_key(line), value=line)
        p.poll(0)
    assert p.flush(30) == 0


def read_all(bootstrap, name, want_ids=None, want_count=None, timeout_s=60.0):
    """Every record of a topic (all partitions from the beginning) until the wanted ids/count are seen."""
    c = kafka.consumer(bootstrap, f"reader-{uuid.uuid4().hex[:8]}")
    t = topics.topic(name)
    parts = kafka.admin(bootstrap).list_topics(t, timeout=10).topics[t].partitions
    c.assign([TopicPartition(t, p, OFFSET_BEGINNING) for p in parts])
    out, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for m in c.consume(1000, 0.5):
                if not m.error():
                    out.append((m.key(), orjson.loads(m.value())))
            if want_ids is not None and want_ids <= {v["id"] for _, v in out}:
                break
            if want_count is not None and len(out) >= want_count:
                break
    finally:
        c.close()
    return out


def expected(lines, signals=None):
    events, rejects = [], []
    simulate_lines(lines, load_policy(None), events.append, lambda line, reason: rejects.append(reason),
                   signals.extend if signals is not None else None)
    return events, rejects


def per_tenant_first_seen(records):
    seen, order = set(), {}
    for _, ev in records:
        if ev["id"] not in seen:
            seen.add(ev["id"])
            order.setdefault(ev["tenant"], []).append(ev["id"])
    return order


def test_streaming_equals_quality_simulate(kafka_bootstrap, topic_prefix, tmp_path):
    lines = generate_spans(3000, seed=5, invalid_rate=0.01)
    want_signals = []
    want, rejects = expected(lines, want_signals)
    assert want and rejects
    publish_spans(kafka_bootstrap, lines)
    before = {n: REGISTRY.get_sample_value(n) or 0 for n in METRICS}
    worker = Worker(TrajectoryStage(load_policy(None), tmp_path / "state", group=f"traj-{topic_prefix}",
                                    batch_size=500), kafka_bootstrap, assignment="group", exit_when_idle_s=3,
                    stop=StopFlag(install=False))
    th = threading.Thread(target=worker.run, daemon=True)
    th.start()
    got = read_all(kafka_bootstrap, "trajectories", want_ids={e["id"] for e in want})
    th.join(30)
    assert not th.is_alive()
    # same events, byte for byte, in the same order per tenant; key = tenant
    assert all(k == ev["tenant"].encode() for k, ev in got)
    assert sorted(orjson.dumps(ev) for _, ev in got) == sorted(orjson.dumps(ev) for ev in want)
    exp_order = {}
    for ev in want:
        exp_order.setdefault(ev["tenant"], []).append(ev["id"])
    assert per_tenant_first_seen(got) == exp_order
    grew = {n: (REGISTRY.get_sample_value(n) or 0) - before[n] for n in METRICS}
    assert grew["gatewatch_diamond_candidates_total"] == sum(e["type"] == "diamond_candidate" for e in want)
    assert grew["gatewatch_trajectory_quality_score_count"] == sum(e["type"] == "trajectory_quality" for e in want)
    dlq = read_all(kafka_bootstrap, "dlq", want_count=len(rejects))
    assert sorted(v["reason"] for _, v in dlq) == sorted(rejects)
    assert all(k == topics.topic("spans").encode() and v["source_topic"] == topics.topic("spans") for k, v in dlq)
    sigs = read_all(kafka_bootstrap, "signals", want_count=len(want_signals))
    assert want_signals and all(v["domain"] == "trajectories" and v["batch_n"] == 3 and k == v["scope"].encode()
                                for k, v in sigs)
    strip = ("domain", "source", "batch_n")
    assert sorted(orjson.dumps({k: x for k, x in v.items() if k not in strip}, option=orjson.OPT_SORT_KEYS)
                  for _, v in sigs) == sorted(orjson.dumps(x, option=orjson.OPT_SORT_KEYS) for x in want_signals)


def _worker_cmd(state, extra=()):
    # one group per test (the prefix is fresh): a killed member must not hold another test's group
    return [sys.executable, "-m", "gatewatch", "trajectories", "run", "--state", str(state),
            "--group", f"traj-{os.environ['GATEWATCH_TOPIC_PREFIX']}", "--batch-size", "100", *extra]


@pytest.mark.chaos
def test_sigkill_and_restart_give_the_same_set_of_events(kafka_bootstrap, topic_prefix, tmp_path):
    lines = generate_spans(6000, seed=9, invalid_rate=0.005)
    want, _ = expected(lines)
    publish_spans(kafka_bootstrap, lines)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix)
    state = tmp_path / "state"
    first = subprocess.Popen(_worker_cmd(state, ("--snapshot-interval", "0")), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not list(state.glob("*.json")) and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.05)
        assert list(state.glob("*.json"))
        time.sleep(0.2)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    applied = sum(orjson.loads(f.read_bytes())["next_offset"] for f in state.glob("*.json"))
    assert 0 < applied < len(lines)   # killed mid-run (partition offsets start at 0)
    second = subprocess.run(_worker_cmd(state, ("--exit-when-idle", "3")), env=env, capture_output=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr[-2000:]
    got = read_all(kafka_bootstrap, "trajectories", want_ids={e["id"] for e in want})
    print(f"kill after {applied} spans; {len(got)} records for {len(want)} distinct events")
    assert {ev["id"] for _, ev in got} == {e["id"] for e in want}
    by_id = {e["id"]: orjson.dumps(e) for e in want}
    assert all(orjson.dumps(ev) == by_id[ev["id"]] for _, ev in got)   # re-emitted ones are identical
    exp_order = {}
    for ev in want:
        exp_order.setdefault(ev["tenant"], []).append(ev["id"])
    assert per_tenant_first_seen(got) == exp_order


def test_sigterm_stops_gracefully_and_a_foreign_snapshot_is_refused(kafka_bootstrap, topic_prefix, tmp_path):
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix)
    state = tmp_path / "state"
    proc = subprocess.Popen(_worker_cmd(state, ("--metrics-port", "0")), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    head = b""
    while b'"msg":"trajectories started"' not in head:  # running, then SIGTERM
        line = proc.stderr.readline()
        assert line, f"worker exited before it started: {head[-2000:]!r}"
        head += line
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    err = head + err
    assert proc.returncode == 0, err[-2000:]
    assert b'"msg":"trajectories stopped"' in err
    spans = topics.topic("spans")
    for p in range(3):   # whichever partitions it gets, each snapshot claims another topic
        (state / f"{spans}.{p}.json").write_bytes(orjson.dumps({"topic": "elsewhere.spans", "partition": p,
                                                                "next_offset": 0, "cycle": {}}))
    # a fresh group: the first member left mid-join, which tansu may still be waiting out
    r = subprocess.run(_worker_cmd(state, ("--group", f"traj2-{topic_prefix}")), env=env, capture_output=True,
                       timeout=60)
    assert r.returncode == 1 and b"belongs to 'elsewhere.spans'" in r.stderr.splitlines()[-1], r.stderr[-2000:]


@pytest.mark.chaos
def test_a_second_worker_joining_mid_run_takes_over_partitions_without_changing_events(
        kafka_bootstrap, topic_prefix, tmp_path):
    lines = generate_spans(6000, seed=11)
    want, _ = expected(lines)
    publish_spans(kafka_bootstrap, lines)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix)
    state = tmp_path / "state"    # shared: snapshots follow the partitions
    args = ("--snapshot-interval", "0", "--exit-when-idle", "4")
    a = subprocess.Popen(_worker_cmd(state, args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(state.glob("*.json")) and time.monotonic() < deadline and a.poll() is None:
        time.sleep(0.05)
    b = subprocess.Popen(_worker_cmd(state, args), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err_a = a.communicate(timeout=120)
    _, err_b = b.communicate(timeout=120)
    assert a.returncode == 0 and b.returncode == 0, (err_a[-1500:], err_b[-1500:])
    assert b'"partitions revoked"' in err_a and b'"partitions assigned"' in err_b
    got = read_all(kafka_bootstrap, "trajectories", want_ids={e["id"] for e in want})
    by_id = {e["id"]: orjson.dumps(e) for e in want}
    assert {ev["id"] for _, ev in got} == set(by_id)
    assert all(orjson.dumps(ev) == by_id[ev["id"]] for _, ev in got)
    exp_order = {}
    for ev in want:
        exp_order.setdefault(ev["tenant"], []).append(ev["id"])
    assert per_tenant_first_seen(got) == exp_order
    applied = sum(orjson.loads(f.read_bytes())["next_offset"] for f in state.glob("*.json"))
    assert applied == len(lines)
