"""The executor against a real broker and a real local webhook."""
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.processors.signing import key_id
from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.sinks.executor.receipts import verify_chain
from gatewatch.sinks.executor.worker import ExecutorWorker
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, load_verify_key
from gatewatch.streams.runtime.ops_http import OpsServer
from tests.executor.helpers import action_record, permitted
from tests.executor.kafka_io import produce_actions, read_receipts
from tests.executor.webhook_server import WebhookServer

pytestmark = pytest.mark.integration


def _config(keys_dir, url, assignment="static"):
    return config_from_dict({
        "executor": {"keys_dir": str(keys_dir), "group": "exec-test", "concurrency": 4, "assignment": assignment},
        "backends": {"hook": {"type": "webhook", "url": url, "timeout": "1s", "deadline": "2s"}},
        "routes": [{"kind": "abort", "backend": "hook"}],
    })


def test_worker_executes_in_scope_order_and_receipts_chain(kafka_bootstrap, topic_prefix, tmp_path):
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    decider = load_signing_key("decider", keys)
    good = [permitted(decider, action_record(i, scope=f"svc{i % 4}")) for i in range(40)]
    hooks = [permitted(decider, action_record(100 + i, scope="svc0", action="notify", kind="hook")) for i in range(3)]
    forged = permitted(SigningKey(b"x" * 32), action_record(200))
    produce_actions(kafka_bootstrap, good + hooks + [forged, b"not json", good[0]])
    with WebhookServer() as srv:
        worker = ExecutorWorker(_config(keys, srv.url), tmp_path / "ledger.db", kafka_bootstrap)
        stats = worker.run(threading.Event(), exit_when_idle_s=1.0)
    assert stats["executed"] == 43 and stats["refused"] == 2 and stats["duplicate"] == 1
    assert sorted(srv.keys) == sorted(r["id"] for r in good) and set(srv.keys.values()) == {1}
    for scope in ("svc0", "svc1", "svc2", "svc3"):  # strict order within a scope
        sent = [r["id"] for r in good if r["scope"] == scope]
        assert [q["key"] for q in srv.requests if q["key"] in set(sent)] == sent
    receipts = read_receipts(kafka_bootstrap, until=lambda rs: len({r["id"] for r in rs}) >= 88)
    vk = load_verify_key("executor", keys)
    assert verify_chain(receipts, {key_id(vk): vk}) is None
    by_type = {}
    for r in {r["id"]: r for r in receipts}.values():
        by_type.setdefault(r["type"], []).append(r)
    assert len(by_type["INTENT"]) == 43 and len(by_type["RESULT"]) == 43
    assert sorted(r["reason"] for r in by_type["REFUSED"]) == ["malformed_action", "unknown_key"]
    assert {r["backend"] for r in by_type["RESULT"] if r["kind"] == "hook"} == {"dry-run"}
    assert worker.metrics.executions.labels("rollback", "success")._value.get() == 40
    ops = OpsServer(0, registry=worker.metrics.registry).start()
    try:
        base = f"http://127.0.0.1:{ops.port}"
        text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
        assert urllib.request.urlopen(base + "/healthz", timeout=5).status == 200
    finally:
        ops.stop()
    for line in ('gatewatch_executor_executions_total{action="rollback",status="success"} 40.0',
                 'gatewatch_executor_refusals_total{reason="unknown_key"} 1.0',
                 'gatewatch_executor_duplicates_total 1.0', 'gatewatch_executor_attempts_total{backend="hook"} 40.0',
                 'gatewatch_executor_effect_duration_seconds_count{backend="hook"} 40.0'):
        assert line in text, line


def test_group_assignment_mode(kafka_bootstrap, topic_prefix, tmp_path):
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    decider = load_signing_key("decider", keys)
    good = [permitted(decider, action_record(i, scope=f"svc{i % 3}")) for i in range(6)]
    produce_actions(kafka_bootstrap, good)
    with WebhookServer() as srv:
        worker = ExecutorWorker(_config(keys, srv.url, "group"), tmp_path / "ledger.db", kafka_bootstrap)
        stats = worker.run(threading.Event(), exit_when_idle_s=2.0)
    assert stats["executed"] == 6 and sorted(srv.keys) == sorted(r["id"] for r in good)


def test_cli_stops_gracefully_on_sigterm(kafka_bootstrap, topic_prefix, tmp_path):
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    decider = load_signing_key("decider", keys)
    produce_actions(kafka_bootstrap, [permitted(decider, action_record(i)) for i in range(5)])
    (tmp_path / "executor.yml").write_text("executor: {group: sigterm}\n")
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "GATEWATCH_KEYS_DIR": str(keys)}
    proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "executor", "run", "--config",
                             str(tmp_path / "executor.yml"), "--ledger", str(tmp_path / "l.db"), "--metrics-port", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(read_receipts(kafka_bootstrap, timeout_s=0.5, quiet_s=0.2)) < 10:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-1000:]
    assert orjson.loads(out)["executed"] == 5
    assert b"ops endpoints" in err  # JSON logs on stderr name the metrics port
