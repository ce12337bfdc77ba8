"""`gatewatch executor`: run the rollback executor (permits checked, effects once, receipts chained)."""
from __future__ import annotations

import logging
import os
import signal
import threading

import click
import orjson

from gatewatch.streams.runtime.brokers import kafka_bootstrap
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.logs import log_event, setup_json_logging
from gatewatch.streams.runtime.ops_http import OpsServer


def ops_host() -> str:
    """The executor's HTTP bind: its own setting, GATEWATCH_EXECUTOR_HTTP_HOST (default 127.0.0.1).
    GATEWATCH_HTTP_HOST, the other workers' setting, never moves the listener of the process that
    holds the executor key."""
    return os.environ.get("GATEWATCH_EXECUTOR_HTTP_HOST") or "127.0.0.1"

@click.group()
def executor() -> None:
    """Carry out actions from the actions topic; write INTENT/RESULT/REFUSED receipts."""


@executor.command("run")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), required=True,
              help="Executor config (backends, routes), e.g. configs/executor.yml.")
@click.option("--ledger", "ledger_path", type=click.Path(dir_okay=False), required=True,
              help="SQLite ledger of this instance (created if missing); keep it across restarts.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Serve /metrics, /healthz, /readyz on 127.0.0.1:PORT (0 = any free port).")
@click.option("--exit-when-idle", "idle_s", type=click.FloatRange(min=0), default=None,
              help="Exit after this many seconds with nothing to do (batch runs, tests).")
@click.option("--new-ledger", is_flag=True,
              help="Accept a ledger that is not the one the committed offsets name (a lost volume): actions "
                   "past the commit point may run again (receivers dedupe by Idempotency-Key). Static "
                   "assignment checks this at every start.")
def executor_run(config_path, ledger_path, metrics_port, idle_s, new_ledger) -> None:
    """Consume actions until SIGTERM/SIGINT (or idle), executing each permitted action exactly once."""
    from gatewatch.sinks.executor.config import load_config
    from gatewatch.sinks.executor.worker import ExecutorWorker

    setup_json_logging()
    log = logging.getLogger("gatewatch.executor")
    cfg = load_config(config_path)
    cfg.build_backends(cfg.signing_key())  # fail fast on keys and backends, before waiting for Kafka
    cfg.trusted_keys()
    crash = os.environ.get("GATEWATCH_EXECUTOR_CRASH_AFTER_EFFECTS")  # fault injection for tests
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with kafka_bootstrap() as bs:
        worker = ExecutorWorker(cfg, ledger_path, bs, crash_after_effects=int(crash) if crash else None,
                                new_ledger=new_ledger)
        ops = None
        if metrics_port is not None:
            ops = OpsServer(metrics_port, ready=lambda: worker.ready, registry=worker.metrics.registry,
                            host=ops_host()).start()
            log_event(log, "ops endpoints", port=ops.port)
        try:
            stats = worker.run(stop, idle_s)
        finally:
            if ops:
                ops.stop()
    click.echo(orjson.dumps(stats, option=orjson.OPT_SORT_KEYS).decode())


@executor.command("verify")
@click.option("--ledger", "ledger_path", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--keys-dir", default=None, help="Where executor.pub is (default: $GATEWATCH_KEYS_DIR).")
def executor_verify(ledger_path, keys_dir) -> None:
    """Check the ledger's receipt chain: every id, signature and prev link, no gaps."""
    from gatewatch.processors.signing import key_id
    from gatewatch.sinks.executor.ledger import Ledger
    from gatewatch.sinks.executor.receipts import verify_chain
    from gatewatch.streams.runtime.keys import load_verify_key

    vk = load_verify_key("executor", keys_dir)
    led = Ledger(ledger_path, seal=lambda body: body)
    try:
        receipts = [orjson.loads(r.body) for r in led.receipts_after(0, limit=10**9)]
        counts = led.counts()
    finally:
        led.close()
    why = verify_chain(receipts, {key_id(vk): vk})
    if why:
        raise GatewatchError(f"receipt chain broken: {why}")
    click.echo(f"ok: {len(receipts)} receipts chained; actions {counts}")


commands = [executor]
