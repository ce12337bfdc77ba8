"""The extension kit: signals computed in Python by faust agents (the optional extra gatewatch[faust]).

- `records`: typed faust Records of every topic value, generated from schemas/ (`RECORDS`);
- `app(app_id)`: a faust.App with gatewatch's broker and security settings;
- `SignalInput`: publish an agent's values as a declared signal input on gw.metrics.

The rule for extension authors is in docs/extensions.md; examples/payment_declines is a whole one.
Names load on first use, so the generator (codegen) runs even while records.py is being rewritten.
"""
from __future__ import annotations

import importlib

_EXPORTS = {"SOURCE_HEADER": "kit", "SignalInput": "kit", "app": "kit", "encode": "kit",
            "RECORDS": "records", "REQUIRED": "records"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
