import re

import pytest

from gatewatch.sinks.executor.backends import (
    CommandBackend,
    DryRunBackend,
    WebhookBackend,
)
from gatewatch.sinks.executor.config import config_from_dict, load_config
from gatewatch.streams.runtime.errors import GatewatchError


def test_shipped_config_loads_and_routes_hooks_to_dry_run():
    cfg = load_config("configs/executor.yml")
    assert cfg.backend_for({"kind": "hook", "action": "notify"}) == "dry-run"
    assert cfg.backend_for({"kind": "abort", "action": "rollback"}) == "dry-run"
    assert cfg.concurrency == 8 and cfg.partitions is None and cfg.permit_leeway_s == 0


def test_routes_first_match_wins_by_action_kind_and_scope():
    cfg = config_from_dict({
        "backends": {"hook": {"type": "webhook", "url": "http://127.0.0.1:1/x", "timeout": "250ms"},
                     "cmd": {"type": "command", "argv": ["true"]}},
        "routes": [{"action": "rollback", "scope": "payments", "backend": "cmd"},
                   {"action": "rollback", "backend": "hook"}],
        "default_backend": "dry-run"})
    assert cfg.backend_for({"action": "rollback", "scope": "payments"}) == "cmd"
    assert cfg.backend_for({"action": "rollback", "scope": "checkout"}) == "hook"
    assert cfg.backend_for({"action": "freeze", "scope": "payments"}) == "dry-run"
    from nacl.signing import SigningKey
    built = cfg.build_backends(SigningKey(b"k" * 32))
    assert isinstance(built["hook"], WebhookBackend) and built["hook"].timeout_s == 0.25
    assert isinstance(built["cmd"], CommandBackend) and isinstance(built["dry-run"], DryRunBackend)


@pytest.mark.parametrize("doc, msg", [
    ({"routes": [{"action": "rollback", "backend": "nope"}]}, "unknown backend"),
    ({"routes": [{"colour": "red", "backend": "dry-run"}]}, "routes[0]"),
    ({"backends": {"x": {"type": "ftp"}}}, "unknown type"),
    ({"backends": {"x": {"type": "webhook"}}}, "needs a url"),
    ({"backends": {"x": {"type": "command", "argv": "rm -rf /"}}}, "argv"),
    ({"backends": {"x": {"type": "webhook", "url": "http://h", "timeout": "soon"}}}, "timeout"),
    # zero timeouts or deadlines would record a failed effect without a single attempt
    ({"backends": {"x": {"type": "webhook", "url": "http://h", "deadline": "0s"}}}, "x.deadline: must be longer"),
    ({"backends": {"x": {"type": "webhook", "url": "http://h", "timeout": 0}}}, "x.timeout: must be longer"),
    ({"backends": {"x": {"type": "webhook", "url": "http://h", "deadline": "1ms"}}}, "x.deadline: must be longer"),
    ({"backends": {"x": {"type": "command", "argv": ["true"], "timeout": "-1s"}}}, "x.timeout: must be longer"),
    ({"executor": {"concurrency": 0}}, "concurrency"),
    ({"executor": {"assignment": "magic"}}, "assignment"),
])
def test_bad_configs_are_one_line_errors(doc, msg):
    with pytest.raises(GatewatchError, match=re.escape(msg)):
        cfg = config_from_dict(doc)
        from nacl.signing import SigningKey
        cfg.build_backends(SigningKey(b"k" * 32))
