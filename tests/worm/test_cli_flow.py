"""The operator flow through the CLI: `worm run`, two `witness` processes, `evidence --collect`, `verify`."""
from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime import kafka, topics
from gatewatch.streams.runtime.keys import load_signing_key
from tests.worm import factory

pytestmark = pytest.mark.integration


def test_cli_flow(kafka_bootstrap, topic_prefix, tmp_path, capsys, monkeypatch):
    keys = factory.keys(tmp_path)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_KEYS_DIR=keys, GATEWATCH_LOG_LEVEL="WARNING")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("GATEWATCH_KEYS_DIR", keys)
    p = kafka.producer(kafka_bootstrap)
    for kind, v in factory.records(load_signing_key("decider", keys), 10, load_signing_key("executor", keys)):
        p.produce(topics.topic(kind), key=b"k", value=orjson.dumps(v))
    p.flush(10)
    db = str(tmp_path / "w.db")
    gw = [sys.executable, "-m", "gatewatch"]
    # the witnesses start once the sink has published its checkpoints: a witness idles out once it
    # has read its topic to the end, so started beside a sink still importing on a loaded host it
    # found nothing yet and left before the first checkpoint (3 of 4 runs under -n 2)
    sink = subprocess.Popen(gw + ["worm", "run", "--db", db, "--exit-when-idle", "3"], env=env, stderr=subprocess.PIPE)
    _, err = sink.communicate(timeout=90)
    assert sink.returncode == 0, err.decode()[-1500:]
    procs = [subprocess.Popen(gw + ["witness", "--name", n, "--state", str(tmp_path / f"{n}.json"),
                                    "--exit-when-idle", "5"], env=env, stderr=subprocess.PIPE)
             for n in ("witness-2", "witness-3")]
    for pr in procs:
        _, err = pr.communicate(timeout=90)
        assert pr.returncode == 0, err.decode()[-1500:]
    out = str(tmp_path / "bundle.tar.gz")
    assert main(["evidence", "--db", db, "--out", out, "--collect"]) == 0
    assert main(["verify", out, "--trusted-keys", keys]) == 0
    printed = capsys.readouterr().out
    assert "witnesses witness-2, witness-3" in printed and "10 action permits valid" in printed
