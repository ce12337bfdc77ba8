"""A test on the shared broker waits for it outside its own timeout (streams/app/pytest_plugin.py
pytest_runtest_protocol): on a fresh machine the xdist controller first resolves the Kafka jars,
which can take longer than pytest-timeout's limit for one test. This runs a session whose "worker"
is told of a shared broker that answers "ready" only after the test's whole timeout has passed."""
from __future__ import annotations

import os
import subprocess
import sys

CONFTEST = '''
import threading, time
from pathlib import Path

STATUS = Path(__file__).parent / "shared-kafka.status"


def pytest_configure(config):
    config.workerinput = {"gatewatch_shared_kafka": ("127.0.0.1:9", str(STATUS))}


def pytest_runtestloop(session):  # right before the first test: a slow start cannot use up the wait
    def ready_later():
        time.sleep(3)  # the test's timeout is 1 s
        STATUS.write_text("ready a broker that took its time")
    threading.Thread(target=ready_later, daemon=True).start()
'''


def test_waiting_for_the_shared_broker_is_outside_the_test_timeout(tmp_path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_on_kafka.py").write_text(
        "def test_on_kafka(kafka_bootstrap):\n"
        "    assert kafka_bootstrap == '127.0.0.1:9'\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:randomly", "-p", "no:cacheprovider",
                        "--timeout", "1", "-c", "/dev/null", "--rootdir", str(tmp_path), str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**{k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
                            "GATEWATCH_TEST_BROKER": "kafka"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 passed" in r.stdout


def test_a_shared_broker_that_failed_is_every_kafka_tests_error(tmp_path):
    (tmp_path / "conftest.py").write_text(
        "from pathlib import Path\n"
        "def pytest_configure(config):\n"
        "    status = Path(__file__).parent / 'shared-kafka.status'\n"
        "    status.write_text('failed no java here')\n"
        "    config.workerinput = {'gatewatch_shared_kafka': ('127.0.0.1:9', str(status))}\n")
    (tmp_path / "test_on_kafka.py").write_text(
        "import pytest\n"
        "@pytest.mark.parametrize('i', range(2))\n"
        "def test_on_kafka(kafka_bootstrap, i):\n"
        "    pass\n"
        "def test_without_kafka():\n"
        "    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:randomly", "-p", "no:cacheprovider",
                        "-c", "/dev/null", "--rootdir", str(tmp_path), str(tmp_path)],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path,
                       env={**{k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
                            "GATEWATCH_TEST_BROKER": "kafka"})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed, 2 errors" in r.stdout, r.stdout
    assert r.stdout.count("the shared Kafka broker did not start: no java here") >= 2, r.stdout
