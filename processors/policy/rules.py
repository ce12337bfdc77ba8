"""Rules from the composed document: abort rules (`abort_rules:` and `abort:` lists)
and the enabled hooks (`hooks.critical` / `hooks.must_have` names, defined in
`hooks.library`). Every problem is a PolicyError naming file, line and problem.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

from gatewatch.processors.canonical import content_id
from gatewatch.processors.policy.document import at, fail, lookup, substitute, suggest
from gatewatch.processors.policy.grammar import (
    GrammarError,
    conds,
    parse_condition,
    render,
    signal_info,
)
from gatewatch.processors.policy.source import Origin, key_path
from gatewatch.processors.timefmt import TimeFormatError, parse_duration_ms

RULE_KEYS = ("id", "when", "preset", "action", "severity", "on_missing", "min_samples", "description")
ACTIONS = ("rollback", "rollback_fe", "rollback_feature", "rollback_release", "rollback_baseline",
           "freeze", "block_release", "throttle", "degrade", "pause", "notify")
SEVERITIES = ("page", "ticket", "info")
ON_MISSING = ("hold", "abort")
ABORT_LISTS = ("abort_rules", "abort")
_OP_WORDS = {">=": "ge", "<=": "le", "==": "eq", "!=": "ne", ">": "gt", "<": "lt"}


@dataclass(frozen=True)
class Rule:
    id: str
    kind: str           # abort | hook
    action: str
    text: str           # the condition as written (after ${...} substitution)
    expr: object        # grammar.Cond / And / Or
    severity: str
    on_missing: str     # hold | abort
    min_samples: int
    blocking: bool      # blocks gate progress while true or unknown (abort rules, critical hooks)
    domains: tuple      # catalogue domains the rule reads, sorted
    origin: Origin
    path: str           # where in the composed document

    @cached_property  # the rule is frozen: hashed once, not at every step that reads it
    def fingerprint(self) -> str:
        """Changes when anything that decides the rule's outcome changes."""
        return content_id([self.id, self.kind, self.action, render(self.expr), self.severity,
                           self.on_missing, self.min_samples, self.blocking])

    def describe(self) -> dict:
        return {"id": self.id, "text": self.text, "severity": self.severity,
                "on_missing": self.on_missing, "min_samples": self.min_samples}


def slug(text: str) -> str:
    for op, word in _OP_WORDS.items():
        text = text.replace(f" {op} ", f"_{word}_")
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:80]


def compile_rule(spec, path: str, kind: str, where: dict, doc: dict, *, rule_id: str | None = None,
                 blocking: bool, declared: dict | None = None) -> Rule:
    what = "rule" if kind == "abort" else "hook"
    if not isinstance(spec, dict):
        fail(where, path, f"a {what} must be a mapping with when/preset and action, got {type(spec).__name__}")
    for key in spec:
        if key not in RULE_KEYS:
            fail(where, key_path(path, str(key)), f"unknown key {key!r} in {what}{suggest(key, RULE_KEYS)}")
    defaults = lookup(doc, "rule_defaults", {}) or {}
    if ("when" in spec) == ("preset" in spec):
        fail(where, path, f"a {what} needs exactly one of 'when' or 'preset'")
    if "preset" in spec:
        presets = lookup(doc, "presets", {}) or {}
        name = spec["preset"]
        if not isinstance(name, str) or name not in presets:
            fail(where, f"{path}.preset", f"unknown preset {name!r}{suggest(str(name), presets)}"
                 f" (known: {', '.join(sorted(presets))})")
        text, text_path = presets[name], f"presets.{name}"
    else:
        text, text_path = spec["when"], f"{path}.when"
    try:
        text = substitute(text, doc) if isinstance(text, str) else text
        expr = parse_condition(text, declared)
    except (GrammarError, ValueError) as e:
        fail(where, text_path, f"cannot parse when {text!r}: {e}")
    action = spec.get("action")
    if action not in ACTIONS:
        fail(where, f"{path}.action" if "action" in spec else path,
             f"unknown action {action!r}{suggest(str(action), ACTIONS)} (known: {', '.join(ACTIONS)})"
             if action is not None else f"{what} without an action")
    severity = spec.get("severity", defaults.get(f"{kind}_severity", "page" if kind == "abort" else "ticket"))
    if severity not in SEVERITIES:
        fail(where, f"{path}.severity", f"unknown severity {severity!r}{suggest(str(severity), SEVERITIES)}")
    on_missing = spec.get("on_missing", defaults.get("on_missing", "hold"))
    if on_missing not in ON_MISSING:
        fail(where, f"{path}.on_missing", f"on_missing must be hold or abort, got {on_missing!r}")
    min_samples = spec.get("min_samples", defaults.get("min_samples", 1))
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 0:
        fail(where, f"{path}.min_samples", f"min_samples must be a non-negative integer, got {min_samples!r}")
    rid = spec.get("id", rule_id)
    if rid is None:
        rid = f"{action}:{slug(render(expr))}"
    if not isinstance(rid, str) or not rid:
        fail(where, f"{path}.id", f"rule id must be a non-empty string, got {rid!r}")
    domains = tuple(sorted({signal_info(c.signal, declared).domain for c in conds(expr)}))
    return Rule(rid, kind, action, text, expr, severity, on_missing, min_samples, blocking, domains,
                at(where, path), path)


