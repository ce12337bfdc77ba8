"""The extension kit: signals computed in Python by faust agents (the optional extra gatewatch[faust]).

- `records`: typed faust Records of every topic value, generated from schemas/ (`RECORDS`);
- `app(app_id)`: a faust.App with gatewatch's broker and security settings;
- `SignalInput`: publish an agent's values as a declared signal input on gw.metrics.

The rule for extension authors is in docs/extensions.md; examples/payment_declines is a whole one.
"""
from gatewatch.streams.ext.app import SOURCE_HEADER, SignalInput, app, encode
from gatewatch.streams.ext.records import RECORDS

__all__ = ["RECORDS", "SOURCE_HEADER", "SignalInput", "app", "encode"]
