"""/metrics of `gatewatch serve`: the gate state and verdict per scope+release, computed from the
store at each scrape (so a tombstoned or superseded release disappears with its series).

  gatewatch_gate_state{scope,release,state}      1 for the gate's current state, 0 for the others
  gatewatch_gate_verdict{scope,release,verdict}  1 for pass|fail|pending, 0 for the other two
  gatewatch_gate_missing_signals{scope,release}  how many required signals are missing or thin
  gatewatch_serve_ready                          1 once caught up with gw.gates
  gatewatch_serve_gates                          gate records held (all releases)

Bounded to live releases: the latest LIVE_RELEASES releases of each scope.
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from gatewatch.processors.policy.gate import STATES

LIVE_RELEASES = 3
VERDICTS = ("pass", "fail", "pending")


class GateCollector:
    def __init__(self, store, ready):
        self.store, self.ready = store, ready

    def collect(self):
        state = GaugeMetricFamily("gatewatch_gate_state", "Gate state per scope and release (1 = current)",
                                  labels=["scope", "release", "state"])
        verdict = GaugeMetricFamily("gatewatch_gate_verdict", "Gate verdict per scope and release (1 = current)",
                                    labels=["scope", "release", "verdict"])
        missing = GaugeMetricFamily("gatewatch_gate_missing_signals",
                                    "Required signals missing or too thin for the gate", labels=["scope", "release"])
        for g in self.store.live(LIVE_RELEASES):
            s, r = g["scope"], g["release"]
            for st in dict.fromkeys((*STATES, g.get("state"))):
                if st is not None:
                    state.add_metric([s, r, st], 1.0 if st == g.get("state") else 0.0)
            for v in VERDICTS:
                verdict.add_metric([s, r, v], 1.0 if v == g["verdict"] else 0.0)
            missing.add_metric([s, r], float(len(g.get("missing") or [])))
        yield state
        yield verdict
        yield missing
        yield GaugeMetricFamily("gatewatch_serve_ready", "1 once serve caught up with the gates topic",
                                value=1.0 if self.ready() else 0.0)
        yield GaugeMetricFamily("gatewatch_serve_gates", "Gate records held (every release)",
                                value=float(len(self.store.gates())))


def registry(store, ready) -> CollectorRegistry:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(GateCollector(store, ready))
    return reg
