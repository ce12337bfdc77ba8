"""Secured Kafka: one set of client settings (file and/or environment) for confluent-kafka,
aiokafka and faust; the embedded broker with --authentication refuses a client without them."""
import socket
import subprocess
import time

import certifi
import pytest

from gatewatch.streams.runtime import kafka
from gatewatch.streams.runtime.errors import GatewatchError

SASL_ENV = {"KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "alice", "KAFKA_SASL_PASSWORD": "s3cret", "KAFKA_SSL_CA_LOCATION": certifi.where()}
WANT = {"security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "alice",
        "sasl.password": "s3cret", "ssl.ca.location": certifi.where()}


def test_settings_from_environment():
    assert kafka.security_settings(SASL_ENV) == WANT
    assert kafka.security_settings({}) == {}


def test_settings_from_a_java_properties_file_and_env_wins(tmp_path):
    f = tmp_path / "client.properties"
    f.write_text("# copied from a Java client\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                 'sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required '
                 'username="alice" password="s3cret";\n'
                 f"ssl.ca.location={certifi.where()}\nbootstrap.servers=ignored:9092\nacks=all\n")
    assert kafka.security_settings({"GATEWATCH_KAFKA_CONFIG": str(f)}) == WANT
    env = {"GATEWATCH_KAFKA_CONFIG": str(f), "KAFKA_SASL_PASSWORD": "rotated"}
    assert kafka.security_settings(env)["sasl.password"] == "rotated"


def test_settings_from_yaml_and_bad_files(tmp_path):
    y = tmp_path / "kafka.yaml"
    y.write_text("security.protocol: SSL\nssl.ca.location: /etc/ca.pem\nssl.endpoint.identification.algorithm: none\n")
    assert kafka.security_settings({"GATEWATCH_KAFKA_CONFIG": str(y)}) == {
        "security.protocol": "SSL", "ssl.ca.location": "/etc/ca.pem", "ssl.endpoint.identification.algorithm": "none"}
    jks = tmp_path / "jks.properties"
    jks.write_text("ssl.truststore.location=/x.jks\n")
    with pytest.raises(GatewatchError, match="Java-only"):
        kafka.security_settings({"GATEWATCH_KAFKA_CONFIG": str(jks)})
    with pytest.raises(GatewatchError, match="cannot read"):
        kafka.security_settings({"GATEWATCH_KAFKA_CONFIG": str(tmp_path / "missing")})


def test_every_confluent_client_gets_them(monkeypatch):
    for k, v in SASL_ENV.items():
        monkeypatch.setenv(k, v)
    conf = kafka.client_config("127.0.0.1:1")
    assert {k: conf[k] for k in WANT} == WANT
    # librdkafka accepts them (an unknown or malformed property raises at construction)
    kafka.producer("127.0.0.1:1").flush(0)
    kafka.consumer("127.0.0.1:1", "g").close()
    kafka.admin("127.0.0.1:1")


def test_aiokafka_and_faust_mapping():
    import ssl

    import faust
    from aiokafka import AIOKafkaProducer
    kw = kafka.aiokafka_kwargs(WANT)
    assert kw["security_protocol"] == "SASL_SSL" and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kw["sasl_plain_username"], kw["sasl_plain_password"]) == ("alice", "s3cret")
    assert isinstance(kw["ssl_context"], ssl.SSLContext) and kw["ssl_context"].check_hostname
    import asyncio

    async def construct():  # kwargs accepted (no connection made)
        AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **kw)
    asyncio.run(construct())
    assert kafka.aiokafka_kwargs({}) == {"security_protocol": "PLAINTEXT"}
    no_verify = kafka.aiokafka_kwargs({"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none"})
    assert no_verify["ssl_context"].check_hostname is False and "sasl_mechanism" not in no_verify

    fk = kafka.faust_app_kwargs("127.0.0.1:9092,127.0.0.1:9093", WANT)
    assert fk["broker"] == "kafka://127.0.0.1:9092;kafka://127.0.0.1:9093"
    app = faust.App("gw-security-test", **fk)
    creds = app.conf.broker_credentials
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.mechanism.value, creds.protocol.value) == \
        ("alice", "s3cret", "SCRAM-SHA-512", "SASL_SSL")
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
    assert credentials_to_aiokafka_auth(creds)["sasl_plain_username"] == "alice"


def test_http_endpoints_bind_loopback_by_default(monkeypatch):
    from gatewatch.streams.runtime.ops_http import OpsServer
    monkeypatch.delenv("GATEWATCH_HTTP_HOST", raising=False)
    ops = OpsServer(0)
    try:
        assert ops.httpd.server_address[0] == "127.0.0.1"
    finally:
        ops.httpd.server_close()


# ---- against the embedded broker with --authentication -------------------------------------

def _tansu_with_auth():
    from gatewatch.streams.runtime.brokers import free_port, tansu_binary
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/", "--authentication"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    pytest.skip("tansu did not listen")


@pytest.mark.integration
def test_broker_with_authentication_refuses_plain_clients_and_sees_our_sasl(monkeypatch):
    """tansu 0.6 can only create users through an authenticated connection and keeps them in
    its (here: memory) storage, so an authenticated round trip cannot be set up on it: this
    asserts the refusal, and that our settings make librdkafka run the SCRAM exchange."""
    from confluent_kafka import KafkaException
    proc, bs = _tansu_with_auth()
    try:
        with pytest.raises(KafkaException):
            kafka.admin(bs).list_topics(timeout=3)  # no credentials: refused
        for k, v in {**SASL_ENV, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"}.items():
            monkeypatch.setenv(k, v)
        errors: list = []
        p = kafka.producer(bs, error_cb=lambda e: errors.append(e.str()))
        deadline = time.monotonic() + 10
        while not errors and time.monotonic() < deadline:
            p.poll(0.2)
        # librdkafka ran the SCRAM exchange with our settings; tansu has no such user
        assert any("SASL" in e and "SCRAM" in e for e in errors), errors[:3]
    finally:
        proc.terminate()
        proc.wait(5)
