"""`gatewatch serve` and `gatewatch gate status` as an operator runs them: real subprocesses, a real
broker, real HTTP(S); a restart rematerializes everything from the compacted topic."""
from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

from tests.serve.helpers import ServeProc, gate, http, publish, serve_env

pytestmark = pytest.mark.integration


def gate_status(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gatewatch", "gate", "status", *args], env=serve_env(bootstrap),
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
    assert r.returncode == 2 and "contains ' '" in r.stderr
    assert gate_status(kafka_bootstrap).returncode == 2


def test_serve_refuses_non_loopback_without_token_in_one_line(kafka_bootstrap, tmp_path):
    r = subprocess.run([sys.executable, "-m", "gatewatch", "serve", "--host", "0.0.0.0"], env=serve_env(kafka_bootstrap),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "gatewatch: error: refusing to bind 0.0.0.0: a non-loopback address needs a bearer token (--token-file)"]
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = subprocess.run([sys.executable, "-m", "gatewatch", "serve", "--token-file", str(empty)],
                       env=serve_env(kafka_bootstrap), capture_output=True, text=True, timeout=60)
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
                            "--token-file", str(token)], env=dict(serve_env(kafka_bootstrap), GATEWATCH_SERVE_CA=str(cert)),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "PASS" in r.stdout, r
    finally:
        s.stop()


def test_gate_status_that_could_not_ask_is_exit_5_in_one_line():
    """Exit 1 means the gate failed: a controller reading the code took a broker outage (an internal
    error, exit 1, under hundreds of librdkafka reconnect lines) or a typo in --url for a failed gate."""
    for env, args in ((dict(serve_env("127.0.0.1:1")), ["checkout"]),
                      (dict(serve_env("127.0.0.1:1")), ["checkout", "--url", "banana"])):
        r = subprocess.run([sys.executable, "-m", "gatewatch", "gate", "status", *args], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 5 and r.stdout == "", r
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("gatewatch: error: "), r.stderr
