"""Decide stage: gw.signals -> gw.actions. The policy engine and gate (gatewatch.processors.policy) per scope.

The running stage re-reads the policy directory when its files change; a policy that does not
load is reported and the last good one stays in force.
"""
from __future__ import annotations

import logging
from pathlib import Path

import orjson
from prometheus_client import Counter, Gauge

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy.engine import permit_signer
from gatewatch.processors.policy.overlays import PolicySet
from gatewatch.processors.policy.scoped import ScopedEngine
from gatewatch.processors.signal_merge import BatchAssembler
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import PolicyWatch
from gatewatch.streams.runtime.snapshots import SnapshotStage

ACTIONS = Counter("gatewatch_decide_actions_total", "Actions published", ["kind", "action"])
POLICY_ERRORS = Counter("gatewatch_decide_policy_reload_errors_total", "Policy reloads refused")
POLICY_INFO = Gauge("gatewatch_decide_policy_info", "Policy in force", ["hash"])
GATE_RECORDS = Counter("gatewatch_decide_gate_records_total", "Gate records published to gw.gates", ["verdict"])
ATTESTATIONS = Counter("gatewatch_decide_attestations_total",
                       "Attestation records published (pre/post state hashes of batches that acted)")
BAD_SIGNALS = Counter("gatewatch_decide_bad_signals_total", "Unreadable signal records skipped")
DROPPED_STEPS = Counter("gatewatch_decide_dropped_steps_total",
                        "Steps that could no longer be decided (a domain never delivered them): evaluated as missing")

LOG = logging.getLogger("gatewatch.decide")


class DecisionState:
    """What one gw.signals partition needs: batch assembly and the engine (serializable)."""

    def __init__(self, engine: ScopedEngine, assembler: BatchAssembler | None = None):
        self.engine, self.assembler = engine, assembler or BatchAssembler()

    def on_record(self, rec: dict) -> tuple[list[dict], list[dict], list[dict]]:
        """(actions, gate records, attestations) that one gw.signals record completes."""
        actions = []
        for batch in self.assembler.add(rec):
            actions.extend(self.engine.on_batch(batch))
        for scope, ts in self.engine.take_dropped():
            DROPPED_STEPS.inc()
            LOG.warning("step dropped undecided: a domain never delivered it (evaluated as missing)",
                        extra={"fields": {"scope": scope, "step_ms": ts}})
        return actions, self.engine.take_gate_records(), self.engine.take_attestations()


def decision_outputs(actions: list[dict], gates: list[dict], actions_topic: str, gates_topic: str,
                     attestations: list[dict] = (), attestations_topic: str | None = None) -> list[tuple[str, bytes, bytes]]:
    """Attestations (key scope), actions (key scope) and gate records (key scope@release), in that
    order (shared with replay): the evidence for a decision is published with it, never after."""
    out = []
    for a in attestations:
        ATTESTATIONS.inc()
        out.append((attestations_topic, str(a["scope"]).encode(), canonical_json(a)))
    for a in actions:
        ACTIONS.labels(a.get("kind", ""), a.get("action", "")).inc()
        out.append((actions_topic, str(a["scope"]).encode(), canonical_json(a)))
    for g in gates:
        GATE_RECORDS.labels(g["verdict"]).inc()
        out.append((gates_topic, f"{g['scope']}@{g['release']}".encode(), canonical_json(g)))
    return out


class DecideStage(SnapshotStage):
    name = "decide"

    def __init__(self, policy_dir, signing_key, state_dir, loader, policy=None, **kw):
        super().__init__(topics.topic("signals"), state_dir, group="gatewatch-decide", **kw)
        self.policy_dir, self.loader = Path(policy_dir), loader
        self.signer = permit_signer(signing_key) if signing_key is not None else None
        self.policy = policy if policy is not None else loader(self.policy_dir)
        self._watch = PolicyWatch(self.policy_dir)
        self.actions_topic, self.gates_topic = topics.topic("actions"), topics.topic("gates")
        self.attestations_topic = topics.topic("attestations")
        POLICY_INFO.labels(_set_hash(self.policy)).set(1)

    def maybe_reload(self) -> None:
        if not self._watch.changed():  # overlays under services/ included
            return
        try:
            new = self.loader(self.policy_dir)
        except Exception as e:  # keep the last good policy in force
            POLICY_ERRORS.inc()
            LOG.error("policy reload refused, keeping %s: %s", self.policy.hash[:12], e)
            return
        if _set_hash(new) != _set_hash(self.policy):
            POLICY_INFO.labels(_set_hash(self.policy)).set(0)
            self.policy = new
            POLICY_INFO.labels(_set_hash(new)).set(1)
            for st in self.states.values():
                st.engine = ScopedEngine.from_state(new, st.engine.to_state(), self.signer)
            LOG.info("policy reloaded: %s", _set_hash(new))

    def new_state(self, worker, partition):
        return DecisionState(ScopedEngine(self.policy, self.signer))

    def load_state(self, worker, partition, doc):
        return DecisionState(ScopedEngine.from_state(self.policy, doc["engine"], self.signer),
                             BatchAssembler.from_state(doc["assembler"]))

    def dump_state(self, state):
        return {"engine": state.engine.to_state(), "assembler": state.assembler.to_state()}

    def handle(self, worker, state, msg):
        try:
            rec = orjson.loads(msg.value())
            actions, gates, attestations = state.on_record(rec)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            BAD_SIGNALS.inc()
            LOG.warning("skipping unreadable signal at %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), e)
            return []
        return decision_outputs(actions, gates, self.actions_topic, self.gates_topic, attestations,
                                self.attestations_topic)

    def checkpoint(self, worker):
        offsets = super().checkpoint(worker)
        self.maybe_reload()
        return offsets


def _set_hash(policy) -> str:
    """The base policy's hash, or one over it and its overlays (a reload of either counts)."""
    return PolicySet(policy, tuple(policy.overlays)).hash
