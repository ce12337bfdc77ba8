"""One Apache Kafka broker for all the xdist workers of a pytest run (pytest_plugin.py).

Each worker used to start its own: four JVMs on two cores, each ~10 CPU-seconds to start and a few
percent of a core while idle. The xdist controller starts one instead, in a thread that lives as
long as the broker (the broker dies with the thread that started it, apache._die_with_parent), and
hands its address and a status file to every worker. A worker waits for "ready" in the file (the
first run on a machine also downloads the jars), or fails its Kafka tests with the controller's
error. Tests are isolated on it as before: fresh topic prefixes, and consumer groups named after
the prefix (topics.group_id). Tests that kill or restart a broker start their own."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from gatewatch.streams.runtime.brokers.apache import ApacheKafka
from gatewatch.streams.runtime.errors import GatewatchError

# test brokers do little work: C1-compiled code starts and idles on less CPU (bench/idle_cost.py:
# start 0.58-0.70x, idle 0.80-0.85x of the full JIT's); benchmarks and demo --engine kafka keep the full JIT
TEST_JVM_FLAGS = ("-XX:TieredStopAtLevel=1",)
WAIT_S = 900  # the first run on a fresh machine resolves the jars from Maven Central


class SharedBroker:
    def __init__(self, status_dir: Path):
        self.broker = ApacheKafka(jvm_flags=TEST_JVM_FLAGS)
        self.status = status_dir / "shared-kafka.status"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gatewatch-shared-kafka", daemon=True)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def start(self) -> "SharedBroker":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self.broker.start()
            self._say(f"ready {self.broker.describe()}: {self.broker.running_version()}")
        except Exception as e:  # noqa: BLE001 (any failure is every worker's answer)
            self._say(f"failed {e}")
            return
        self._stop.wait()
        self.broker.stop()

    def _say(self, text: str) -> None:
        tmp = self.status.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.status)  # a worker never reads half a line

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)


def wait_shared(status: Path, timeout_s: float = WAIT_S) -> str:
    """The controller's description of the shared broker once it answers, else GatewatchError."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = status.read_text() if status.exists() else ""
        if text.startswith("ready "):
            return text.removeprefix("ready ")
        if text.startswith("failed "):
            raise GatewatchError(f"the shared Kafka broker did not start: {text.removeprefix('failed ')}")
        time.sleep(0.2)
    raise GatewatchError(f"the shared Kafka broker was not ready within {timeout_s:.0f}s")
