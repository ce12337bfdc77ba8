"""`gatewatch broker` and `gatewatch topics`."""
from __future__ import annotations

import signal
import threading

import click
import orjson

from gatewatch.streams.runtime import topics as catalogue
from gatewatch.streams.runtime.brokers import ENGINES, kafka_bootstrap, make_broker
from gatewatch.streams.runtime.kafka import admin, create_topics


@click.command()
@click.option("--engine", type=click.Choice(ENGINES), default=None,
              help="tansu: the embedded broker (no Java); kafka: Apache Kafka from Maven jars (Java 17). "
                   "Default: $GATEWATCH_ENGINE or tansu.")
@click.option("--nodes", type=click.IntRange(1, 9), default=1, show_default=True,
              help="Kafka engine: nodes in the cluster (3 gives replication factor 3, min.insync.replicas 2).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port of the (first) node on 127.0.0.1 (default: a free one).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Kafka engine: keep the logs here across restarts (default: a temporary directory).")
@click.option("--topics/--no-topics", "with_topics", default=True, show_default=True,
              help="Provision the topic catalogue once the broker is up.")
def broker(engine, nodes, port, data_dir, with_topics) -> None:
    """Run a local broker until Ctrl-C: embedded tansu, or Apache Kafka (single node or cluster).

    Prints the bootstrap address on stdout; export it as KAFKA_BOOTSTRAP_SERVERS
    for the other commands.
    """
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    b = make_broker(engine, nodes=nodes, port=port, data_dir=data_dir)
    if data_dir and b.engine != "kafka":
        raise click.UsageError("--data-dir needs --engine kafka (tansu keeps its data in memory)")
    with b:
        if with_topics:
            create_topics(b.bootstrap, replication=b.replication_factor)
        click.echo(b.bootstrap)
        export = f"KAFKA_BOOTSTRAP_SERVERS={b.bootstrap}"
        if b.engine == "tansu":  # it holds each fetch for the whole wait (brokers/tansu.py)
            export += " GATEWATCH_FETCH_WAIT_MS=50"
        click.echo(f"# {b.describe()}: export {export}   (Ctrl-C stops it)", err=True)
        while not stop.wait(0.5):
            if b.proc is None or b.proc.poll() is not None:
                raise click.ClickException(f"broker exited: {b.log_tail()}")


@click.group()
def topics() -> None:
    """Provision and list the topic catalogue."""


@topics.command("create")
@click.option("--prefix", default=None, help="Topic name prefix (default: $GATEWATCH_TOPIC_PREFIX or 'gw.').")
@click.option("--partitions", type=click.IntRange(1, 1024), default=None,
              help="Override the partition count of every multi-partition topic.")
@click.option("--replication-factor", type=click.IntRange(1, 16), default=None,
              help="Default: $GATEWATCH_REPLICATION_FACTOR or 1.")
def topics_create(prefix, partitions, replication_factor) -> None:
    """Create every catalogue topic that does not exist yet (idempotent)."""
    with kafka_bootstrap() as bs:
        for name, state in create_topics(bs, prefix, partitions, replication_factor).items():
            click.echo(f"{state:8} {name}")


@topics.command("list")
@click.option("--prefix", default=None)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
def topics_list(prefix, as_json) -> None:
    """Show the catalogue and, when a broker is reachable, each topic's partitions there."""
    with kafka_bootstrap() as bs:
        md = admin(bs).list_topics(timeout=10).topics
        for spec in catalogue.CATALOGUE:
            name = catalogue.topic(spec.name, prefix)
            parts = len(md[name].partitions) if name in md else None
            row = {"topic": name, "key": spec.key, "value": spec.value, "partitions": parts,
                   "cleanup": spec.cleanup, "retention_ms": spec.retention_ms, "flow": spec.flow}
            if as_json:
                click.echo(orjson.dumps(row).decode())
            else:
                click.echo(f"{name:22} {str(parts or '-'):>3}  key={spec.key:22} {spec.flow}")


commands = [broker, topics]
