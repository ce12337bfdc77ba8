"""Policy per service: overlays chosen by a glob on the scope.

An overlay is a policy file with a top-level `selector: {scope: <glob or [globs]>}` (fnmatch,
case-sensitive). It is composed after project.yml and env.yml and before the remaining files
(gate.yml, ...), like Argo Rollouts' AnalysisTemplate per rollout or Sloth's spec per service:
each scope gets the policy of the first overlay (in file-name order) whose selector matches it,
else the base policy, and each composed policy has its own hash, which its actions and gate
records carry. Overlays change decisions (SLO thresholds, rules, hooks, gate); the signal stage
computes signals with the base policy's `signals`, `cdc`, `otlp`, `prometheus` and `rum`
sections, so an overlay may not change those (one signal value per scope and step for everyone).
"""
from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from gatewatch.processors.canonical import canonical_json, sha256_hex
from gatewatch.processors.policy.compose import Policy
from gatewatch.processors.policy.errors import PolicyError

SIGNAL_SECTIONS = ("signals", "cdc", "otlp", "prometheus", "rum")


@dataclass(frozen=True)
class Overlay:
    name: str                   # the overlay's file name
    patterns: tuple[str, ...]   # scope globs
    policy: Policy              # the composed policy of the scopes it selects

    def selects(self, scope: str) -> bool:
        return any(fnmatchcase(scope, p) for p in self.patterns)


def selector_patterns(name: str, doc: dict) -> tuple[str, ...]:
    """The globs of an overlay's `selector`, refused with file-level errors when malformed."""
    sel = doc.get("selector")
    if not isinstance(sel, dict) or set(sel) != {"scope"}:
        raise PolicyError(name, None, "an overlay needs `selector: {scope: <glob or list of globs>}`")
    pats = sel["scope"] if isinstance(sel["scope"], list) else [sel["scope"]]
    if not pats or not all(isinstance(p, str) and p for p in pats):
        raise PolicyError(name, None, "selector.scope must be a non-empty glob or list of globs")
    return tuple(pats)


def check_overlay(base: Policy, overlay: Overlay) -> None:
    for section in SIGNAL_SECTIONS:
        if base.doc.get(section) != overlay.policy.doc.get(section):
            raise PolicyError(overlay.name, None, f"an overlay may not change `{section}`: signals are computed "
                                                  "once per scope for every policy (put it in the base files)")


@dataclass(frozen=True)
class PolicySet:
    base: Policy
    overlays: tuple[Overlay, ...] = ()

    def policy_for(self, scope: str) -> Policy:
        for o in self.overlays:
            if o.selects(scope):
                return o.policy
        return self.base

    def overlay_for(self, scope: str) -> str:
        """The name of the overlay that selects `scope`, "" for the base policy."""
        return next((o.name for o in self.overlays if o.selects(scope)), "")

    @property
    def hash(self) -> str:
        """The base hash when there are no overlays; else one hash over every composed policy."""
        if not self.overlays:
            return self.base.hash
        return sha256_hex(canonical_json({"base": self.base.hash,
                                          "overlays": [[o.name, list(o.patterns), o.policy.hash]
                                                       for o in self.overlays]}))
