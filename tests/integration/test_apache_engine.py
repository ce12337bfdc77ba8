"""The Apache Kafka engine formats its storage whatever random cluster id it draws: a base64url id
starting with "-" (1 draw in 64) once broke kafka-storage's argument parsing, failing whole runs."""
import pytest

from gatewatch.streams.runtime.brokers import apache
from gatewatch.streams.runtime.kafka import admin

pytestmark = pytest.mark.integration


def test_a_cluster_id_starting_with_a_dash_formats_and_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(apache.os, "urandom", lambda n: b"\xf8" + bytes(n - 1))  # base64url "-..."
    with apache.ApacheKafka(data_dir=tmp_path / "kafka").start() as broker:
        assert broker.cluster_id.startswith("-")
        assert admin(broker.bootstrap).list_topics(timeout=10).brokers
