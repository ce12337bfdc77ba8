"""Compose policy files into one Policy: merge, hash, origins, compiled rules.

Precedence: the built-in layer (configs/builtin.yml, given as `base`), then the sources in the
order given (project -> env -> gate -> ...); later wins.

Merge semantics:
  * mappings merge key by key, recursively; a later `null` deletes the key;
  * lists of mappings merge by identity: an item with an `id`, `route` or `name`
    merges into the earlier item with the same identity, in place; every other
    item is appended. So abort rules add up across files, a rule with an explicit
    `id` in a later file overrides the earlier one, and `rum.routes` entries
    override per route;
  * lists of scalars (`hooks.critical`, `gate.required`, ...) are replaced
    wholesale by the later file (later wins; that is how a list shrinks);
  * anything else: the later value replaces the earlier one.

The policy hash is sha256 of the canonical JSON of the composed document
(comments, whitespace and key order do not change it).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from gatewatch.processors import catalogue
from gatewatch.processors.canonical import canonical_json, sha256_hex
from gatewatch.processors.declared import DeclaredError, parse_declared
from gatewatch.processors.policy.document import fail, lookup
from gatewatch.processors.policy.errors import PolicyError
from gatewatch.processors.policy.gate import GateConfig, gate_config
from gatewatch.processors.policy.grammar import conds
from gatewatch.processors.policy.rules import Rule, compile_rules
from gatewatch.processors.policy.shadowphase import shadow_config, shadow_hold_warnings
from gatewatch.processors.policy.source import (
    Located,
    Origin,
    origins,
    parse_yaml,
    plain,
)

_IDENTITY_KEYS = ("id", "route", "name")


@dataclass
class Policy:
    doc: dict                       # the composed plain document
    hash: str                       # sha256 hex of canonical_json(doc)
    origins: dict[str, Origin]      # path -> file:line of the value that won
    rules: list[Rule] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    gate: GateConfig | None = None
    warnings: list[str] = field(default_factory=list)
    declared: dict = field(default_factory=dict)   # name -> processors.declared.Declared
    overlays: tuple = ()            # processors.policy.overlays.Overlay: per-scope policies (not in `hash`)

    def get(self, path: str, default: Any = None) -> Any:
        return lookup(self.doc, path, default)

    @property
    def signal_units(self) -> dict[str, str]:
        """The declared signals' units, by name: what the grammar accepts beside the catalogue."""
        return {n: d.unit for n, d in self.declared.items()}

    @property
    def cohort(self) -> str:
        return self.gate.cohort if self.gate else "canary"


def _identity(loc: Located):
    v = loc.value
    if isinstance(v, dict):
        for k in _IDENTITY_KEYS:
            if k in v and isinstance(v[k].value, (str, int)):
                return (k, v[k].value)
        return None
    return None


def merge(base: Located | None, top: Located | None) -> Located | None:
    if base is None:
        return top
    if top is None:
        return base
    if isinstance(base.value, dict) and isinstance(top.value, dict):
        out = dict(base.value)
        for k, child in top.value.items():
            if child.value is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], child)
            else:
                out[k] = child
        return Located(out, base.origin)
    if isinstance(base.value, list) and isinstance(top.value, list) \
            and any(isinstance(i.value, dict) for i in top.value + base.value):
        out_list = list(base.value)
        index = {}
        for i, item in enumerate(out_list):
            ident = _identity(item)
            if ident is not None:
                index.setdefault(ident, i)
        for item in top.value:
            ident = _identity(item)
            if ident is not None and ident in index:
                out_list[index[ident]] = merge(out_list[index[ident]], item) \
                    if isinstance(item.value, dict) else item
            else:
                if ident is not None:
                    index[ident] = len(out_list)
                out_list.append(item)
        return Located(out_list, base.origin)
    return top


def compose(sources: list[tuple[str, str]], base: tuple[str, str] | None = None) -> Policy:
    """sources: (file name, YAML text) in precedence order, over `base`, the built-in layer
    (name, text) that streams.runtime.policy_files reads from configs/builtin.yml. Raises PolicyError."""
    tree = parse_yaml(*base) if base is not None else None
    files = []
    for name, text in sources:
        loc = parse_yaml(name, text)
        files.append(name)
        if loc is None:
            continue
        if not isinstance(loc.value, dict):
            raise PolicyError(name, loc.origin.line, "a policy file must be a mapping at the top level")
        tree = merge(tree, loc)
    doc = plain(tree) if tree is not None else {}
    where = origins(tree) if tree is not None else {}
    try:
        digest = sha256_hex(canonical_json(doc))
    except TypeError as e:  # pragma: no cover - source.py already reduces values to plain types
        raise PolicyError(files[-1] if files else "<policy>", None, f"not serializable: {e}") from None
    policy = Policy(doc=doc, hash=digest, origins=where, files=files)
    try:
        policy.declared = parse_declared(doc)
    except DeclaredError as e:
        fail(where, e.path, str(e).split(": ", 1)[1])
    policy.rules = compile_rules(doc, where, policy.signal_units)
    gate = gate_config(doc, where, policy.signal_units)
    policy.gate = replace(gate, shadow=shadow_config(doc, where, gate, policy.rules, policy.signal_units))
    policy.warnings = _warnings(policy)
    return policy


def _warnings(policy: Policy) -> list[str]:
    """Legal but probably not meant: blocking on gauges nobody publishes yet; with gate.shadow,
    on_missing: abort rules that hold while a release has no canary traffic."""
    out = []
    if policy.gate.shadow is not None:
        out.extend(shadow_hold_warnings(policy))
    for r in policy.rules:
        if not r.blocking:
            continue
        names = {c.signal for c in conds(r.expr) if catalogue.resolve(c.signal) is None}
        declared = sorted(n for n in names if n in policy.declared)
        missing = sorted(names - set(declared))
        if missing:
            out.append(f"{r.origin}: {r.id} blocks the gate on {', '.join(missing)}, which the signal catalogue"
                       " does not list: until a producer publishes it the gate cannot advance")
        if declared:
            out.append(f"{r.origin}: {r.id} blocks the gate on {', '.join(declared)}, declared in signals.declared"
                       " and computed from your inputs: until its producer publishes it the gate cannot advance")
    return out
