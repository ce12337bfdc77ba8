"""Per-event faust agent for bench/ingest.py: decode each record and update a Table (the design
the ingest stage replaces). Prints events/s from first to last event, then exits."""
import os
import sys
import time

import faust
import orjson

N = int(os.environ["BENCH_N"])
from gatewatch.streams.runtime.kafka import faust_app_kwargs  # noqa: E402

app = faust.App(os.environ["APP_ID"], **faust_app_kwargs(os.environ["FAUST_BROKER"]), store="memory://",
                broker_session_timeout=6.0, broker_heartbeat_interval=1.0, topic_partitions=3,
                producer_max_batch_size=1, web_enabled=False,
                datadir=os.environ["DATADIR"])  # else faust makes <app id>-data/ in the working directory
src = app.topic(os.environ["IN_TOPIC"], value_serializer="raw", key_serializer="raw")
counts = app.Table("counts", default=int, partitions=3)
seen = {"n": 0, "t0": None}


@app.agent(src)
async def count(stream):
    async for value in stream:
        if seen["t0"] is None:
            seen["t0"] = time.monotonic()
        doc = orjson.loads(value)
        counts[doc["service"]] += 1 if doc["status"] < 500 else 0
        seen["n"] += 1
        if seen["n"] >= N:
            dt = time.monotonic() - seen["t0"]
            print(f"FAUST_RATE {N / dt:.1f}", flush=True)
            os._exit(0)


if __name__ == "__main__":
    sys.argv[1:] = ["--datadir", os.environ["DATADIR"], "worker", "--without-web", "-l", "warn"]
    app.main()
