"""A WormSink run on fake messages, no broker: its batch function (WormSink.process) as the worker
calls it, with the DLQ reasons collected."""
from __future__ import annotations

import orjson
import pytest

from gatewatch.sinks.worm.sink import SinkConfig, WormSink
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.keys import init_keys


class Msg:
    def __init__(self, kind: str, value, offset: int):
        self._t, self._o = topics.topic(kind), offset
        self._v = value if isinstance(value, bytes) else orjson.dumps(value)

    def topic(self):
        return self._t

    def partition(self):
        return 0

    def offset(self):
        return self._o

    def value(self):
        return self._v


class FakeWorker:
    def __init__(self):
        self.dlqs: list[tuple[str, str]] = []

    def dlq(self, topic, partition, offset, reason, value, detail=""):
        self.dlqs.append((topic, reason))


@pytest.fixture
def sink(tmp_path, monkeypatch):
    """A sink over a fresh store and fresh keys (sink.keys: their directory)."""
    monkeypatch.delenv("GATEWATCH_TOPIC_PREFIX", raising=False)
    keys = str(tmp_path / "keys")
    init_keys(keys)
    s = WormSink(SinkConfig(db=str(tmp_path / "w.db"), keys_dir=keys))
    s.worker, s.keys = FakeWorker(), keys
    yield s
    s.store.close()


def feed(sink, *items) -> list[str]:
    """Process (kind, value) pairs as one batch; the DLQ reasons, in order."""
    sink.worker.dlqs.clear()
    sink.process(sink.worker, [Msg(k, v, i) for i, (k, v) in enumerate(items)])
    return [r for _, r in sink.worker.dlqs]
