"""`gatewatch demo`: the whole data plane on one machine, end to end, in a few minutes.

Broker (embedded unless KAFKA_BOOTSTRAP_SERVERS) -> topics and keys -> a local webhook standing in
for the deploy system -> workers as real subprocesses (ingest, signals, decide, executor, WORM
sink, two witnesses) -> healthy_canary then traffic_spike published with event-time compression
-> drain -> evidence bundle -> HTML report -> offline verify.

Workers stop themselves when idle; one that goes idle while its upstream still runs (nothing to do
yet) is started again, so the pipeline drains stage after stage once the scenarios end.
"""
from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
from nacl.signing import VerifyKey

from gatewatch.processors.signing import check_permit, key_id
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError

ABORT_ACTIONS = ("rollback", "freeze", "block_release", "rollback_fe")


class DeployWebhook:
    """A stand-in deploy system on 127.0.0.1: accepts an action only if the executor signed the body
    and the action's permit is valid for the decider key."""

    def __init__(self, executor_key: VerifyKey, decider_key: VerifyKey):
        self.calls: list[dict] = []
        self.lock = threading.Lock()
        trusted = {key_id(decider_key): decider_key}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sig = self.headers.get("X-Gatewatch-Signature", "")
                try:
                    executor_key.verify(body, base64.b64decode(sig))
                    action = orjson.loads(body)
                    permit_problem = check_permit(action, trusted, int(time.time() * 1000))
                except Exception as e:  # bad signature or body: refuse
                    permit_problem = f"bad request: {type(e).__name__}"
                    action = {}
                with outer.lock:
                    outer.calls.append({"action": action, "permit_ok": permit_problem is None,
                                        "problem": permit_problem,
                                        "idempotency_key": self.headers.get("Idempotency-Key")})
                self.send_response(200 if permit_problem is None else 403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/deploy"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()


@dataclass
class Worker:
    name: str
    argv: list[str]
    upstream: tuple[str, ...]
    proc: subprocess.Popen | None = None
    starts: int = 0
    log: Path | None = None


@dataclass
class Supervisor:
    env: dict
    logdir: Path
    workers: dict[str, Worker] = field(default_factory=dict)

    def add(self, name: str, argv: list[str], upstream: tuple[str, ...] = ()) -> None:
        self.workers[name] = Worker(name, argv, upstream, log=self.logdir / f"{name}.log")

    def add_pipeline(self, out: Path, *, idle_s: float, executor_idle_s: float, sink_idle_s: float,
                     checkpoint_interval: float, worker_args: tuple = (), ingest_args: tuple = ()) -> None:
        """The demo's workers, wired upstream to downstream: ingest, signals, decide, executor
        (config out/executor.yml), WORM sink, two witnesses; state and databases under `out`.
        The demo and the chaos tests differ only in these timeouts and extra arguments."""
        st = str(out / "state")
        stage = ["--state-dir", st, "--exit-when-idle", str(idle_s), *worker_args]
        self.add("ingest", ["worker", "ingest", *stage, *ingest_args])
        self.add("signals", ["worker", "signals", *stage], ("ingest",))
        self.add("decide", ["worker", "decide", *stage], ("signals",))
        self.add("executor", ["executor", "run", "--config", str(out / "executor.yml"), "--ledger",
                              str(out / "executor.db"), "--exit-when-idle", str(executor_idle_s)], ("decide",))
        self.add("worm", ["worm", "run", "--db", str(out / "worm.db"), "--exit-when-idle", str(sink_idle_s),
                          "--checkpoint-interval", str(checkpoint_interval)], ("decide", "executor"))
        for w in ("witness-1", "witness-2"):
            self.add(w, ["witness", "--name", w, "--state", str(out / f"{w}.json"),
                         "--exit-when-idle", str(sink_idle_s)], ("worm",))

    def start(self, name: str) -> None:
        w = self.workers[name]
        w.proc = subprocess.Popen([sys.executable, "-m", "gatewatch", *w.argv], env=self.env,
                                  stdout=subprocess.DEVNULL, stderr=open(w.log, "ab"), stdin=subprocess.DEVNULL)
        w.starts += 1

    def alive(self, name: str) -> bool:
        w = self.workers[name]
        return w.proc is not None and w.proc.poll() is None

    def tend(self, publishing: bool) -> None:
        """Restart idle-exited workers whose input may still come; fail on crashes."""
        for w in self.workers.values():
            rc = w.proc.poll() if w.proc else None
            if rc is None:
                continue
            if rc != 0:
                tail = w.log.read_text(errors="replace")[-1500:] if w.log.exists() else ""
                raise GatewatchError(f"worker {w.name} exited with {rc}; log {w.log}:\n{tail}")
            if publishing or any(self.alive(u) for u in w.upstream):
                self.start(w.name)

    def done(self) -> bool:
        return not any(self.alive(n) for n in self.workers)

    def stop_all(self) -> None:
        for w in self.workers.values():
            if w.proc and w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers.values():
            if w.proc:
                try:
                    w.proc.wait(15)
                except subprocess.TimeoutExpired:
                    w.proc.kill()


class TopicCounter:
    """Counts records on the output topics for the live progress line."""

    def __init__(self, bootstrap: str):
        from gatewatch.streams.runtime.kafka import consumer
        self.c = consumer(bootstrap, f"gatewatch-demo-watch-{uuid.uuid4().hex[:6]}")
        names = {topics.topic(t): t for t in ("signals", "actions", "receipts", "checkpoints", "dlq")}
        self.names = names
        self.c.subscribe(list(names))
        self.counts = {t: 0 for t in names.values()}
        self.kinds: dict[str, int] = {}
        self.actions: list[dict] = []
        self.receipts: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            for m in self.c.consume(1000, 0.3):
                if m.error():
                    continue
                t = self.names[m.topic()]
                self.counts[t] += 1
                if t == "actions":
                    a = orjson.loads(m.value())
                    self.actions.append(a)
                    k = f"{a.get('kind')}:{a.get('action')}"
                    self.kinds[k] = self.kinds.get(k, 0) + 1
                elif t == "receipts":
                    self.receipts.append(orjson.loads(m.value()))
        self.c.close()

    def line(self, published: int) -> str:
        c = self.counts
        aborts = sum(n for k, n in self.kinds.items() if k.startswith("abort:"))
        hooks = sum(n for k, n in self.kinds.items() if k.startswith("hook:"))
        results = sum(1 for r in self.receipts if r.get("type") == "RESULT")
        return (f"published {published:>7}  signals {c['signals']:>6}  actions {c['actions']:>3} "
                f"(abort {aborts}, hook {hooks})  executed {results:>3}  checkpoints {c['checkpoints']:>3}  "
                f"dlq {c['dlq']}")
