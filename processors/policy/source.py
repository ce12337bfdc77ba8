"""YAML text -> plain values plus the file:line each value came from.

PyYAML's node tree keeps line marks; we build the values ourselves so that every
path (``slo.availability.target``, ``abort[0].when``) gets an origin, and so that a
key repeated in one mapping is refused instead of silently overwritten.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from gatewatch.processors import safe_yaml
from gatewatch.processors.policy.errors import PolicyError


@dataclass(frozen=True)
class Origin:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Located:
    """A value with its origin; mappings and lists hold Located children."""
    value: Any
    origin: Origin


def parse_yaml(file: str, text: str) -> Located | None:
    """Parse one YAML document (bounded: gatewatch.processors.safe_yaml). None for an empty file."""
    try:
        loader, node = safe_yaml.compose(text, file)
    except safe_yaml.SafeYamlError as e:
        raise PolicyError(file, e.line, e.message) from None
    try:
        if node is None:
            return None
        return _build(loader, node, file)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise PolicyError(file, mark.line + 1 if mark else None, f"not valid YAML: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise PolicyError(file, None, f"not valid YAML: {e}") from None
    finally:
        loader.dispose()


def _build(loader: yaml.SafeLoader, node: yaml.Node, file: str) -> Located:
    origin = Origin(file, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Located] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key == "<<":
                raise PolicyError(file, line, "YAML merge keys (<<) are not supported in policies")
            if not isinstance(key, str):
                raise PolicyError(file, line, f"mapping keys must be strings, got {key!r}")
            if key in out:
                raise PolicyError(file, line, f"duplicate key {key!r} (first at line {out[key].origin.line})")
            child = _build(loader, value_node, file)
            # a mapping entry's origin is its key's line: that is where a reader looks
            out[key] = Located(child.value, Origin(file, line))
        return Located(out, origin)
    if isinstance(node, yaml.SequenceNode):
        return Located([_build(loader, n, file) for n in node.value], origin)
    value = loader.construct_object(node, deep=True)
    if isinstance(value, (bytes, set)) or not isinstance(value, (str, int, float, bool, type(None))):
        value = str(value)  # dates and friends: keep the text, canonical JSON needs plain types
    return Located(value, origin)


def plain(loc: Located | None) -> Any:
    """Strip origins."""
    if loc is None:
        return None
    v = loc.value
    if isinstance(v, dict):
        return {k: plain(c) for k, c in v.items()}
    if isinstance(v, list):
        return [plain(c) for c in v]
    return v


def key_path(prefix: str, k: str) -> str:
    """a.b, or a["2.3.0"] for a key a dotted path could not spell (a version, a route)."""
    if k and not any(ch in k for ch in '.[]" '):
        return f"{prefix}.{k}" if prefix else k
    return prefix + "[" + json.dumps(k) + "]"


def origins(loc: Located | None, prefix: str = "") -> dict[str, Origin]:
    """{path: origin} for every value, paths like ``a.b[0].c`` and ``otlp.cohorts["2.3.0"]``."""
    out: dict[str, Origin] = {}
    if loc is None:
        return out
    if prefix:
        out[prefix] = loc.origin
    v = loc.value
    if isinstance(v, dict):
        for k, c in v.items():
            out.update(origins(c, key_path(prefix, str(k))))
    elif isinstance(v, list):
        for i, c in enumerate(v):
            out.update(origins(c, f"{prefix}[{i}]"))
    return out
