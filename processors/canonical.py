"""Canonical JSON and content ids: the basis of every id and signature.

Canonical = sorted keys, no whitespace, UTF-8 (orjson's output with OPT_SORT_KEYS).
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson

_OPTS = orjson.OPT_SORT_KEYS


def canonical_json(obj: Any) -> bytes:
    return orjson.dumps(obj, option=_OPTS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_id(obj: Any) -> str:
    """sha256 hex of the canonical JSON of obj."""
    return hashlib.sha256(orjson.dumps(obj, option=_OPTS)).hexdigest()
