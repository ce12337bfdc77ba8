"""Signal stage (interface first; implementation follows)."""
from __future__ import annotations

from processors.windows import SignalConfig  # noqa: F401  (re-exported: processors.signals.SignalConfig)


class PartitionSignals:
    def __init__(self, topic: str, partition: int, config: SignalConfig | None = None):
        self.topic, self.partition, self.config = topic, int(partition), config or SignalConfig()

    def apply(self, partial: dict) -> list[list[dict]]:
        raise NotImplementedError

    def to_state(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict, config: SignalConfig | None = None) -> "PartitionSignals":
        raise NotImplementedError


def run_pipeline(records, config: SignalConfig, flush_every: int = 1000):
    """(topic, partition, offset, key, value, kafka_ts_ms) records -> (signal_batches, rejections)."""
    raise NotImplementedError
