"""Publishing scenarios: to Kafka (paced or as fast as possible) or to a kcat -J file for replay."""
from __future__ import annotations

import time
import zlib
from pathlib import Path

import orjson
from confluent_kafka import KafkaError

from gatewatch.processors import safe_yaml
from gatewatch.processors.scenarios import Scenario
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.paths import config_path

SCENARIO_DIR = config_path("scenarios")


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def load_scenario_spec(name_or_path: str) -> dict:
    p = Path(name_or_path)
    if not p.is_file():
        p = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        raise GatewatchError(f"no scenario {name_or_path!r} (known: {', '.join(scenario_names())}, or a YAML path)")
    try:
        spec = safe_yaml.load(p.read_text(), str(p))
    except safe_yaml.SafeYamlError as e:
        raise GatewatchError(str(e)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise GatewatchError(f"{p}: cannot read: {e}") from None
    if not isinstance(spec, dict):
        raise GatewatchError(f"{p}: a scenario is a YAML mapping")
    return spec


def file_partition(key: str, partitions: int) -> int:
    """Stable key -> partition for files written without a broker (replay only needs stability)."""
    return zlib.crc32(key.encode()) % partitions


def write_envelopes(scenario: Scenario, out, progress=None) -> int:
    """kcat -J lines, offsets per (topic, partition) from 0, ts = the record's event time."""
    offsets: dict[tuple[str, int], int] = {}
    n = 0
    for logical, key, value in scenario.records():
        name = topics.topic(logical)
        part = file_partition(key, topics.BY_NAME[logical].partitions)
        off = offsets.get((name, part), 0)
        offsets[(name, part)] = off + 1
        out.write(orjson.dumps({"topic": name, "partition": part, "offset": off, "tstype": "create",
                                "ts": event_ms(value), "key": key,
                                "payload": orjson.dumps(value).decode()}) + b"\n")
        n += 1
        if progress is not None:
            progress.update(1)
    return n


def event_ms(value: dict) -> int | None:
    from gatewatch.processors.timefmt import parse_time_ms
    for f in ("ts", "timestamp", "ts_ms"):
        if f in value:
            return parse_time_ms(value[f])
    payload = value.get("payload")
    return payload.get("ts_ms") if isinstance(payload, dict) else None


def ending_now(duration_ms: int) -> int:
    """The start (to the second) of an event-time span of `duration_ms` that ends now: its records
    are all in the past, so a broker accepts their timestamps (Apache Kafka refuses ones more than
    message.timestamp.after.max.ms, 1 h by default, ahead of its clock)."""
    return (int(time.time()) - -(-duration_ms // 1000)) * 1000


def publish(scenario: Scenario, producer, speed: float = 0.0, progress=None, stop=None) -> int:
    """Produce every record; with speed > 0, event time advances `speed` times faster than wall time."""
    t0_wall, n = time.monotonic(), 0
    refused: list = []

    def delivered(err, msg) -> None:
        if err is not None:
            refused.append(err)
    for logical, key, value in scenario.records():
        if stop is not None and stop:
            break
        if speed > 0:
            ev = event_ms(value)
            if ev is not None:
                due = (ev - scenario.start_ms) / 1000 / speed
                lag = due - (time.monotonic() - t0_wall)
                if lag > 0.005:
                    producer.flush(5)
                    time.sleep(lag)
        ts = event_ms(value)
        while True:
            try:
                producer.produce(topics.topic(logical), key=key.encode(), value=orjson.dumps(value),
                                 timestamp=ts or 0, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if progress is not None and n % 500 == 0:
            progress.update(500)
            producer.poll(0)
    if producer.flush(30):
        raise GatewatchError("not every record was delivered within 30 s")
    if refused:
        raise GatewatchError(f"the broker refused {len(refused)} of {n} records, first: {refused[0].str()}"
                             + (" (record timestamps beyond the broker's message.timestamp.after.max.ms?)"
                                if refused[0].code() == KafkaError.INVALID_TIMESTAMP else ""))
    if progress is not None:
        progress.update(n % 500)
    return n
