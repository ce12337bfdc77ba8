"""`gatewatch demo`: the README's main command."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import click
import yaml

from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.app.simulate import load_scenario_spec

SCENARIOS = "healthy_canary:80m,traffic_spike"


def _scenario_list(text: str) -> list[tuple[str, str | None]]:
    out = []
    for item in text.split(","):
        name, _, duration = item.strip().partition(":")
        if name:
            out.append((name, duration or None))
    return out


def executor_config(path: Path, webhook_url: str) -> None:
    """Aborts and promotions go to the deploy webhook, hooks and gate steps to dry-run."""
    path.write_text(yaml.safe_dump({
        "executor": {"assignment": "static", "concurrency": 4, "intent_publish_timeout": "5s"},
        "backends": {"dry-run": {"type": "dry-run"},
                     "deploy": {"type": "webhook", "url": webhook_url, "timeout": "2s", "deadline": "20s"}},
        "routes": [{"kind": "abort", "backend": "deploy"}, {"kind": "hook", "backend": "dry-run"},
                   {"kind": "promote", "backend": "deploy"}, {"kind": "gate", "backend": "dry-run"}],
        "default_backend": "dry-run",
    }, sort_keys=False))


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def run_demo(out: Path, speed: float, policy_dir: Path, scenarios: list[tuple[str, str | None]]) -> dict:
    from gatewatch.processors.scenarios import Scenario
    from gatewatch.streams.runtime.broker import kafka_bootstrap
    from gatewatch.streams.app.demo import ABORT_ACTIONS, DeployWebhook, Supervisor, TopicCounter
    from gatewatch.streams.runtime.keys import init_keys, load_verify_key
    from gatewatch.streams.runtime.kafka import create_topics, producer
    from gatewatch.streams.app.simulate import load_scenario_spec, publish

    t_start = time.monotonic()
    if out.exists():
        shutil.rmtree(out)
    (out / "logs").mkdir(parents=True)
    keys = out / "keys"
    init_keys(keys)
    prefix = f"demo{uuid.uuid4().hex[:6]}."
    os.environ["GATEWATCH_TOPIC_PREFIX"] = prefix
    with kafka_bootstrap() as bs:
        _say(f"[1/6] Kafka at {bs}; topics under '{prefix}'")
        create_topics(bs, prefix)
        hook = DeployWebhook(load_verify_key("executor", keys), load_verify_key("decider", keys))
        executor_config(out / "executor.yml", hook.url)
        env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=bs, GATEWATCH_TOPIC_PREFIX=prefix,
                   GATEWATCH_KEYS_DIR=str(keys), GATEWATCH_LOG_LEVEL="WARNING")
        sup = Supervisor(env, out / "logs")
        sup.add_pipeline(out, idle_s=5, executor_idle_s=6, sink_idle_s=8, checkpoint_interval=2,
                         worker_args=("--policy", str(policy_dir)))
        _say(f"[2/6] workers: {', '.join(sup.workers)}; deploy webhook at {hook.url}")
        for name in sup.workers:
            sup.start(name)
        watch = TopicCounter(bs)
        published = [0]
        publishing = threading.Event()
        publishing.set()
        errors: list[BaseException] = []

        class _Count:
            def update(self, n):
                published[0] += n

        counter = _Count()

        def publisher():
            try:
                t0 = int(time.time() * 1000)
                for name, duration in scenarios:
                    spec = load_scenario_spec(name)
                    sc = Scenario(spec, start_ms=t0, duration=duration)
                    _say(f"[3/6] scenario {name}: {sc.duration_ms // 60000} min of event time at {speed:g}x")
                    publish(sc, producer(bs, **{"linger.ms": 20}), speed, progress=counter)
                    t0 = sc.start_ms + sc.duration_ms
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
                    click.echo(("\r" + line) if tty else line, err=True, nl=not tty)
                    last_line = time.monotonic()
                if time.monotonic() - t_start > 600:
                    raise GatewatchError("demo did not drain within 10 minutes")
                time.sleep(0.3)
        finally:
            sup.stop_all()
            time.sleep(0.5)
            watch.stop.set()
            hook.stop()
        if tty:
            click.echo("", err=True)
        _say("[4/6] pipeline drained: " + watch.line(published[0]))

        bundle, report = out / "evidence.tar.gz", out / "report.html"
        signals_file = out / "signals.ndjson"
        subprocess.run([sys.executable, "-m", "gatewatch", "tail", "signals", "--idle", "2"],
                       env=env, stdout=open(signals_file, "wb"), check=True)
        _say("[5/6] exporting evidence")
        evid = [sys.executable, "-m", "gatewatch", "evidence", "--db", str(out / "worm.db"), "--out", str(bundle),
                "--policy", str(policy_dir), "--collect"]
        r = subprocess.run(evid, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise GatewatchError(f"evidence export failed: {r.stderr.strip()[-800:]}")
        # the report shows the bundle's verification, so it is built from a first export and then
        # added to the final one (same log state: same entries, checkpoint and root)
        from gatewatch.streams.cli.report import build_report
        build_report(str(bundle), str(signals_file), str(report))
        r = subprocess.run(evid + ["--include", str(report)], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise GatewatchError(f"evidence export failed: {r.stderr.strip()[-800:]}")
        v = subprocess.run([sys.executable, "-m", "gatewatch", "verify", str(bundle)], env=env,
                           capture_output=True, text=True)
        _say("[6/6] offline verification: " + ((v.stdout + v.stderr).strip().splitlines() or ["(no output)"])[-1])

    rollbacks = [c for c in hook.calls if c["action"].get("action") in ABORT_ACTIONS]
    permitted = [c for c in rollbacks if c["permit_ok"]]
    return {"bundle": bundle, "report": report if report.exists() else None, "verified": v.returncode == 0,
            "verify_output": v.stdout + v.stderr, "webhook_calls": len(hook.calls), "rollbacks": rollbacks,
            "permitted_rollbacks": permitted, "actions": watch.kinds, "seconds": time.monotonic() - t_start,
            "out": out}


@click.command()
@click.option("--out", "out_dir", default="out/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where keys, state, logs, the evidence bundle and the report go (replaced each run).")
@click.option("--speed", type=float, default=240.0, show_default=True,
              help="Event-time compression: seconds of scenario time per wall second.")
@click.option("--policy", "policy_dir", default="configs/policies", show_default=True,
              type=click.Path(exists=True, file_okay=False))
@click.option("--scenarios", default=SCENARIOS, show_default=True,
              help="Comma-separated NAME[:DURATION] (names from configs/scenarios or YAML paths), played in order.")
def demo(out_dir, speed, policy_dir, scenarios) -> None:
    """Run the whole data plane end to end on this machine and prove what it decided.

    Starts the embedded broker (unless KAFKA_BOOTSTRAP_SERVERS is set), every worker, and a
    local deploy webhook; plays healthy_canary then traffic_spike; ends with a verified
    evidence bundle and an HTML report.
    """
    from gatewatch.streams.runtime.policy_files import load_policy_or_fail as _load
    _load(policy_dir)
    for name, _d in _scenario_list(scenarios):
        load_scenario_spec(name)  # unknown names fail before anything starts
    res = run_demo(Path(out_dir), speed, Path(policy_dir), _scenario_list(scenarios))
    kinds = ", ".join(f"{k} x{n}" for k, n in sorted(res["actions"].items())) or "none"
    click.echo(f"\ngatewatch demo finished in {res['seconds']:.0f} s")
    click.echo(f"  actions:            {kinds}")
    click.echo(f"  rollbacks executed: {len(res['permitted_rollbacks'])} with a valid permit "
               f"(webhook calls: {res['webhook_calls']})")
    click.echo(f"  evidence bundle:    {res['bundle']}  ({'verified' if res['verified'] else 'VERIFY FAILED'})")
    click.echo(f"  HTML report:        {res['report'] or 'not built'}")
    click.echo(f"  logs:               {res['out'] / 'logs'}")
    if not res["verified"]:
        raise GatewatchError("evidence bundle did not verify:\n" + res["verify_output"][-1500:])
    if not res["permitted_rollbacks"]:
        raise GatewatchError("no rollback was executed with a valid permit")


commands = [demo]
