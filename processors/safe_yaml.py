"""Bounded YAML: every policy, executor config, scenario and bundled policy is read through here.

PyYAML's safe loader still expands aliases (a "billion laughs" document of a few hundred bytes
builds gigabytes of values), recurses once per nesting level (deep nesting ends in
RecursionError) and hands control characters to the reader (yaml.ReaderError, not a
MarkedYAMLError). This loader refuses, each with one line naming file:line:
- documents over MAX_BYTES (default 1 MiB);
- NUL and other C0/C1 control characters (tab, newline and carriage return allowed);
- aliases and anchors (``*name``, ``&name``): gatewatch files never need them;
- nesting deeper than MAX_DEPTH (64) and more than MAX_NODES (200 000) nodes.
Pure: text in, values or SafeYamlError out (docs/security.md has the measured figures).
"""
from __future__ import annotations

import re

import yaml

MAX_BYTES = 1 << 20
MAX_DEPTH = 64
MAX_NODES = 200_000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff]")


class SafeYamlError(ValueError):
    """A refused or invalid YAML document: str() is one line, "file:line: reason"."""

    def __init__(self, file: str, line: int | None, message: str):
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: {message}" if line else f"{file}: {message}")


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses aliases/anchors and counts depth and nodes."""

    def __init__(self, text: str, file: str):
        super().__init__(text)
        self._file, self._depth, self._nodes = file, 0, 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            raise SafeYamlError(self._file, line, f"YAML aliases (*{event.anchor}) are not allowed")
        if getattr(event, "anchor", None) is not None:
            raise SafeYamlError(self._file, line, f"YAML anchors (&{event.anchor}) are not allowed")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise SafeYamlError(self._file, line, f"more than {MAX_NODES} YAML nodes")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise SafeYamlError(self._file, line, f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def check_text(text: str, file: str, max_bytes: int = MAX_BYTES) -> None:
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise SafeYamlError(file, None, f"larger than {max_bytes // 1024} KiB (refused)")
    m = _CONTROL.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        raise SafeYamlError(file, line, f"control character U+{ord(m.group()):04X} is not allowed")


def loader(text: str, file: str, max_bytes: int = MAX_BYTES) -> _Loader:
    """A composer over checked text (the caller calls get_single_node() and dispose())."""
    check_text(text, file, max_bytes)
    return _Loader(text, file)


def _wrap(file: str, e: yaml.YAMLError) -> SafeYamlError:
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return SafeYamlError(file, mark.line + 1 if mark else None, f"not valid YAML: {problem}")


def compose(text: str, file: str, max_bytes: int = MAX_BYTES):
    """(loader, root node or None); YAML errors become SafeYamlError. Caller disposes the loader."""
    ld = loader(text, file, max_bytes)
    try:
        return ld, ld.get_single_node()
    except yaml.YAMLError as e:
        ld.dispose()
        raise _wrap(file, e) from None
    except RecursionError:
        ld.dispose()
        raise SafeYamlError(file, None, "nested too deeply") from None


def load(text: str, file: str, max_bytes: int = MAX_BYTES):
    """yaml.safe_load with the limits above."""
    ld, node = compose(text, file, max_bytes)
    try:
        return None if node is None else ld.construct_document(node)
    except yaml.YAMLError as e:
        raise _wrap(file, e) from None
    finally:
        ld.dispose()
