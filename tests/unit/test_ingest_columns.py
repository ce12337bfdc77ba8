"""The ingest stage's columns of a consumed batch, built in C: the same runs and timestamps as
the per-message loops they replace (partition runs; message_ts_ms of each message)."""
from hypothesis import given
from hypothesis import strategies as st

from gatewatch.streams.runtime.consuming import message_ts_ms
from gatewatch.streams.stages.ingest import kafka_timestamps, partition_runs


class Msg:
    """What the stage reads of a confluent_kafka.Message."""

    def __init__(self, topic, partition, kind, ts):
        self._t, self._p, self._ts = topic, partition, (kind, ts)

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def timestamp(self):
        return self._ts


messages = st.lists(st.builds(Msg, st.sampled_from(["gw.metrics", "gw.rum"]), st.integers(0, 2),
                              st.sampled_from([0, 1, 2]), st.sampled_from([-1, 0, 1, 1_800_000_000_000])),
                    max_size=40)


def runs_one_by_one(msgs):
    runs, key = [], None
    for m in msgs:
        k = (m.topic(), m.partition())
        if k != key:
            key = k
            runs.append((k, []))
        runs[-1][1].append(m)
    return runs


@given(messages)
def test_partition_runs_cut_where_topic_or_partition_changes(msgs):
    assert partition_runs(msgs) == runs_one_by_one(msgs)


@given(messages.filter(bool))
def test_kafka_timestamps_are_message_ts_ms(msgs):
    assert kafka_timestamps(msgs) == [message_ts_ms(m) for m in msgs]
    stamped = [Msg(m.topic(), m.partition(), 1, 1_800_000_000_000 + i) for i, m in enumerate(msgs)]
    assert kafka_timestamps(stamped) == [message_ts_ms(m) for m in stamped]
