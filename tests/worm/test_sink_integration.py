"""Sink + witnesses + evidence through a real broker, in one process."""
from __future__ import annotations

import threading
import time
import urllib.request

import orjson
import pytest

from gatewatch.sinks.worm import checkpoint as cp
from gatewatch.sinks.worm import merkle
from gatewatch.sinks.worm.evidence import build_files, verify_bundle, write_bundle
from gatewatch.sinks.worm.sink import SinkConfig, WormSink
from gatewatch.sinks.worm.store import WormStore
from gatewatch.sinks.worm.witness import Witness
from gatewatch.streams.runtime import kafka, topics
from gatewatch.streams.runtime.keys import load_signing_key, public_keys
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.ops_http import OpsServer
from gatewatch.streams.runtime.worker import Worker
from tests.worm import factory

pytestmark = pytest.mark.integration


def _produce(bs, items):
    p = kafka.producer(bs)
    for kind, value, key in items:
        p.produce(topics.topic(kind), key=key, value=value)
    p.flush(10)


def _drain(bs, kind, group, want, timeout=20):
    c = kafka.consumer(bs, group)
    c.subscribe([topics.topic(kind)])
    out, deadline = [], time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        out += [m for m in c.consume(100, 0.2) if not m.error()]
    c.close()
    return out


def _wait(pred, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return False


def test_sink_witnesses_evidence(kafka_bootstrap, topic_prefix, tmp_path):
    keys = factory.keys(tmp_path)
    decider = load_signing_key("decider", keys)
    recs = factory.records(decider, 20, load_signing_key("executor", keys))
    items = [(k, orjson.dumps(v), b"k") for k, v in recs]
    items += [(k, orjson.dumps(v), b"k") for k, v in recs[:5]]                       # re-deliveries
    items += [("actions", b"{not json", b"k"), ("receipts", b'{"type":"INTENT"}', b"k"),
              ("trajectories", orjson.dumps({"type": "trajectory_edge", "id": "e1"}), b"k"),
              ("checkpoints", b"junk", b"k"), ("checkpoints", b'{"kind":"cosigned","note":"x"}', b"k")]
    _produce(kafka_bootstrap, items)
    db = str(tmp_path / "w.db")
    sink = WormSink(SinkConfig(db=db, batch_size=7, checkpoint_every=30, checkpoint_interval_s=0.5, keys_dir=keys))
    stop = StopFlag(install=False)
    workers = [Worker(sink, kafka_bootstrap, assignment="group", stop=stop)]
    workers += [Worker(Witness(n, str(tmp_path / f"{n}.state"), keys_dir=keys), kafka_bootstrap, assignment="group",
                       stop=stop) for n in ("witness-1", "witness-2")]
    ops = OpsServer(0, ready=lambda: workers[0].ready).start()
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    policy = cp.default_policy(keys_path=keys)
    want = len(recs) - sum(1 for k, v in recs if k == "trajectories" and v["type"] != "diamond_candidate")

    def quorum_at_full_size():
        with WormStore(db) as s:
            from gatewatch.sinks.worm.evidence import latest_quorum_note
            n = latest_quorum_note(s, policy)
            return n is not None and cp.parse_checkpoint(n.body).size == want
    try:
        assert _wait(quorum_at_full_size), "no quorum checkpoint over the whole log"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{ops.port}/metrics").read().decode()
        assert "gatewatch_worm_entries_appended_total" in metrics and "gatewatch_worm_tree_size" in metrics
        assert "gatewatch_worm_checkpoint_age_seconds" in metrics and "gatewatch_worm_append_seconds_bucket" in metrics
    finally:
        stop.stop()
        for t in threads:
            t.join(20)
        ops.stop()

    with WormStore(db) as s:
        leaves = [e.leaf for e in s.entries()]
        assert s.size == want and len({e.id for e in s.entries()}) == want
        assert s.root() == merkle.root(leaves)
        logs = s.notes("log")
        assert len(logs) >= 2 and all(n["proof"] is not None for n in logs[1:])
        files = build_files(s, policy, public_keys(keys), log_key=load_signing_key("log", keys))
    out = str(tmp_path / "bundle.tar.gz")
    write_bundle(files, out)
    rep = verify_bundle(out)
    assert rep.size == want and rep.actions == 20 and set(rep.witnesses) == {"witness-1", "witness-2"}

    dlq = _drain(kafka_bootstrap, "dlq", topic_prefix + "dlq-reader", 4)
    reasons = sorted(orjson.loads(m.value())["reason"].split(":")[0] for m in dlq)
    assert reasons == ["bad_cosigned_note", "missing_id", "not_json", "not_json"]
    assert {"source_topic", "partition", "offset", "reason", "payload"} <= set(orjson.loads(dlq[0].value()))
    cps = _drain(kafka_bootstrap, "checkpoints", topic_prefix + "cp-reader", 6)
    cps = [m for m in cps if m.value().startswith(b"{") and b"witness" in m.value() or b'"proofs"' in m.value()]
    kinds = {orjson.loads(m.value())["kind"] for m in cps}
    assert kinds == {"log", "cosigned"}
    from fastavro.validation import validate

    import gatewatch.schemas
    for m in cps:  # the wire contract in schemas/checkpoint.avsc
        doc = orjson.loads(m.value())
        doc.setdefault("proofs", {})
        doc.setdefault("witness", None)
        assert validate(doc, gatewatch.schemas.avro_schema("checkpoint"))
