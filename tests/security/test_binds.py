"""Issue 19, item 10 (listeners): the executor has its own bind setting; compose publishes on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

import yaml

from gatewatch.streams.cli.executor import ops_host

ROOT = Path(__file__).resolve().parents[2]


def test_gatewatch_http_host_does_not_move_the_executor(monkeypatch):
    monkeypatch.setenv("GATEWATCH_HTTP_HOST", "0.0.0.0")
    monkeypatch.delenv("GATEWATCH_EXECUTOR_HTTP_HOST", raising=False)
    assert ops_host() == "127.0.0.1"
    monkeypatch.setenv("GATEWATCH_EXECUTOR_HTTP_HOST", "10.0.0.5")  # control: its own setting moves it
    assert ops_host() == "10.0.0.5"


def test_compose_publishes_only_on_loopback():
    compose = yaml.safe_load((ROOT / "docker/compose.yml").read_text())
    published = [(name, p) for name, svc in compose["services"].items() for p in svc.get("ports") or []]
    assert published, "compose publishes the UI, Prometheus and Kafka for the host"
    for name, p in published:
        assert str(p).startswith("127.0.0.1:"), f"{name} publishes {p} on every interface"
    ex = compose["services"]["executor"]["environment"]
    assert ex["GATEWATCH_EXECUTOR_HTTP_HOST"] == "0.0.0.0" and ex["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
