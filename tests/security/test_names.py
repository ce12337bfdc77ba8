"""Issue 19, item 9: a name grammar for services (scopes), enforced at ingest (DLQ reason bad_name),
and a command backend that never runs a shell, never substitutes a bad name and passes an explicit
environment (no SASL password)."""
from __future__ import annotations

import sys

import orjson
import pytest

from gatewatch.processors.inputs import decode
from gatewatch.processors.names import valid_name, why_not
from gatewatch.processors.partials import PartitionAggregator
from gatewatch.sinks.executor.backends import CommandBackend
from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.streams.runtime.errors import GatewatchError

BAD = ["$(id)", "--help", "-x", "a" * 5000, "a b", "svc;rm -rf /", "`id`", "svc\n", "svc\x00", ".hidden",
       "/etc/passwd", "ünïcode", "svc|cat", "svc>out", "", "a" * 129, "svc$HOME", "svc'q", 'svc"q']
GOOD = ["checkout", "svc-a", "payments.v2", "ns/checkout", "db.table", "svc:8080", "A1", "a" * 128, "v2.0.0-rc.1"]


@pytest.mark.parametrize("name", GOOD)
def test_good_names(name):
    assert valid_name(name)


@pytest.mark.parametrize("name", BAD)
def test_bad_names_have_a_one_line_reason(name):
    assert not valid_name(name)
    assert "\n" not in why_not(name)


def _request(service):
    return orjson.dumps({"service": service, "status": 200, "latency_ms": 5, "ts": 1_800_000_000_000})


@pytest.mark.parametrize("name", [n for n in BAD if n])  # empty stays bad_value:service, as before
def test_ingest_dead_letters_bad_service_names(name):
    r = decode("metrics", None, _request(name), None)
    assert getattr(r, "reason", None) == "bad_name", r
    gauge = orjson.dumps({"type": "gauge", "service": name, "name": "invariant", "value": 1,
                          "ts": 1_800_000_000_000})
    assert getattr(decode("metrics", None, gauge, None), "reason", None) == "bad_name"


def test_ingest_bad_name_from_the_record_key_too():
    value = orjson.dumps({"status": 200, "latency_ms": 5, "ts": 1_800_000_000_000})
    assert decode("metrics", b"$(id)", value, None).reason == "bad_name"
    assert isinstance(decode("metrics", b"checkout", value, None), list)  # control


@pytest.mark.parametrize("name", ["$(id)", "--help", "a" * 5000])
def test_batch_hot_path_agrees(name):
    """The msgspec batch path (add_batch) rejects what the per-record path rejects, with bad_name."""
    agg = PartitionAggregator("metrics", 0)
    rejected = agg.add_batch([0, 1], [None, None], [_request(name), _request("checkout")], [None, None])
    assert [(o, r.reason) for o, r in rejected] == [(0, "bad_name")]


def test_control_good_name_is_ingested():
    assert isinstance(decode("metrics", None, _request("checkout"), None), list)


REC = {"id": "ab" * 32, "scope": "checkout", "action": "rollback", "kind": "abort"}


def _probe(tmp_path):
    """A command that writes its argv and environment as JSON."""
    out = tmp_path / "probe.json"
    script = ("import json, os, sys; json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, "
              f"open({str(out)!r}, 'w'))")
    return [sys.executable, "-c", script, "{scope}", "{action}"], out


def test_command_child_gets_an_allowlisted_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("GATEWATCH_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("RUNBOOK_REGION", "eu-1")
    argv, out = _probe(tmp_path)
    res = CommandBackend("cmd", argv, 20, env_allow=("RUNBOOK_REGION",)).execute(REC, b"{}", "k")
    assert res.status == "success", res
    seen = orjson.loads(out.read_bytes())
    assert seen["argv"] == ["checkout", "rollback"]
    assert "hunter2" not in str(seen["env"]) and seen["env"]["RUNBOOK_REGION"] == "eu-1"
    assert set(seen["env"]) <= {"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "TMPDIR", "RUNBOOK_REGION",
                                "GATEWATCH_ACTION_ID", "GATEWATCH_ACTION", "GATEWATCH_SCOPE", "GATEWATCH_KIND",
                                "GATEWATCH_IDEMPOTENCY_KEY", "GATEWATCH_ACTION_JSON", "LC_CTYPE", "PYTHONHOME"}


@pytest.mark.parametrize("scope", ["--help", "$(id)", "a" * 5000, "x;id"])
def test_command_refuses_to_substitute_a_bad_name(tmp_path, scope):
    argv, out = _probe(tmp_path)
    res = CommandBackend("cmd", argv, 20).execute(dict(REC, scope=scope), b"{}", "k")
    assert res.status == "failure" and res.detail.startswith("refused: bad_name (scope:") and not out.exists()


@pytest.mark.parametrize("argv", [["sh", "-c", "deploy {scope}"], ["/bin/bash", "-lc", "x"], ["env", "sh", "-c", "x"],
                                  ["/usr/bin/dash", "-c", "x"], ["{action}", "x"], ["busybox", "sh", "-c", "x"]])
def test_config_refuses_a_shell_command_string(argv):
    doc = {"backends": {"cmd": {"type": "command", "argv": argv}}}
    with pytest.raises(GatewatchError) as e:
        config_from_dict(doc, "executor.yml").build_backends(None)
    assert str(e.value).startswith("backends.cmd.argv:") and "no shell" in str(e.value)
    with pytest.raises(ValueError):
        CommandBackend("cmd", argv, 1)


def test_config_control_argv_and_env_list():
    doc = {"backends": {"cmd": {"type": "command", "argv": ["/usr/local/bin/runbook", "{action}", "{scope}"],
                                "env": ["RUNBOOK_REGION"]}}}
    b = config_from_dict(doc, "executor.yml").build_backends(None)["cmd"]
    assert b.env_allow == ("RUNBOOK_REGION",)
    with pytest.raises(GatewatchError, match="backends.cmd.env"):
        config_from_dict({"backends": {"cmd": {"type": "command", "argv": ["x"], "env": "PATH"}}},
                         "executor.yml").build_backends(None)
