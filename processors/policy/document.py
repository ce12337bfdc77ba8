"""The composed policy document as plain data: lookups, ${...} substitution, and errors that name
the file and line a value came from. Imported by compose, rules and gate alike (no cycle)."""
from __future__ import annotations

import difflib
import re
from typing import Any

from gatewatch.processors.policy.errors import PolicyError
from gatewatch.processors.policy.source import Origin


def lookup(doc: Any, path: str, default: Any = None) -> Any:
    cur = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


_SUBST = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def substitute(text: str, doc: dict) -> str:
    """Replace ${a.b.c} by that value of the composed document."""
    def repl(m):
        v = lookup(doc, m.group(1))
        if v is None or isinstance(v, (dict, list)):
            raise ValueError(f"${{{m.group(1)}}} does not name a value of the policy")
        return str(v)
    return _SUBST.sub(repl, text)


def at(where: dict, path: str) -> Origin:
    """Where `path` (or the nearest enclosing path) was written."""
    while path:
        if path in where:
            return where[path]
        shorter = re.sub(r'(\.[^.\[]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])$', "", path)
        if shorter == path:  # a key such as "gate.cohort" ends in neither: it looped here forever
            break
        path = shorter
    return Origin("<policy>", 0)


def fail(where: dict, path: str, problem: str):
    o = at(where, path)
    raise PolicyError(o.file, o.line or None, problem)


def suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
