"""Baseline for bench/pipeline.py: a plain confluent-kafka consume + orjson loop in its own process.

    plain_consumer.py BOOTSTRAP TOPIC[,TOPIC...] WANT[,WANT...]

Reads until the last WANT records. Prints one JSON line per second and one as the count reaches
each WANT: consumed count, produce->consume latency samples, RSS, CPU seconds so far,
and its time.monotonic() (the system-wide clock, so the parent can time phases against it)."""
import os
import sys
import time
import uuid

import orjson
from confluent_kafka import Consumer

bs, topic_list = sys.argv[1], sys.argv[2].split(",")
milestones = sorted(int(x) for x in sys.argv[3].split(","))
want = milestones[-1]
from gatewatch.streams.runtime.kafka import client_config, fetch_wait_ms  # noqa: E402  (the workers' settings)

c = Consumer({**client_config(bs), "group.id": f"plain-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
              "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
              # the workers' settings, so the baseline is like for like
              "fetch.wait.max.ms": fetch_wait_ms(), "fetch.queue.backoff.ms": 50})
# assign, not subscribe: no group join, so it reads live from the first second like the workers
from confluent_kafka import OFFSET_BEGINNING, TopicPartition  # noqa: E402

c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for topic in topic_list
          for p in c.list_topics(topic, timeout=10).topics[topic].partitions])
n, lat, t_first, last_report = 0, [], None, time.monotonic()
while n < want:
    for m in c.consume(5000, 0.5):
        if m.error():
            continue
        if t_first is None:
            t_first = time.monotonic()
        orjson.loads(m.value())
        n += 1
        if n % 50 == 0:
            produced = dict(m.headers() or []).get("produced_ms")
            if produced:
                lat.append(time.time() * 1000 - int(produced))
    reached = bool(milestones) and n >= milestones[0]
    while milestones and n >= milestones[0]:
        milestones.pop(0)
    if time.monotonic() - last_report > 1 or reached:
        rss = int(open(f"/proc/{os.getpid()}/status").read().split("VmRSS:")[1].split()[0])
        print(orjson.dumps({"n": n, "rss_kb": rss, "lat_ms": lat, "t": time.monotonic() - (t_first or time.monotonic()),
                            "now": time.monotonic(), "cpu_s": sum(os.times()[:2])}).decode(), flush=True)
        lat, last_report = [], time.monotonic()
