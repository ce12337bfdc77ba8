"""Signal stage: gw.partials -> gw.signals. Event-time windows per source partition (gatewatch.processors.signals)."""
from __future__ import annotations

import orjson
from prometheus_client import Counter

from gatewatch.processors.signal_merge import wire_records
from gatewatch.processors.signals import PartitionSignals, batch_domain
from gatewatch.processors.windows import SignalConfig
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.stage import SnapshotStage

SIGNALS = Counter("gatewatch_signals_emitted_total", "Signals published", ["domain"])
PARTIALS_IN = Counter("gatewatch_signals_partials_total", "Partials applied (re-deliveries included)")
BAD_PARTIALS = Counter("gatewatch_signals_bad_partials_total", "Unreadable partials skipped")


def signal_outputs(ps: PartitionSignals, partial: dict, signals_topic: str) -> list[tuple[str, bytes, bytes]]:
    """Apply a partial and turn the emitted batches into gw.signals records (shared with replay)."""
    source = f"{partial['topic']}:{partial['partition']}"
    out = []
    for batch in ps.apply(partial):
        if not batch:
            continue
        domain = batch_domain(batch)  # named gauges are outside the catalogue; the batch knows its domain
        SIGNALS.labels(domain).inc(len(batch))
        out.extend((signals_topic, k, v) for k, v in wire_records(batch, domain, source))
    return out


class SignalStage(SnapshotStage):
    name = "signals"

    def __init__(self, bootstrap: str, config: SignalConfig, state_dir, **kw):
        super().__init__(bootstrap, topics.topic("partials"), state_dir, group="gatewatch-signals", **kw)
        self.config = config
        self.signals_topic = topics.topic("signals")

    def new_state(self, partition):
        return {}

    def load_state(self, partition, doc):
        return {src: PartitionSignals.from_state(s, self.config) for src, s in doc.items()}

    def dump_state(self, state):
        return {src: ps.to_state() for src, ps in state.items()}

    def handle(self, state, msg):
        try:
            partial = orjson.loads(msg.value())
            source = f"{partial['topic']}:{partial['partition']}"
        except (orjson.JSONDecodeError, KeyError, TypeError):
            BAD_PARTIALS.inc()
            return []
        PARTIALS_IN.inc()
        ps = state.get(source)
        if ps is None:
            ps = state[source] = PartitionSignals(partial["topic"], partial["partition"], self.config)
        return signal_outputs(ps, partial, self.signals_topic)
