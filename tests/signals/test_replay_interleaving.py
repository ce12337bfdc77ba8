"""Replayer.feed_many batches each input partition's records even when partitions interleave, and
puts the DLQ lines, flushes and spans back in record order: the same lines as feed() record by
record, for any interleaving, chunking and flush_every (with spans, unknown topics and offsets
going back)."""
from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.streams.app.replay import Envelope, Replayer
from gatewatch.streams.cli.quality import generate_spans
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import load_policy_dir

from .mixed import mixed_feed

POLICY = load_policy_dir("configs/policies")
SPANS = generate_spans(60, seed=3, start="2025-10-01T00:00:00Z", invalid_rate=0.1)


def interleaved(seed: int, n: int) -> list[Envelope]:
    """The mixed stream spread over 3 partitions per topic, records of the partitions shuffled
    together (order within a partition kept), with spans, an unknown topic and a partition that
    restarts at offset 0."""
    rng = random.Random(seed)
    lanes: dict[tuple, list] = {}
    for topic, _p, _o, key, raw, kts in mixed_feed(seed, n).records:
        lanes.setdefault((topics.topic(topic), rng.randrange(3)), []).append((key, raw, kts))
    lanes[(topics.topic("spans"), 0)] = [(None, s, None) for s in SPANS[:rng.randrange(len(SPANS))]]
    lanes[("elsewhere.topic", 0)] = [(None, b"{}", None)] * 3
    envs_of = {}
    for (topic, part), recs in lanes.items():
        offsets = list(range(len(recs)))
        if topic == topics.topic("metrics") and part == 1 and len(recs) > 10:
            offsets = offsets[: len(recs) // 2] + list(range(len(recs) - len(recs) // 2))  # a second file
        envs_of[(topic, part)] = [
            Envelope(topic=topic, partition=part, offset=o, key=None if k is None else k.decode(),
                     ts=t, payload=None if raw is None else raw.decode("utf-8", "replace"))
            for o, (k, raw, t) in zip(offsets, recs)]
    order = [lane for lane, envs in envs_of.items() for _ in envs]
    rng.shuffle(order)
    if rng.random() < 0.3:  # runs of one partition, as fetches return them
        order = [lane for _i, lane in sorted(enumerate(order), key=lambda x: (x[0] // 500, x[1]))]
    pos = {lane: 0 for lane in envs_of}
    out = []
    for lane in order:
        out.append(envs_of[lane][pos[lane]])
        pos[lane] += 1
    return out


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1, 7, 97, 1000]), st.sampled_from([1, 13, 500, 4096]))
def test_feed_many_equals_feed_one_by_one(seed, flush_every, chunk):
    envs = interleaved(seed, 3000)
    one = Replayer(POLICY, flush_every=flush_every)
    want = [line for env in envs for line in one.feed(env)] + one.finish()
    many = Replayer(POLICY, flush_every=flush_every)
    got = [line for i in range(0, len(envs), chunk) for line in many.feed_many(envs[i:i + chunk])] + many.finish()
    assert got == want
    assert many.skipped == one.skipped


def test_two_topic_names_of_one_input_keep_record_order():
    """Two topic names that map to the same input (prefixed and another prefix): one aggregator,
    fed in record order, as feed() one by one (offsets of the second name run ahead, so which
    records are behind the partition's offset depends on the order)."""
    import orjson

    def rec(i, lat):
        return orjson.dumps({"service": "checkout", "status": 200, "latency_ms": lat,
                             "ts": f"2025-10-01T00:00:{i:02d}.000Z"}).decode()
    envs = []
    for i in range(5):
        envs.append(Envelope(topic=topics.topic("metrics"), partition=0, offset=i, key=None, ts=None,
                             payload=rec(i, 10.0 + i)))
        envs.append(Envelope(topic="mirror.metrics", partition=0, offset=3 + i, key=None, ts=None,
                             payload=rec(i, 20.0 + i)))
    for flush_every in (1, 3, 4, 1000):
        one = Replayer(POLICY, flush_every=flush_every)
        want = [line for env in envs for line in one.feed(env)]
        want_state = {k: a.to_state() for k, a in one.aggs.items()}
        want += one.finish()
        many = Replayer(POLICY, flush_every=flush_every)
        got = many.feed_many(envs)
        got_state = {k: a.to_state() for k, a in many.aggs.items()}
        got += many.finish()
        assert many.skipped == one.skipped
        assert got_state == want_state
        assert got == want
