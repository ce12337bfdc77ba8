"""The kit's app factory and SignalInput without a broker: the project's security settings reach
faust, and what ingest would dead-letter is refused before it is sent, in one line."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import faust
import pytest

from gatewatch.streams.ext import SignalInput, app
from gatewatch.streams.runtime.errors import GatewatchError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "payment_declines"
SASL_ENV = {"KAFKA_BOOTSTRAP_SERVERS": "10.0.0.1:9093,10.0.0.2:9093", "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "KAFKA_SASL_USERNAME": "agent", "KAFKA_SASL_PASSWORD": "pw"}


def test_app_takes_broker_and_security_settings_from_the_same_variables_as_gatewatch():
    kit = app("decl-test", env=SASL_ENV)
    assert [str(u) for u in kit.conf.broker] == ["kafka://10.0.0.1:9093", "kafka://10.0.0.2:9093"]
    creds = kit.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value, creds.protocol.value) == \
        ("agent", "pw", "SCRAM-SHA-256", "SASL_SSL")
    assert kit.conf.broker_client_id == "decl-test" and not kit.conf.web_enabled
    assert not kit.conf.topic_allow_declare  # gatewatch's topics are created by gatewatch
    assert app("x", env={"KAFKA_BOOTSTRAP_SERVERS": "h:1"}, web_enabled=True).conf.web_enabled  # overrides win


def test_app_without_a_broker_says_so():
    with pytest.raises(GatewatchError, match="KAFKA_BOOTSTRAP_SERVERS"):
        app("x", env={})


def test_signal_input_topic_and_refusals(monkeypatch):
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", "t1.")
    kit = app("x", env={"KAFKA_BOOTSTRAP_SERVERS": "h:1"})
    sink = SignalInput(kit, "payment_tech_declined", "payment-declines")
    assert sink.topic.get_topic_name() == "t1.metrics"
    s = sink.sample("checkout", 1, 1_767_225_600_000, "canary", "2.0.0")
    assert (s.type, s.name, s.value, s.ts, s.cohort, s.release) == \
        ("gauge", "payment_tech_declined", 1.0, 1_767_225_600_000, "canary", "2.0.0")
    for bad in [("check out", 1.0, 1), ("checkout", float("nan"), 1), ("checkout", True, 1),
                ("checkout", 1.0, 0), ("checkout", 1.0, 1.5)]:
        with pytest.raises(ValueError):
            sink.sample(*bad)
    with pytest.raises(ValueError):
        sink.sample("checkout", 1.0, 1, cohort="")
    with pytest.raises(GatewatchError, match="not a gauge name"):
        SignalInput(kit, "9bad", "payment-declines")
    with pytest.raises(GatewatchError, match="source"):
        SignalInput(kit, "ok", "")


def test_the_example_counts_only_technical_declines():
    spec = importlib.util.spec_from_file_location("declines", EXAMPLE / "declines.py")
    declines = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(declines)
    assert [declines.technical_decline(c) for c in ("00", "51", "54", "59", "96", "91", "30", "zz")] == \
        [False, False, False, False, True, True, True, False]
    assert declines.technical_decline(None) and declines.technical_decline("00", timed_out=True)


def test_the_example_policy_composes_with_the_default_policies():
    from gatewatch.streams.runtime.policy_files import compose, policy_files
    sources = [(p.name, p.read_text()) for p in policy_files("configs/policies")]
    pol = compose(sources + [("payments.yml", (EXAMPLE / "policy" / "payments.yml").read_text())])
    rule = next(r for r in pol.rules if r.id == "payment_tech_declines")
    assert rule.action == "rollback" and pol.signal_units["payment_tech_decline_ratio"] == "ratio"
