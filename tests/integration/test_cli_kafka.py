"""`gatewatch broker` and `gatewatch topics` against real brokers."""
import os
import signal
import subprocess
import sys

import pytest

from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import admin

pytestmark = pytest.mark.integration


def test_topics_create_is_idempotent(kafka_bootstrap, monkeypatch, capsys):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    pfx = "idem."
    assert main(["topics", "create", "--prefix", pfx]) == 0
    first = capsys.readouterr().out
    assert main(["topics", "create", "--prefix", pfx]) == 0
    second = capsys.readouterr().out
    names = {topics.topic(s.name, pfx) for s in topics.CATALOGUE}
    assert names <= set(admin(kafka_bootstrap).list_topics(timeout=10).topics)
    assert all(line.startswith("exists") for line in second.strip().splitlines())
    assert len(second.strip().splitlines()) == len(names) == len(first.strip().splitlines())


def test_broker_command_serves_and_stops(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "broker"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        bootstrap = proc.stdout.readline().strip()
        assert bootstrap.startswith("127.0.0.1:"), proc.stderr.read()
        md = admin(bootstrap).list_topics(timeout=10).topics
        assert topics.topic("metrics", "gw.") in md  # provisioned on start
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
