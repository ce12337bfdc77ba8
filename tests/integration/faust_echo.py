"""A minimal faust app for the round-trip test: upper-cases records from IN_TOPIC to OUT_TOPIC.

Run as `python -m tests.integration.faust_echo worker --without-web` with
FAUST_BROKER, IN_TOPIC, OUT_TOPIC and APP_ID set.
"""
import os

import faust

from gatewatch.streams.runtime.kafka import faust_app_kwargs  # noqa: E402  (broker URL + the same security settings)

app = faust.App(
    os.environ.get("APP_ID", "gw-faust-echo"),
    **faust_app_kwargs(os.environ["FAUST_BROKER"]),
    store="memory://",
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    topic_partitions=1,
    topic_allow_declare=False,
    producer_max_batch_size=1,  # tansu: every write its own batch so high watermarks stay exact
    web_enabled=False,
)
src = app.topic(os.environ["IN_TOPIC"], value_serializer="raw", key_serializer="raw")
dst = app.topic(os.environ["OUT_TOPIC"], value_serializer="raw", key_serializer="raw")


@app.agent(src)
async def echo(stream):
    async for event in stream.events():
        await dst.send(key=event.key, value=event.value.upper())


if __name__ == "__main__":
    app.main()
