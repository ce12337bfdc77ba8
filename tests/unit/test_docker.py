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
        cmd = cmd.get_command(click.Context(cmd), word)
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


def test_grafana_and_serve_are_provisioned_on_loopback():
    services = COMPOSE["services"]
    for name, port in (("grafana", "3000"), ("serve", "8088")):
        assert services[name]["ports"] == [f"127.0.0.1:{port}:{port}"], f"{name} must publish on 127.0.0.1 only"
    mounts = {m.split(":")[1]: ROOT / "docker" / m.split(":")[0] for m in services["grafana"]["volumes"]}
    for target in ("/etc/grafana/provisioning/datasources", "/etc/grafana/provisioning/dashboards",
                   "/var/lib/grafana/dashboards"):
        assert mounts[target].is_dir(), target
    ds = yaml.safe_load((mounts["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    prov = yaml.safe_load((mounts["/etc/grafana/provisioning/dashboards"] / "gatewatch.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert (mounts["/var/lib/grafana/dashboards"] / "gatewatch.json").is_file()
    argv = services["serve"]["command"]
    cmd = _resolve(argv)
    opts = {o for p in cmd.params for o in p.opts}
    assert {w for w in argv if w.startswith("--")} <= opts
    # a non-loopback bind needs a token: the one-shot `topics` service writes the file serve reads
    assert argv[argv.index("--token-file") + 1] in services["topics"]["entrypoint"][-1]
    prom = yaml.safe_load((ROOT / "docker/prometheus.yml").read_text())
    targets = {t for sc in prom["scrape_configs"] for cfg in sc["static_configs"] for t in cfg["targets"]}
    assert "serve:8088" in targets
