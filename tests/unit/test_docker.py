"""docker/compose.yml cannot run here (no Docker engine); keep it honest by reading it."""
from pathlib import Path

import click
import yaml

from gatewatch.streams.cli.main import cli
from gatewatch.streams.runtime import topics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker/compose.yml").read_text())
WORKERS = {"ingest", "signals", "decide", "executor", "worm", "witness-1", "witness-2", "trajectories"}


def _resolve(argv):
    """The click command an argv names, or None."""
    cmd = cli
    for word in argv:
        if word.startswith("-"):
            break
        if not isinstance(cmd, click.Group):
            break
        cmd = cmd.commands.get(word)
        if cmd is None:
            return None
    return cmd


def test_services_present():
    services = COMPOSE["services"]
    assert {"kafka", "kafka-ui", "prometheus", "topics"} | WORKERS <= set(services)
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert services["kafka-ui"]["environment"]["KAFKA_CLUSTERS_0_BOOTSTRAPSERVERS"] == "kafka:9092"


def test_every_worker_command_exists_and_is_scraped():
    prom = yaml.safe_load((ROOT / "docker/prometheus.yml").read_text())
    targets = {t for sc in prom["scrape_configs"] for cfg in sc["static_configs"] for t in cfg["targets"]}
    for name in WORKERS:
        svc = COMPOSE["services"][name]
        assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        argv = svc["command"]
        assert _resolve(argv) is not None, f"{name}: no CLI command {argv}"
        cmd = _resolve(argv)
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        for word in argv:
            if word.startswith("--"):
                assert word in opts, f"{name}: {cmd.name} has no option {word}"
        assert f"{name}:9100" in targets


def test_names_every_catalogue_topic():
    assert set(COMPOSE["x-gatewatch-topics"]) == {topics.topic(s.name, "gw.") for s in topics.CATALOGUE}
