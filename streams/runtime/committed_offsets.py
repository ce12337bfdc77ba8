"""Where a group member starts: its group's committed offsets, read outside the member's consumer."""
from __future__ import annotations

from gatewatch.streams.runtime.kafka import consumer as make_consumer


class CommittedOffsets:
    """A group's committed offsets, asked through a consumer of its own that never joins the group.
    Asked of the member's own consumer from inside its rebalance callback, the same offsets timed
    out on every call for minutes, while a second client got them at once (caught in the
    scale-out chaos test, tests/chaos/test_scale_out.py: 2 of 95 runs on a loaded host).
    Read as the member would: stable (KIP-447) under read_committed, waiting out open transactions."""

    def __init__(self, bootstrap: str, group: str):
        self.bootstrap, self.group = bootstrap, group
        self._reader = None

    def get(self, tps: list, timeout_s: float) -> list:
        if self._reader is None:
            self._reader = make_consumer(self.bootstrap, self.group, **{"isolation.level": "read_committed"})
        return self._reader.committed(tps, timeout=timeout_s)

    def serve(self) -> None:
        """Hand its queued log lines to the logger: with a `logger` configured, librdkafka queues them
        until a poll (60 in 3 s with the broker down, measured), and nothing else polls this client."""
        if self._reader is not None:
            self._reader.poll(0)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
