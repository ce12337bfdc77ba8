"""`gatewatch tail` as input for `gatewatch replay`, on Apache Kafka: a value that is not UTF-8
(otlp_proto, Avro) comes out as payload_b64 with its bytes intact (it was decoded with replacement
characters, which replay then dead-lettered as bad_protobuf), and a topic that does not exist is
a one-line error, not an empty success."""
from __future__ import annotations

from collections import Counter

import orjson
import pytest

from gatewatch.streams.app.kcat_files import read_envelopes, value_of
from gatewatch.streams.cli.main import main
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.kafka import producer

pytestmark = pytest.mark.integration
BINARY = bytes(range(256)) * 3  # no UTF-8 text


def test_binary_values_survive_tail_byte_for_byte(kafka_bootstrap, topic_prefix, capsysbinary, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    p = producer(kafka_bootstrap)
    p.produce(topics.topic("metrics"), value=BINARY, key=b"svc", partition=0)
    p.produce(topics.topic("metrics"), value=b'{"service":"svc"}', key=b"svc", partition=0)
    assert p.flush(30) == 0
    assert main(["tail", "metrics", "--idle", "3", "-n", "2"]) == 0
    lines = capsysbinary.readouterr().out.splitlines()
    docs = [orjson.loads(x) for x in lines]
    assert "payload" not in docs[0] and docs[1]["payload"] == '{"service":"svc"}'
    bad: Counter = Counter()
    assert [value_of(e) for e in read_envelopes(lines, bad)] == [BINARY, b'{"service":"svc"}'] and not bad


def test_a_topic_that_does_not_exist_is_one_line(kafka_bootstrap, topic_prefix, capsys, monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    for name in ("nosuchtopic", ""):
        assert main(["tail", name, "--idle", "1"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("gatewatch: error: topic") and "not found" in err and len(err.splitlines()) == 1, err
