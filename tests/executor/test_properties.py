"""Invariants under random inputs: altered records never run; offsets never pass unsettled work; lanes keep order."""
import random
import threading
import time

from confluent_kafka import TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from gatewatch.processors.canonical import canonical_json
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import DryRunBackend
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal
from gatewatch.sinks.executor.worker import OffsetTracker, ScopeLanes
from tests.executor.helpers import action_record, permitted, trusted

DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)
FIELDS = ["id", "kind", "action", "scope", "rule", "severity", "signals", "policy_hash", "ts"]
json_values = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                           max_leaves=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS + ["extra"]), value=json_values, n=st.integers(0, 10**6))
def test_any_altered_field_is_refused_and_never_runs(tmp_path_factory, field, value, n):
    rec = permitted(DECIDER, action_record(n))
    if rec.get(field) == value:
        return
    altered = {**rec, field: value}
    backend = DryRunBackend()
    led = Ledger(tmp_path_factory.mktemp("l") / "l.db", lambda b: seal(EXECUTOR, b))
    h = core.ActionHandler(led, {"dry-run": backend}, lambda r: "dry-run", trusted(DECIDER))
    assert h.handle(canonical_json(altered)) == core.REFUSED
    assert not backend.done
    led.close()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.randoms(use_true_random=False))
def test_commit_point_never_passes_an_unsettled_offset(partitions, rnd):
    tracker, open_, nxt = OffsetTracker(), [], {}
    for p in partitions:
        off = nxt.get(p, 0)
        nxt[p] = off + 1
        tracker.start(("t", p), off)
        open_.append((p, off))
        while open_ and rnd.random() < 0.5:
            p2, o2 = open_.pop(rnd.randrange(len(open_)))
            tracker.settle(("t", p2), o2)
        for tp in tracker.points():
            unsettled = [o for q, o in open_ if q == tp.partition]
            assert tp.offset <= min(unsettled, default=nxt[tp.partition])
    for p, o in open_:
        tracker.settle(("t", p), o)
    # all settled: every partition's point is its next offset
    assert {tp.partition: tp.offset for tp in tracker.points()} == nxt

def test_a_resumed_point_holds_until_records_move_it_and_never_goes_back():
    tracker = OffsetTracker()
    tracker.resume(("t", 0), 10)  # the committed offset read at start
    assert [(tp.partition, tp.offset) for tp in tracker.points()] == [(0, 10)]
    assert tracker.start(("t", 0), 10)
    assert tracker.points()[0].offset == 10
    tracker.settle(("t", 0), 10)
    assert tracker.points()[0].offset == 11
    assert not tracker.start(("t", 0), 3)  # below a point given: a reset past the committed offset
    assert tracker.points()[0].offset == 11
    tracker.forget([TopicPartition("t", 0)])
    assert tracker.points() == []


def test_lanes_keep_order_within_a_lane_and_run_lanes_in_parallel():
    lanes, seen, lock = ScopeLanes(4), {}, threading.Lock()
    rng = random.Random(7)
    expected = {}
    for i in range(400):
        lane = f"s{rng.randrange(10)}".encode()
        expected.setdefault(lane, []).append(i)

        def work(lane=lane, i=i):
            time.sleep(rng.random() / 5000)
            with lock:
                seen.setdefault(lane, []).append(i)
        lanes.submit(lane, work)
    assert lanes.wait_idle(30)
    lanes.shutdown()
    assert seen == expected and lanes.failure is None


class _FakeProducer:
    """Delivers on poll(); `fail` seqs are reported as failed deliveries."""

    def __init__(self, fail=()):
        self.sent, self._queued, self.fail = [], [], set(fail)

    def produce(self, topic, key, value, on_delivery):
        self._queued.append((key, value, on_delivery))

    def poll(self, timeout=0):
        import orjson
        for key, value, cb in self._queued:
            seq = orjson.loads(value)["seq"]
            if seq in self.fail:
                cb("broker down", None)
            else:
                self.sent.append(seq)
                cb(None, None)
        self._queued = []

    def flush(self, timeout=0):
        self.poll()


def test_publisher_republishes_what_a_crash_left_undelivered(tmp_path):
    from gatewatch.sinks.executor.metrics import ExecutorMetrics
    from gatewatch.sinks.executor.worker import ReceiptPublisher
    led = Ledger(tmp_path / "l.db", lambda b: seal(EXECUTOR, b))
    h = core.ActionHandler(led, {"dry-run": DryRunBackend()}, lambda r: "dry-run", trusted(DECIDER))
    for i in range(3):
        h.handle(canonical_json(permitted(DECIDER, action_record(i))))
    first = _FakeProducer(fail={4})
    ReceiptPublisher(led, first, "t", ExecutorMetrics()).pump()
    assert first.sent == [1, 2, 3, 5, 6] and led.published_seq() == 3  # watermark stops at the hole
    second = _FakeProducer()                                            # "after the restart"
    pub = ReceiptPublisher(led, second, "t", ExecutorMetrics())
    pub.pump()
    assert second.sent == [4, 5, 6] and led.published_seq() == 6 and pub.all_delivered()


@settings(max_examples=100, deadline=None)
@given(n=st.integers(2, 12), pick=st.integers(0, 10**6), how=st.sampled_from(["drop", "alter", "resign", "swap"]))
def test_receipt_chain_detects_gaps_and_tampering(n, pick, how):
    from gatewatch.sinks.executor.receipts import verify_chain
    chain, prev = [], None
    for seq in range(1, n + 1):
        r = seal(EXECUTOR, {"type": "RESULT", "action_id": f"a{seq}", "status": "success", "seq": seq, "prev": prev})
        chain.append(r)
        prev = r["id"]
    keys = trusted(EXECUTOR)
    assert verify_chain(list(reversed(chain)), keys) is None
    i = pick % (n - 1)  # never the last one: dropping the tail is indistinguishable from a shorter chain
    bad = [dict(r) for r in chain]
    if how == "drop":
        del bad[i]
    elif how == "alter":
        bad[i]["status"] = "failure"
    elif how == "resign":  # a consistent re-seal by another key
        body = {k: v for k, v in bad[i].items() if k not in ("id", "sig", "executor")}
        bad[i] = seal(SigningKey(b"z" * 32), body)
    else:
        bad[i]["seq"], bad[i + 1]["seq"] = bad[i + 1]["seq"], bad[i]["seq"]
    assert verify_chain(bad, keys) is not None