# Known sections, so that a typo'd section name (abort_rule:, hook:) is refused, not ignored.
# `signals`, `cdc`, `otlp` and `prometheus` belong to the signal and ingest stages (gatewatch.processors.windows.SignalConfig.from_policy).
TOP_KEYS = ("version", "name", "description", "slo", "abort_rules", "abort", "hooks", "rum", "obs", "gate",
            "permits", "evaluation", "rule_defaults", "presets", "signals", "cdc", "otlp", "prometheus", "selector")
SECTION_KEYS = {
    "permits": ("ttl",),
    "evaluation": ("max_gap", "max_pending_steps"),
    "rule_defaults": ("on_missing", "min_samples", "abort_severity", "hook_severity"),
    "rum": ("routes", "route_templates"),
    "obs": ("self_slo",),
}


def check_sections(doc: dict, where: dict) -> None:
    for key in doc:
        if key not in TOP_KEYS:
            fail(where, key_path("", str(key)), f"unknown section {key!r}{suggest(key, TOP_KEYS)}")
    for section, keys in SECTION_KEYS.items():
        value = doc.get(section)
        if value is None:
            continue
        if not isinstance(value, dict):
            fail(where, section, f"{section} must be a mapping")
        for key in value:
            if key not in keys:
                fail(where, f"{section}.{key}", f"unknown key {key!r} in {section}{suggest(key, keys)}")
    slo = doc.get("slo") or {}
    if not isinstance(slo, dict):
        fail(where, "slo", "slo must be a mapping")
    target = (slo.get("availability") or {}).get("target") if isinstance(slo.get("availability"), dict) else None
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, float))
                               or not 0 < target < 100):
        fail(where, "slo.availability.target", f"availability target must be a percentage in (0, 100), got {target!r}")
    check_values(doc, where)
    routes = (doc.get("rum") or {}).get("routes")
    if routes is not None and (not isinstance(routes, list)
                               or not all(isinstance(r, dict) and isinstance(r.get("route"), str) for r in routes)):
        fail(where, "rum.routes", "rum.routes must be a list of mappings with a route")


# signals.<key>: windows and the step must be > 0; the other durations may be 0, never negative
_POSITIVE = ("step", "rum_window", "cdc_window", "gauge_window", "rate_window")
_NON_NEGATIVE = ("lateness", "idle_retention", "cdc_retention", "max_future", "idle_source_after")
_MAX_DURATION_MS = 366 * 86_400_000


def _check_duration(where: dict, path: str, value, positive: bool) -> None:
    try:
        ms = parse_duration_ms(value)
    except (TimeFormatError, ValueError, OverflowError, TypeError):
        fail(where, path, f"{path} is not a duration: {value!r} (use e.g. 10s, 5m, 1h)")
    if ms < 0 or (positive and ms == 0) or ms > _MAX_DURATION_MS:
        fail(where, path, f"{path} must be {'more than 0' if positive else 'at least 0'} and at most 366d, "
                          f"got {value!r}")


