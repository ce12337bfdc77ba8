"""Decide stage: gw.signals -> gw.actions. The policy engine and gate (gatewatch.processors.policy) per scope.

The running stage re-reads the policy directory when its files change; a policy that does not
load is reported and the last good one stays in force.

With a shadow policy (a candidate, `--shadow-policy DIR`) a second engine runs beside the active one
on the same batches, with its own state in the same snapshot. Its decisions and gate records go to
gw.shadow only: unsigned, marked `shadow: true` (processors.shadow), never to gw.actions or gw.gates.
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
from gatewatch.processors.shadow import same_step, shadow_decision, shadow_gate
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
SHADOW_DECISIONS = Counter("gatewatch_decide_shadow_decisions_total",
                           "Candidate (shadow) policy decisions published to gw.shadow", ["same_step"])
SHADOW_REFUSED = Counter("gatewatch_decide_shadow_refused_batches_total",
                         "Batches the shadow policy refused (the active policy decided them)")
DROPPED_STEPS = Counter("gatewatch_decide_dropped_steps_total",
                        "Steps that could no longer be decided (a domain never delivered them): evaluated as missing")

LOG = logging.getLogger("gatewatch.decide")


class DecisionState:
    """What one gw.signals partition needs: batch assembly and the engine (serializable), and the
    shadow engine of a candidate policy when one runs beside it (never given a signer)."""

    def __init__(self, engine: ScopedEngine, assembler: BatchAssembler | None = None,
                 shadow: ScopedEngine | None = None):
        self.engine, self.assembler, self.shadow = engine, assembler or BatchAssembler(), shadow
        self._shadow_out: tuple[list[dict], list[dict]] = ([], [])

    def on_record(self, rec: dict) -> tuple[list[dict], list[dict], list[dict]]:
        """(actions, gate records, attestations) that one gw.signals record completes; the shadow's
        wait in take_shadow."""
        ready = self.assembler.add(rec)
        if not ready:  # most records only join an open batch: the engines ran nothing, their queues
            return [], [], []  # are as the last call (or drain) left them: empty
        actions, batches = [], []
        for batch in ready:
            try:  # each batch on its own: one the engine refuses must not lose the others' actions
                actions.extend(self.engine.on_batch(batch))
            except (KeyError, TypeError, ValueError) as e:  # refused at validation, before any state changed
                BAD_SIGNALS.inc()
                LOG.warning("skipping an unreadable signal batch: %s", e)
                continue
            batches.append(batch)  # the shadow sees what the active engine decided
        for scope, ts in self.engine.take_dropped():
            DROPPED_STEPS.inc()
            LOG.warning("step dropped undecided: a domain never delivered it (evaluated as missing)",
                        extra={"fields": {"scope": scope, "step_ms": ts}})
        gates = self.engine.take_gate_records()
        if self.shadow is not None:
            self._run_shadow(batches)
        return actions, gates, self.engine.take_attestations()

    def _run_shadow(self, batches: list[list[dict]]) -> None:
        decisions, gates = self._shadow_out
        for batch in batches:
            try:
                decided = self.shadow.on_batch(batch)
            except (KeyError, TypeError, ValueError) as e:  # the candidate's problem, never the active's
                SHADOW_REFUSED.inc()
                LOG.warning("shadow policy refused a batch: %s", e)
                continue
            for a in decided:  # after the active engine saw the same batch: its decisions are in
                same = same_step(self.engine.decided(a["scope"], a.get("release") or ""), a)
                SHADOW_DECISIONS.labels(str(same).lower()).inc()
                decisions.append(shadow_decision(a, same))
        self.shadow.take_dropped()  # the active engine reports dropped steps; the same batches drop the same
        self.shadow.take_attestations()  # only the active policy's decisions are attested
        gates.extend(shadow_gate(g) for g in self.shadow.take_gate_records())

    def drain(self) -> None:
        """Drop whatever the engines queued (attestations, gate records, dropped steps, shadow output)."""
        for eng in (self.engine, self.shadow):
            if eng is not None:
                eng.take_attestations(), eng.take_gate_records(), eng.take_dropped()
        self.take_shadow()

    def take_shadow(self) -> tuple[list[dict], list[dict]]:
        """(shadow decisions, shadow gate records) since the last call."""
        out, self._shadow_out = self._shadow_out, ([], [])
        return out


def decision_outputs(actions: list[dict], gates: list[dict], actions_topic: str, gates_topic: str,
                     attestations: list[dict] = (), attestations_topic: str | None = None) -> list[tuple[str, bytes, bytes]]:
    """Actions (key scope), attestations (key scope) and gate records (key scope@release), in that
    order (shared with replay): the action first, so that nothing about its evidence can keep the
    decision from being published (attestations are also size-guarded: processors.policy.attest)."""
    out = []
    for a in actions:
        ACTIONS.labels(a.get("kind", ""), a.get("action", "")).inc()
        out.append((actions_topic, str(a["scope"]).encode(), canonical_json(a)))
    for a in attestations:
        ATTESTATIONS.inc()
        out.append((attestations_topic, str(a["scope"]).encode(), canonical_json(a)))
    for g in gates:
        GATE_RECORDS.labels(g["verdict"]).inc()
        out.append((gates_topic, f"{g['scope']}@{g['release']}".encode(), canonical_json(g)))
    return out


def shadow_outputs(decisions: list[dict], gates: list[dict], shadow_topic: str) -> list[tuple[str, bytes, bytes]]:
    """Shadow decisions and gate records on the shadow topic, keyed like the live ones (scope, scope@release)."""
    if not decisions and not gates:  # the common case, asked once per signal record
        return []
    return [(shadow_topic, str(d["scope"]).encode(), canonical_json(d)) for d in decisions] + \
        [(shadow_topic, f"{g['scope']}@{g['release']}".encode(), canonical_json(g)) for g in gates]


class DecideStage(SnapshotStage):
    name = "decide"

    def __init__(self, policy_dir, signing_key, state_dir, loader, policy=None, shadow_policy=None, **kw):
        super().__init__(topics.topic("signals"), state_dir, group=topics.group_id("decide"), **kw)
        self.policy_dir, self.loader = Path(policy_dir), loader
        self.signer = permit_signer(signing_key) if signing_key is not None else None
        self.policy = policy if policy is not None else loader(self.policy_dir)
        self._watch = PolicyWatch(self.policy_dir)
        self.actions_topic, self.gates_topic = topics.topic("actions"), topics.topic("gates")
        self.attestations_topic = topics.topic("attestations")
        self.shadow_policy, self.shadow_topic = shadow_policy, topics.topic("shadow")
        POLICY_INFO.labels(_set_hash(self.policy)).set(1)
        if shadow_policy is not None:
            LOG.info("shadow policy %s runs beside the active %s (decisions to %s, never signed)",
                     _set_hash(shadow_policy), _set_hash(self.policy), self.shadow_topic)

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
        return DecisionState(ScopedEngine(self.policy, self.signer), shadow=self._shadow_engine(None))

    def load_state(self, worker, partition, doc):
        return DecisionState(ScopedEngine.from_state(self.policy, doc["engine"], self.signer),
                             BatchAssembler.from_state(doc["assembler"]), self._shadow_engine(doc.get("shadow")))

    def dump_state(self, state):
        doc = {"engine": state.engine.to_state(), "assembler": state.assembler.to_state()}
        if state.shadow is not None:  # without a shadow policy the snapshot is byte for byte as before
            doc["shadow"] = state.shadow.to_state()
        return doc

    def _shadow_engine(self, doc: dict | None) -> ScopedEngine | None:
        """The candidate's engine: no signer, ever. A snapshot without shadow state (the shadow was
        added on this start) starts it fresh from the snapshot's offset."""
        if self.shadow_policy is None:
            return None
        return ScopedEngine.from_state(self.shadow_policy, doc) if doc else ScopedEngine(self.shadow_policy)

    def handle(self, worker, state, msg):
        try:
            rec = orjson.loads(msg.value())
            actions, gates, attestations = state.on_record(rec)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            BAD_SIGNALS.inc()
            LOG.warning("skipping unreadable signal at %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), e)
            state.drain()  # nothing of a refused record may be published with the next one
            return []
        return decision_outputs(actions, gates, self.actions_topic, self.gates_topic, attestations,
                                self.attestations_topic) + shadow_outputs(*state.take_shadow(), self.shadow_topic)

    def checkpoint(self, worker):
        offsets = super().checkpoint(worker)
        self.maybe_reload()
        return offsets


def _set_hash(policy) -> str:
    """The base policy's hash, or one over it and its overlays (a reload of either counts)."""
    return PolicySet(policy, tuple(policy.overlays)).hash
