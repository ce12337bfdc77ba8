"""Issue 19, item 8: values no user means are refused with one clear line; controls pass."""
from __future__ import annotations

import pytest
from nacl.signing import SigningKey

from gatewatch.processors.policy import PolicyError
from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.policy_files import compose


def _policy(text: str):
    return compose([("project.yml", text)])


RULE = "abort_rules:\n  - id: r1\n    when: \"{when}\"\n    action: rollback\n"


@pytest.mark.parametrize("text,want", [
    ("slo:\n  latency_p95_ms:\n    window: -5m\n", "slo.latency_p95_ms.window must be more than 0"),
    ("slo:\n  latency_p95_ms:\n    window: 0s\n", "slo.latency_p95_ms.window must be more than 0"),
    ("signals:\n  step: -10s\n", "signals.step must be more than 0"),
    ("signals:\n  rum_window: 0s\n", "signals.rum_window must be more than 0"),
    ("signals:\n  lateness: -1s\n", "signals.lateness must be at least 0"),
    ("signals:\n  gauge_window: 1e400s\n", "signals.gauge_window is not a duration"),
    ("signals:\n  cdc_window: 9999d\n", "at most 366d"),
    ("signals:\n  bootstrap_resamples: -3\n", "signals.bootstrap_resamples"),
    ("slo:\n  availability:\n    by_service:\n      checkout: .inf\n", "availability target must be a percentage"),
    ("slo:\n  availability:\n    target: .nan\n", "availability target must be a percentage"),
    (RULE.format(when="err5xx_rate >= 1e400"), "not a finite number"),
    (RULE.format(when="latency_p95_ms > 1e300ms"), "not a finite number"),
])
def test_policy_values_no_user_means_are_refused(text, want):
    with pytest.raises(PolicyError) as e:
        _policy(text)
    msg = str(e.value)
    assert want in msg and msg.startswith("project.yml:") and "\n" not in msg, msg


@pytest.mark.parametrize("text", [
    "slo:\n  latency_p95_ms:\n    window: 5m\n",
    "signals:\n  step: 10s\n  lateness: 0s\n  bootstrap_resamples: 200\n",
    "slo:\n  availability:\n    by_service:\n      checkout: 99.9\n",
    RULE.format(when="err5xx_rate >= 0.001 for 5m"),
])
def test_policy_controls_compose(text):
    assert _policy(text).hash


def _cfg(doc):
    return config_from_dict(doc, "executor.yml")


@pytest.mark.parametrize("doc,want", [
    ({"executor": {"commit_interval": "-1s"}}, "executor.commit_interval: must be at least 0"),
    ({"executor": {"intent_publish_timeout": "-5s"}}, "executor.intent_publish_timeout: must be at least 0"),
    ({"backends": {"cmd": {"type": "command", "argv": ["true"], "timeout": "-1s"}}}, "backends.cmd.timeout"),
    ({"backends": {"h": {"type": "webhook", "url": "https://x.example", "backoff_base": "-1s"}}},
     "backends.h.backoff_base: must be at least 0"),
    ({"executor": {"partitions": [-1]}}, "executor.partitions must be"),
    ({"executor": {"partitions": ["a"]}}, "executor.partitions must be"),
    ({"executor": {"partitions": [True]}}, "executor.partitions must be"),
    ({"executor": {"partitions": []}}, "executor.partitions must be"),
    ({"backends": {"h": {"type": "webhook", "url": "file:///etc/passwd"}}}, "only http:// and https://"),
    ({"backends": {"h": {"type": "webhook", "url": "gopher://x.example/"}}}, "only http:// and https://"),
    ({"backends": {"h": {"type": "webhook", "url": "https:///nohost"}}}, "only http:// and https://"),
    ({"backends": {"h": {"type": "webhook", "url": "https://$DEPLOY_HOST/hook"}}}, "'$' is not expanded"),
    ({"backends": {"h": {"type": "webhook", "url": "https://x.example/?t=${SASL_PASSWORD}"}}}, "'$' is not expanded"),
])
def test_executor_values_no_user_means_are_refused(doc, want):
    with pytest.raises(GatewatchError) as e:
        _cfg(doc).build_backends(SigningKey(b"e" * 32))
    msg = str(e.value)
    assert want in msg and msg.startswith("executor.yml") or msg.startswith("backends."), msg
    assert want in msg and "\n" not in msg


def test_executor_controls_load(monkeypatch):
    monkeypatch.setenv("DEPLOY_HOST", "evil.example")
    cfg = _cfg({"executor": {"partitions": [0, 2], "commit_interval": "0s"},
                "backends": {"h": {"type": "webhook", "url": "https://deploy.example/hook?x=1"}}})
    assert cfg.partitions == [0, 2]
    assert cfg.build_backends(SigningKey(b"e" * 32))["h"].url == "https://deploy.example/hook?x=1"


def test_url_env_is_the_explicit_way_and_is_validated(monkeypatch):
    doc = {"backends": {"h": {"type": "webhook", "url_env": "DEPLOY_URL"}}, "default_backend": "h"}
    monkeypatch.setenv("DEPLOY_URL", "file:///etc/passwd")
    with pytest.raises(GatewatchError, match="only http:// and https://"):
        _cfg(doc).build_backends(SigningKey(b"e" * 32))
    monkeypatch.delenv("DEPLOY_URL")
    with pytest.raises(GatewatchError, match="url_env DEPLOY_URL is not set"):
        _cfg(doc).build_backends(SigningKey(b"e" * 32))
    monkeypatch.setenv("DEPLOY_URL", "https://deploy.example/hook")
    assert _cfg(doc).build_backends(SigningKey(b"e" * 32))["h"].url == "https://deploy.example/hook"
