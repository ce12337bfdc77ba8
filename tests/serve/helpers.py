"""Gate records from the real builders, published to the gates topic; a small HTTP client."""
from __future__ import annotations

import functools
import os
import re
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import orjson

from gatewatch.processors.policy.gatestatus import gate_status, missing_reasons
from gatewatch.streams.app.serve.materialize import wait_until
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import producer
from gatewatch.streams.runtime.policy_files import load_policy_dir

POLICY = load_policy_dir("configs/policies")
T0 = 1_790_000_000_000


def gate(scope: str, release: str, verdict: str, ts: int = T0, missing: tuple = ()) -> dict:
    """A gate record exactly as decide publishes it (processors.policy.gatestatus.gate_status)."""
    state = {"pass": "CANARY_READY", "fail": "PLAN_OK", "pending": "EXEC_FAST_OK"}[verdict]
    actions = [{"id": "a" * 64, "kind": "abort", "action": "rollback", "rule": "err5xx", "ts": "x"}] \
        if verdict == "fail" else []
    unit = {"gate": {"state": state}, "actions": actions, "since": ts - 60_000, "steps": 3}
    view = {name: [] for name in missing}
    reasons = missing_reasons(view, missing, 1000) if missing else []
    return gate_status(POLICY, scope, release, unit, ts, reasons, 0)


def publish(bootstrap: str, records: list) -> None:
    """records: gate dicts, or (key, None) tombstones, to the gates topic (key scope@release)."""
    p = producer(bootstrap)
    for r in records:
        if isinstance(r, tuple):
            p.produce(topics.topic("gates"), key=r[0].encode(), value=r[1])
        else:
            p.produce(topics.topic("gates"), key=f"{r['scope']}@{r['release']}".encode(), value=orjson.dumps(r))
    assert p.flush(30) == 0


def publish_raw(bootstrap: str, logical: str, items: list[tuple[bytes, bytes | None]]) -> None:
    p = producer(bootstrap)
    for k, v in items:
        p.produce(topics.topic(logical), key=k, value=v)
    assert p.flush(30) == 0


def http(method: str, url: str, body=None, token: str | None = None, raw: bytes | None = None,
         headers: dict | None = None, cafile: str | None = None) -> tuple[int, dict | str]:
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(req, timeout=15, context=ctx) as r:
            return r.status, _decode(r.read(), r.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as e:
        return e.code, _decode(e.read(), e.headers.get("Content-Type", ""))


def _decode(body: bytes, ctype: str):
    return orjson.loads(body) if ctype.startswith("application/json") else body.decode()


@functools.lru_cache(maxsize=1)
def demo_gate_records() -> tuple:
    """healthy_canary (release 1.5.0) then traffic_spike (1.6.0) replayed through the real processors:
    every gate record decide would publish, in order (key, value)."""
    from tests.policy.test_releases import two_releases
    return tuple((k, v) for t, k, v in two_releases() if t == topics.topic("gates"))


def serve_env(bootstrap: str) -> dict:
    return dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap)


class ServeProc:
    def __init__(self, bootstrap: str, *args: str, cafile: str | None = None):
        self.cafile = cafile
        self.proc = subprocess.Popen([sys.executable, "-m", "gatewatch", "serve", "--port", "0", *args],
                                     env=serve_env(bootstrap), stderr=subprocess.PIPE, text=True)
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

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(20)
        self.proc.stderr.close()
