"""The engine for a policy set: one Engine per composed policy, each scope routed to the engine of
the policy that selects it (processors.policy.overlays). With no overlays it is the base Engine,
state format included, so adding this layer changed no output byte."""
from __future__ import annotations

from gatewatch.processors.policy.compose import Policy
from gatewatch.processors.policy.engine import STATE_VERSION, Engine, Signer
from gatewatch.processors.policy.overlays import PolicySet


class ScopedEngine:
    def __init__(self, policies: PolicySet | Policy, signer: Signer | None = None):
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet(policies, tuple(policies.overlays))
        self.policy = self.policies.base
        self.engines = {"": Engine(self.policies.base, signer)}
        for o in self.policies.overlays:
            self.engines[o.name] = Engine(o.policy, signer)
        self._routes: dict[str, str] = {}

    def engine_for(self, scope) -> Engine:
        if not isinstance(scope, str):
            return self.engines[""]  # the base engine refuses it with the usual error
        name = self._routes.get(scope)
        if name is None:
            name = self._routes[scope] = self.policies.overlay_for(scope)
        return self.engines[name]

    def on_batch(self, signals: list[dict]) -> list[dict]:
        if len(self.engines) == 1:  # no overlays: every scope is the base engine's, in the same order
            return self.engines[""].on_batch(signals)
        parts: dict[int, tuple[Engine, list]] = {}
        for sig in signals:
            eng = self.engine_for(sig.get("scope") if isinstance(sig, dict) else None)
            parts.setdefault(id(eng), (eng, []))[1].append(sig)
        actions: list[dict] = []
        for eng, sigs in parts.values():
            actions.extend(eng.on_batch(sigs))
        return actions

    def take_dropped(self) -> list[tuple[str, int]]:
        return [d for e in self.engines.values() for d in e.take_dropped()]

    def take_gate_records(self) -> list[dict]:
        return [g for e in self.engines.values() for g in e.take_gate_records()]

    def take_attestations(self) -> list[dict]:
        return [a for e in self.engines.values() for a in e.take_attestations()]

    def decided(self, scope: str, release: str = "") -> list[dict]:
        return self.engine_for(scope).decided(scope, release)

    def gate_state(self, scope: str, release: str = "") -> str:
        return self.engine_for(scope).gate_state(scope, release)

    def requirements(self, scope: str | None = None) -> dict:
        return (self.engines[""] if scope is None else self.engine_for(scope)).requirements()

    # ---- state: the Engine format, each scope's state from the engine that owns it ------------
    def to_state(self) -> dict:
        scopes = {}
        for e in self.engines.values():
            scopes.update({s: e.scope_state(s) for s in e.scopes})
        return {"version": STATE_VERSION, "policy_hash": self.policies.hash, "scopes": dict(sorted(scopes.items()))}

    @classmethod
    def from_state(cls, policies: PolicySet | Policy, state: dict, signer: Signer | None = None) -> "ScopedEngine":
        eng = cls(policies, signer)
        for scope, st in (state or {}).get("scopes", {}).items():
            # a scope whose overlay changed (a reload) moves to its new engine, which keeps the
            # rule and gate state its policy still means the same way (Engine.load_scope_state)
            eng.engine_for(scope).load_scope_state(scope, st)
        return eng
