"""`gatewatch serve` and `gatewatch gate status` as an operator runs them: real subprocesses, a real
broker, real HTTP(S); a restart rematerializes everything from the compacted topic."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import orjson
import pytest

from gatewatch.streams.app.serve.materialize import wait_until
from tests.serve.helpers import gate, http, publish

pytestmark = pytest.mark.integration


def _env(bootstrap: str) -> dict:
    return dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap)


class ServeProc:
    def __init__(self, bootstrap: str, *args: str, cafile: str | None = None):
        self.cafile = cafile
        self.proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "serve", "--port", "0", *args],
                                     env=_env(bootstrap), stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()
        m = re.search(r"(https?://\S+)", line)
        assert m, f"no URL in serve's first line: {line!r} (rc={self.proc.poll()})"
        self.url = m.group(1).replace("0.0.0.0", "127.0.0.1")
        assert wait_until(lambda: self._ready(), 60), "serve never became ready"

    def _ready(self) -> bool:
        try:
            return http("GET", self.url + "/readyz", cafile=self.cafile)[0] == 200
        except OSError:
            return False

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(20)
        self.proc.stderr.close()
        return rc


def gate_status(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gatewatch", "gate", "status", *args], env=_env(bootstrap),
                          capture_output=True, text=True, timeout=120)


def test_serve_restart_rematerializes_everything_and_gate_status_exit_codes(kafka_bootstrap, topic_prefix):
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass", ts=1), gate("checkout", "1.6.0", "fail", ts=2),
                              gate("search", "2.0.0", "pending", missing=("latency_p95_ms",)),
                              gate("cart", "1.0.0", "pending"), ("cart@1.0.0", None)])
    s = ServeProc(kafka_bootstrap)
    try:
        before = http("GET", s.url + "/v1/gates")[1]["gates"]
        assert [(g["scope"], g["release"]) for g in before] == [("checkout", "1.5.0"), ("checkout", "1.6.0"),
                                                                ("search", "2.0.0")]
        r = gate_status(kafka_bootstrap, "checkout", "--release", "1.5.0", "--url", s.url)
        assert r.returncode == 0 and r.stdout.startswith("checkout@1.5.0: PASS"), r
        r = gate_status(kafka_bootstrap, "checkout", "--url", s.url)  # latest: 1.6.0
        assert r.returncode == 1 and "checkout@1.6.0: FAIL" in r.stdout and "failed: err5xx fired" in r.stdout
        r = gate_status(kafka_bootstrap, "search", "--url", s.url, "--json")
        assert r.returncode == 3 and orjson.loads(r.stdout)["missing"] == ["latency_p95_ms"]
        r = gate_status(kafka_bootstrap, "cart", "--url", s.url)  # tombstoned
        assert r.returncode == 4 and "unknown scope 'cart'" in r.stderr
    finally:
        assert s.stop() == 0
    s2 = ServeProc(kafka_bootstrap)  # a new process: everything again, from the topic alone
    try:
        assert http("GET", s2.url + "/v1/gates")[1]["gates"] == before
    finally:
        s2.stop()
    r = gate_status(kafka_bootstrap, "checkout", "--url", s2.url)  # serve is gone
    assert r.returncode == 5 and r.stderr.startswith("gatewatch: error: cannot ask")
    # without --url: the gates topic read directly, same answers
    r = gate_status(kafka_bootstrap, "search")
    assert r.returncode == 3 and "missing signals: latency_p95_ms" in r.stdout
    assert gate_status(kafka_bootstrap, "checkout", "--release", "1.5.0").returncode == 0
    assert gate_status(kafka_bootstrap, "checkout", "--release", "0.0.1").returncode == 4
    r = gate_status(kafka_bootstrap, "bad scope")
    assert r.returncode == 2 and "whitespace" in r.stderr
    assert gate_status(kafka_bootstrap).returncode == 2


def test_serve_refuses_non_loopback_without_token_in_one_line(kafka_bootstrap, tmp_path):
    r = subprocess.run([sys.executable, "-m", "gatewatch", "serve", "--host", "0.0.0.0"], env=_env(kafka_bootstrap),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "gatewatch: error: refusing to bind 0.0.0.0: a non-loopback address needs a bearer token (--token-file)"]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = subprocess.run([sys.executable, "-m", "gatewatch", "serve", "--token-file", str(empty)],
                       env=_env(kafka_bootstrap), capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "must hold one non-empty token" in r.stderr and "Traceback" not in r.stderr


def test_tls_and_token_on_a_non_loopback_bind(kafka_bootstrap, topic_prefix, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    token = tmp_path / "token"
    token.write_text("t0ken-abc\n")
    publish(kafka_bootstrap, [gate("checkout", "1.5.0", "pass")])
    s = ServeProc(kafka_bootstrap, "--host", "0.0.0.0", "--token-file", str(token), "--tls-cert", str(cert),
                  "--tls-key", str(key), cafile=str(cert))
    try:
        url = s.url
        assert url.startswith("https://")
        assert http("GET", url + "/v1/gates/checkout", cafile=str(cert))[0] == 401
        code, doc = http("GET", url + "/v1/gates/checkout", token="t0ken-abc", cafile=str(cert))
        assert code == 200 and doc["verdict"] == "pass"
        with pytest.raises(OSError):  # plain HTTP to the TLS port gets no answer
            http("GET", url.replace("https", "http") + "/healthz")
        assert http("GET", url + "/healthz", cafile=str(cert))[0] == 200  # still serving after that
        r = subprocess.run([sys.executable, "-m", "gatewatch", "gate", "status", "checkout", "--url", url,
                            "--token-file", str(token)], env=dict(_env(kafka_bootstrap), GATEWATCH_SERVE_CA=str(cert)),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "PASS" in r.stdout, r
    finally:
        s.stop()
