"""One stage as this process: JSON logs, the ops endpoint (/metrics, /healthz, /readyz = assigned and
running), Kafka (KAFKA_BOOTSTRAP_SERVERS or a broker of its own) and the worker loop."""
from __future__ import annotations

from gatewatch.streams.runtime.brokers import kafka_bootstrap
from gatewatch.streams.runtime.lifecycle import StopFlag
from gatewatch.streams.runtime.logs import setup_json_logging
from gatewatch.streams.runtime.ops_http import OpsServer
from gatewatch.streams.runtime.worker import Stage, Worker


def run_stage(stage: Stage, *, metrics_port: int | None = None, assignment: str = "static",
              partitions: list[int] | None = None, exit_when_idle_s: float | None = None,
              stop: StopFlag | None = None) -> None:
    stop = stop if stop is not None else StopFlag()  # first: a SIGTERM during start-up stops it cleanly
    setup_json_logging()
    holder: list[Worker] = []
    ops = OpsServer(metrics_port, ready=lambda: bool(holder) and holder[0].ready).start() \
        if metrics_port is not None else None
    try:
        with kafka_bootstrap() as bs:
            w = Worker(stage, bs, assignment=assignment, partitions=partitions, stop=stop,
                       exit_when_idle_s=exit_when_idle_s)
            holder.append(w)
            if not stop:
                w.run()
    finally:
        if ops:
            ops.stop()
