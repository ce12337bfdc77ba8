"""`gatewatch doctor`: is Kafka reachable, are the topics there, does a record round-trip?"""
from __future__ import annotations

import time
import uuid

import click
from confluent_kafka.admin import NewTopic

from gatewatch.streams.runtime import topics as catalogue
from gatewatch.streams.runtime.brokers import kafka_bootstrap
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import admin, consumer, create_topics, producer


def round_trip(bootstrap: str, pfx: str | None = None, timeout_s: float = 30.0) -> float:
    """Produce one record to a scratch topic and read it back; returns seconds taken."""
    name = f"{catalogue.prefix() if pfx is None else pfx}doctor-{uuid.uuid4().hex[:8]}"
    a = admin(bootstrap)
    for fut in a.create_topics([NewTopic(name, 1, 1)], request_timeout=15).values():
        fut.result()
    t0 = time.monotonic()
    payload = uuid.uuid4().hex.encode()
    p = producer(bootstrap)
    p.produce(name, key=b"doctor", value=payload)
    if p.flush(10):
        raise GatewatchError(f"could not produce to {name}")
    c = consumer(bootstrap, f"gatewatch-doctor-{uuid.uuid4().hex[:8]}")
    try:
        c.subscribe([name])
        while time.monotonic() - t0 < timeout_s:
            m = c.poll(0.5)
            if m is not None and m.error() is None and m.value() == payload:
                return time.monotonic() - t0
        raise GatewatchError(f"record produced to {name} did not come back within {timeout_s:.0f}s")
    finally:
        c.close()
        for fut in a.delete_topics([name], request_timeout=15).values():
            try:
                fut.result()
            except Exception:  # a broker without DeleteTopics keeps a 1-record scratch topic; harmless
                pass


@click.command()
@click.option("--create/--no-create", default=True, show_default=True, help="Create missing catalogue topics.")
def doctor(create: bool) -> None:
    """Check the Kafka setup end to end: connect, provision topics, round-trip a record.

    Uses KAFKA_BOOTSTRAP_SERVERS, or starts (and stops) an embedded broker.
    """
    with kafka_bootstrap() as bs:
        click.echo(f"kafka      ok   {bs}")
        if create:
            states = create_topics(bs)
            created = sum(1 for s in states.values() if s == "created")
            click.echo(f"topics     ok   {len(states)} in catalogue, {created} created now")
        missing = [catalogue.topic(s.name) for s in catalogue.CATALOGUE
                   if catalogue.topic(s.name) not in admin(bs).list_topics(timeout=10).topics]
        if missing:
            raise GatewatchError(f"missing topics: {', '.join(missing)} (run: gatewatch topics create)")
        secs = round_trip(bs)
        click.echo(f"roundtrip  ok   produced and consumed one record in {secs * 1000:.0f} ms")


commands = [doctor]
