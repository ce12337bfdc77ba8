"""Policies and decisions: YAML in, signed hook/abort/promote actions out. Pure.

One hop per layer: source (YAML with lines) -> compose (merge, hash, origins) ->
rules / grammar (parsed conditions, presets, hooks from defaults) -> evaluator
(three-valued, per subject, `for` streaks) -> gate (SPEC states) -> engine
(batches in, action records out) -> records (ids, explanations).
"""
from gatewatch.processors.policy.compose import Policy, compose, lookup
from gatewatch.processors.policy.engine import Engine, permit_signer
from gatewatch.processors.policy.errors import PolicyError, SignalError
from gatewatch.processors.policy.gate import STATES
from gatewatch.processors.policy.grammar import GrammarError, parse_condition, render
from gatewatch.processors.policy.rules import ACTIONS, Rule

__all__ = ["ACTIONS", "Engine", "GrammarError", "Policy", "PolicyError", "Rule", "STATES", "SignalError",
           "compose", "lookup", "parse_condition", "permit_signer", "render"]