def _finite(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def check_values(doc: dict, where: dict) -> None:
    """Values no user means: negative or zero windows, non-finite numbers, absurd counts."""
    slo = doc.get("slo") if isinstance(doc.get("slo"), dict) else {}
    avail = slo.get("availability") if isinstance(slo.get("availability"), dict) else {}
    by_service = avail.get("by_service")
    if by_service is not None:
        if not isinstance(by_service, dict):
            fail(where, "slo.availability.by_service", "slo.availability.by_service must be a mapping")
        for svc, t in by_service.items():
            if not _finite(t) or not 0 < t < 100:
                fail(where, f"slo.availability.by_service.{svc}",
                     f"availability target must be a percentage in (0, 100), got {t!r}")
    lat = slo.get("latency_p95_ms")
    if isinstance(lat, dict) and lat.get("window") is not None:
        _check_duration(where, "slo.latency_p95_ms.window", lat["window"], positive=True)
    sig = doc.get("signals")
    if isinstance(sig, dict):
        for key in _POSITIVE + _NON_NEGATIVE:
            if sig.get(key) is not None:
                _check_duration(where, f"signals.{key}", sig[key], positive=key in _POSITIVE)
        n = sig.get("bootstrap_resamples")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100_000):
            fail(where, "signals.bootstrap_resamples",
                 f"signals.bootstrap_resamples must be an integer in 1..100000, got {n!r}")
    for i, r in enumerate((doc.get("rum") or {}).get("routes") or [] if isinstance(doc.get("rum"), dict) else []):
        if isinstance(r, dict):
            for k, v in r.items():
                if k != "route" and isinstance(v, float) and not math.isfinite(v):
                    fail(where, f"rum.routes[{i}].{k}", f"not a finite number: {v!r}")


def compile_rules(doc: dict, where: dict, declared: dict | None = None) -> list[Rule]:
    """declared: the policy's declared signals, name -> unit (processors.declared)."""
    check_sections(doc, where)
    rules: list[Rule] = []
    for list_key in ABORT_LISTS:
        items = doc.get(list_key)
        if items is None:
            continue
        if not isinstance(items, list):
            fail(where, list_key, f"{list_key} must be a list of rules")
        for i, spec in enumerate(items):
            rules.append(compile_rule(spec, f"{list_key}[{i}]", "abort", where, doc, blocking=True,
                                      declared=declared))
    rules.extend(_hooks(doc, where, declared))
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.id in seen:
            first = seen[r.id].origin
            fail(where, r.path, f"duplicate rule id {r.id!r} (first defined at {first})")
        seen[r.id] = r
    return rules


def _hooks(doc: dict, where: dict, declared: dict | None) -> list[Rule]:
    hooks = doc.get("hooks") or {}
    if not isinstance(hooks, dict):
        fail(where, "hooks", "hooks must be a mapping (critical, must_have, library, aliases)")
    for key in hooks:
        if key not in ("critical", "must_have", "library", "aliases"):
            fail(where, f"hooks.{key}", f"unknown key {key!r} in hooks"
                 f"{suggest(key, ('critical', 'must_have', 'library', 'aliases'))}")
    library = hooks.get("library") or {}
    aliases = hooks.get("aliases") or {}
    enabled: dict[str, tuple[bool, str]] = {}
    for group in ("critical", "must_have"):
        names = hooks.get(group) or []
        if not isinstance(names, list):
            fail(where, f"hooks.{group}", f"hooks.{group} must be a list of hook names")
        for i, name in enumerate(names):
            canon = aliases.get(name, name)
            if canon not in library:
                fail(where, f"hooks.{group}[{i}]",
                     f"unknown hook {name!r}{suggest(str(name), list(library) + list(aliases))}")
            if canon not in enabled:
                enabled[canon] = (group == "critical", f"hooks.{group}[{i}]")
            elif group == "critical":
                enabled[canon] = (True, enabled[canon][1])
    if not isinstance(library, dict):
        fail(where, "hooks.library", "hooks.library must map hook names to rules")
    out = []
    for name in library:  # every definition is checked, enabled or not
        critical, _ = enabled.get(name, (False, ""))
        rule = compile_rule(library[name], f"hooks.library.{name}", "hook", where, doc,
                            rule_id=f"hook:{name}", blocking=critical, declared=declared)
        if name in enabled:
            out.append(rule)
    return out
