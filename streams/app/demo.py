"""`gatewatch demo`: the whole data plane on one machine, end to end, in a few minutes.

Broker (embedded unless KAFKA_BOOTSTRAP_SERVERS; Apache Kafka with engine="kafka") -> topics and
keys -> a local webhook standing in for the deploy system -> workers as real subprocesses (ingest,
signals, decide, executor, WORM sink, two witnesses) -> healthy_canary then traffic_spike published
with event-time compression, ending at the current time -> drain -> evidence bundle -> HTML
report -> offline verify. The bundle carries span coverage (over a seeded OTLP trace sample the demo
writes, processors.scenario_traces), the schemas of the input topics (read back after the drain), the
cardinality of the signals and the drill of every hook and control (`gatewatch drill`, replayed
in-process beside the pipeline: about 20 s of CPU). `gatewatch serve` runs beside the workers on 127.0.0.1 (a free port) and the gates
it answers are printed with a curl line each once the pipeline drained.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import orjson
import yaml

from gatewatch.processors.scenarios import Scenario
from gatewatch.streams.app.serve import Serve
from gatewatch.streams.app.serve.store import split_key
from gatewatch.streams.app.simulate import ending_now, load_scenario_spec, publish
from gatewatch.streams.app.supervisor import Supervisor
from gatewatch.streams.app.webhook import DeployWebhook
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.brokers import kafka_bootstrap
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import create_topics, producer
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, load_verify_key

ABORT_ACTIONS = ("rollback", "freeze", "block_release", "rollback_fe")
SCENARIOS = "healthy_canary:80m,traffic_spike"


def scenario_list(text: str) -> list[tuple[str, str | None]]:
    out = []
    for item in text.split(","):
        name, _, duration = item.strip().partition(":")
        if name:
            out.append((name, duration or None))
    return out


RECIPIENT = "recipient-deploy"  # the deploy webhook's ack key in the demo's key dir (pinned for verify too)


def executor_config(path: Path, webhook_url: str, ack_pub: Path | None = None) -> None:
    """Aborts and promotions go to the deploy webhook (its signed acks required when ack_pub is
    given), hooks and gate steps to dry-run."""
    deploy = {"type": "webhook", "url": webhook_url, "timeout": "2s", "deadline": "20s"}
    if ack_pub is not None:
        deploy["ack"] = {"public_key_file": str(ack_pub), "required": True}
    path.write_text(yaml.safe_dump({
        "executor": {"assignment": "static", "concurrency": 4, "intent_publish_timeout": "5s"},
        "backends": {"dry-run": {"type": "dry-run"}, "deploy": deploy},
        "routes": [{"kind": "abort", "backend": "deploy"}, {"kind": "hook", "backend": "dry-run"},
                   {"kind": "promote", "backend": "deploy"}, {"kind": "gate", "backend": "dry-run"}],
        "default_backend": "dry-run",
    }, sort_keys=False))


def run_demo(out: Path, speed: float, policy_dir: Path, scenarios: list[tuple[str, str | None]],
             say=print, engine: str | None = None) -> dict:

    t_start = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True)
    keys = out / "keys"
    init_keys(keys)
    init_keys(keys, roles=(RECIPIENT,))  # the deploy system's own key: it signs its acknowledgements
    prefix = f"demo{uuid.uuid4().hex[:6]}."
    os.environ["GATEWATCH_TOPIC_PREFIX"] = prefix
    with kafka_bootstrap(engine) as bs:
        say(f"[1/6] Kafka at {bs}; topics under '{prefix}'")
        create_topics(bs, prefix)
        hook = DeployWebhook(load_verify_key("executor", keys), load_verify_key("decider", keys),
                             ack_key=load_signing_key(RECIPIENT, keys))
        gates = Serve(bs, port=0).start()
        say(f"      gatewatch serve at {gates.url} (try: curl -s {gates.url}/v1/gates)")
        executor_config(out / "executor.yml", hook.url, keys / f"{RECIPIENT}.pub")
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bs, GATEWATCH_TOPIC_PREFIX=prefix,
                   GATEWATCH_KEYS_DIR=str(keys), GATEWATCH_LOG_LEVEL="WARNING")
        with open(out / "logs" / "drill.log", "wb") as drill_log:
            drill = subprocess.Popen([sys.executable, "-m", "gatewatch", "drill", "--policy", str(policy_dir),
                                      "--out", str(out / "drill.json"), "-q"], env=env, stdout=subprocess.DEVNULL, stderr=drill_log)
        sup = Supervisor(env, out / "logs")
        sup.add_pipeline(out, idle_s=5, executor_idle_s=6, sink_idle_s=8, checkpoint_interval=2,
                         worker_args=("--policy", str(policy_dir)))
        say(f"[2/6] workers: {', '.join(sup.workers)}; deploy webhook at {hook.url}")
        for name in sup.workers:
            sup.start(name)
        watch = TopicCounter(bs)
        published = [0]
        event_span = [0, 0]  # the published event time [start, end) in ms
        publishing = threading.Event()
        publishing.set()
        errors: list[BaseException] = []

        class _Count:
            def update(self, n):
                published[0] += n

        counter = _Count()

        def publisher():
            try:
                specs = _specs(scenarios)
                t0 = ending_now(sum(Scenario(spec, duration=d).duration_ms for _, spec, d in specs))
                event_span[0] = t0
                for name, spec, duration in specs:
                    sc = Scenario(spec, start_ms=t0, duration=duration)
                    say(f"[3/6] scenario {name}: {sc.duration_ms // 60000} min of event time at {speed:g}x")
                    publish(sc, producer(bs, **{"linger.ms": 20}), speed, progress=counter)
                    t0 = event_span[1] = sc.start_ms + sc.duration_ms
            except BaseException as e:  # surfaced in the main thread
                errors.append(e)
            finally:
                publishing.clear()

        pub = threading.Thread(target=publisher, daemon=True)
        pub.start()
        tty = sys.stderr.isatty()
        last_line = 0.0
        try:
            while True:
                sup.tend(publishing.is_set())
                if errors:
                    raise GatewatchError(f"publishing failed: {errors[0]}")
                if not publishing.is_set() and sup.done():
                    break
                if time.monotonic() - last_line > (0.5 if tty else 5):
                    line = watch.line(published[0])
                    say(("\r" + line) if tty else line, end="" if tty else "\n")
                    last_line = time.monotonic()
                if time.monotonic() - t_start > 600:
                    raise GatewatchError("demo did not drain within 10 minutes")
                time.sleep(0.3)
        finally:
            sup.stop_all()
            time.sleep(0.5)
            watch.stop.set()
            hook.stop()
            if sys.exc_info()[0] is not None:  # an error: serve and the drill stop with the rest
                gates.stop()
                drill.kill()
        if tty:
            say("")
        say("[4/6] pipeline drained: " + watch.line(published[0]))
        gate_list = served_gates(gates, bs)
        for g in gate_list:
            say(f"      gate {g['scope']}@{g['release']}: {g['verdict']} ({g['state']})   "
                f"curl -s '{gates.url}/v1/gates/{g['scope']}?release={g['release']}'")
        gates.stop()

        bundle, report = out / "evidence.tar.gz", out / "report.html"
        signals_file = out / "signals.ndjson"
        tails = {}  # the signals and the input topics, read back in parallel
        for t in ("signals", "metrics", "rum", "cdc"):
            with open(signals_file if t == "signals" else out / f"inputs-{t}.ndjson", "wb") as f:
                tails[t] = subprocess.Popen([sys.executable, "-m", "gatewatch", "tail", t, "--idle", "2"], env=env,
                                            stdout=f)
        n_traces = write_demo_traces(out / "demo-traces-otlp.ndjson", [spec for _, spec, _ in _specs(scenarios)],
                                     *event_span)
        for t, p in tails.items():
            if p.wait() != 0:
                raise GatewatchError(f"gatewatch tail {t} failed")
        # 1: a hook FAILed, which the drill table shows; an error exits 1 too, without a report
        if drill.wait() not in (0, 1) or not (out / "drill.json").is_file():
            raise GatewatchError(f"drill failed: see {out / 'logs' / 'drill.log'}")
        say(f"[5/6] exporting evidence (span coverage over {n_traces} seeded demo traces, the drill of every hook)")
        evid = [sys.executable, "-m", "gatewatch", "evidence", "--db", str(out / "worm.db"), "--out", str(bundle),
                "--policy", str(policy_dir), "--collect", "--signals", str(signals_file), "--drill", str(out / "drill.json")]
        for name in ("inputs-metrics", "inputs-rum", "inputs-cdc", "demo-traces-otlp"):
            evid += ["--inputs", str(out / f"{name}.ndjson")]
        r = subprocess.run(evid, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise GatewatchError(f"evidence export failed: {r.stderr.strip()[-800:]}")
        # the report shows the bundle's verification, so it is built from a first export and then
        # added to the final one (same log state: same entries, checkpoint and root)
        from gatewatch.sinks.report.build import build_report
        build_report(str(bundle), str(signals_file), str(report), trusted_keys=str(keys))
        r = subprocess.run(evid + ["--include", str(report)], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise GatewatchError(f"evidence export failed: {r.stderr.strip()[-800:]}")
        # --replay: every action re-derived from its attestation (pre-state + inputs) too
        v = subprocess.run([sys.executable, "-m", "gatewatch", "verify", str(bundle), "--trusted-keys", str(keys),
                            "--require-evidence", "--replay"], env=env, capture_output=True, text=True)
        say("[6/6] offline verification: " + ((v.stdout + v.stderr).strip().splitlines() or ["(no output)"])[-1])

    rollbacks = [c for c in hook.calls if c["action"].get("action") in ABORT_ACTIONS]
    permitted = [c for c in rollbacks if c["permit_ok"]]
    return {"bundle": bundle, "report": report if report.exists() else None, "verified": v.returncode == 0,
            "verify_output": v.stdout + v.stderr, "webhook_calls": len(hook.calls), "rollbacks": rollbacks,
            "permitted_rollbacks": permitted, "actions": watch.kinds, "seconds": time.monotonic() - t_start,
            "out": out, "gates": gate_list, "serve_url": gates.url,
            "refused": Counter(r.get("reason") for r in watch.receipts if r.get("type") == "REFUSED"),
            "event_minutes": (event_span[1] - event_span[0]) // 60_000}


def _specs(scenarios: list[tuple[str, str | None]]) -> list[tuple[str, dict, str | None]]:
    return [(name, load_scenario_spec(name), duration) for name, duration in scenarios]


def write_demo_traces(path: Path, specs: list[dict], start_ms: int, end_ms: int) -> int:
    """A seeded OTLP trace sample (one trace a second) over the published event time, as kcat -J
    envelopes of the Collector's traces topic. Written, not published: that topic is not prefixed
    (shared by every run on the broker) and ingest would read it."""
    from gatewatch.processors.scenario_traces import trace_records
    services = list({s["name"]: s for spec in specs for s in spec.get("services", [])}.values()) or [{"name": "checkout"}]
    topic = topics.otlp_topic() or topics.OTLP_DEFAULT_TOPIC
    n = 0
    with open(path, "wb") as f:
        for i, (svc, doc) in enumerate(trace_records(services, start_ms, max(end_ms - start_ms, 60_000))):
            f.write(orjson.dumps({"topic": topic, "partition": 0, "offset": i, "key": svc,
                                  "payload": orjson.dumps(doc).decode()}) + b"\n")
            n += 1
    return n


def served_gates(svc: Serve, bootstrap: str, timeout_s: float = 20.0) -> list[dict]:
    """The gates serve answers once it holds every key the gates topic has now."""
    from gatewatch.streams.runtime.kafka import read_to_end
    keys = {split_key(m.key()) for m in read_to_end(bootstrap, topics.topic("gates"))}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not keys <= {(g["scope"], g["release"]) for g in svc.store.gates()}:
        time.sleep(0.1)
    return svc.store.gates()


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
