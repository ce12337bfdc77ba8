"""The name grammar for services, scopes and releases (pure).

    name = [A-Za-z0-9] [A-Za-z0-9._:/-]{0,127}

One to 128 characters; the first a letter or digit, so a name is never an option ("--help"),
never empty, never starts with a dot or slash; the rest letters, digits and . _ : / - only, so
no whitespace, quotes, shell metacharacters ($ ` ( ) ; & | < > *), control characters or
non-ASCII look-alikes. It covers DNS names, Kubernetes names, namespace/service, db.table,
service:port and semver releases (1.2.3, v2.0.0-rc.1). The same text is a scope that signed
actions carry and that the executor's command backend substitutes into argv, so ingest
dead-letters a record whose service name violates it (reason bad_name) and the command backend
refuses to substitute one.
"""
from __future__ import annotations

import re

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}\Z"
_NAME = re.compile(NAME_PATTERN)


def valid_name(text) -> bool:
    return isinstance(text, str) and _NAME.match(text) is not None


def why_not(text) -> str:
    """A one-line reason (for a DLQ detail or an error): what is wrong with the name."""
    if not isinstance(text, str):
        return f"not a string ({type(text).__name__})"
    if not text:
        return "empty"
    if len(text) > 128:
        return f"{len(text)} characters, more than 128"
    if not text[0].isascii() or not text[0].isalnum():
        return f"starts with {text[0]!r}: a name starts with a letter or digit"
    bad = next(c for c in text if not (c.isascii() and (c.isalnum() or c in "._:/-")))
    return f"contains {bad!r}: only letters, digits and . _ : / - are allowed"
