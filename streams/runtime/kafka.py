"""All Kafka client construction lives here: one place for settings and defaults.

Defaults suit both real Kafka and the embedded tansu broker: short session
timeouts (tansu's first JoinGroup waits session.timeout/2), manual commits.

Security (every component gets the same settings through client_config):
- a config file named by GATEWATCH_KAFKA_CONFIG: Java-style `key=value` properties, or YAML
  (.yaml/.yml) mapping librdkafka names (security.protocol, sasl.mechanism, sasl.username,
  sasl.password, ssl.ca.location, ssl.certificate.location, ssl.key.location, ssl.key.password,
  ssl.endpoint.identification.algorithm, client.id ...). A Java `sasl.jaas.config` line gives
  its username/password. Only security.*, sasl.*, ssl.* and client.id keys are taken.
- environment variables, which win over the file: KAFKA_SECURITY_PROTOCOL,
  KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_SSL_CA_LOCATION,
  KAFKA_SSL_CERTIFICATE_LOCATION, KAFKA_SSL_KEY_LOCATION, KAFKA_SSL_KEY_PASSWORD,
  KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM.
`aiokafka_kwargs()` / `faust_app_kwargs()` map the same settings for aiokafka and faust.
"""
from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from gatewatch.streams.runtime import topics as catalogue
from gatewatch.streams.runtime.consuming import watermarks
from gatewatch.streams.runtime.errors import GatewatchError

SESSION_TIMEOUT_MS = int(os.environ.get("GATEWATCH_SESSION_TIMEOUT_MS", "6000"))


def fetch_wait_ms() -> int:
    """How long a fetch may wait for records. Apache Kafka answers as soon as one arrives, so this
    only paces an idle consumer's polling: Kafka's own 500 ms default (bench/idle_cost.py: a broker
    serving three idle stages spends 0.21-0.30x the CPU it did at 50 ms). tansu holds each fetch for the
    whole wait, adding it to every hop; the embedded broker sets 50 ms for its clients
    (brokers/tansu.py)."""
    return int(os.environ.get("GATEWATCH_FETCH_WAIT_MS", "500"))


# librdkafka logs go through logging, so a stopped broker does not spray stderr.
_RDKAFKA_LOG = logging.getLogger("gatewatch.rdkafka")


SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "security.protocol",
    "KAFKA_SASL_MECHANISM": "sasl.mechanism",
    "KAFKA_SASL_USERNAME": "sasl.username",
    "KAFKA_SASL_PASSWORD": "sasl.password",
    "KAFKA_SSL_CA_LOCATION": "ssl.ca.location",
    "KAFKA_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "KAFKA_SSL_KEY_LOCATION": "ssl.key.location",
    "KAFKA_SSL_KEY_PASSWORD": "ssl.key.password",
    "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "ssl.endpoint.identification.algorithm",
}
_ALIASES = {"sasl.mechanisms": "sasl.mechanism"}
_JAVA_ONLY = ("ssl.truststore.", "ssl.keystore.")
_JAAS_RE = re.compile(r'(username|password)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _read_config_file(path: str) -> dict:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise GatewatchError(f"GATEWATCH_KAFKA_CONFIG: cannot read {path}: {e.strerror}") from None
    if path.endswith((".yaml", ".yml")):
        from gatewatch.processors import safe_yaml
        try:
            doc = safe_yaml.load(text, path) or {}
        except safe_yaml.SafeYamlError as e:
            raise GatewatchError(f"GATEWATCH_KAFKA_CONFIG: {e}") from None
        if not isinstance(doc, dict):
            raise GatewatchError(f"GATEWATCH_KAFKA_CONFIG: {path} must be a mapping of client settings")
        return {str(k): str(v) for k, v in doc.items() if v is not None}
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        k, sep, v = line.partition("=")
        if not sep:
            k, sep, v = line.partition(":")
        out[k.strip()] = v.strip()
    return out


def security_settings(env: dict | None = None) -> dict:
    """The librdkafka security settings from GATEWATCH_KAFKA_CONFIG and KAFKA_* variables."""
    env = os.environ if env is None else env
    conf: dict = {}
    path = env.get("GATEWATCH_KAFKA_CONFIG")
    if path:
        for k, v in _read_config_file(path).items():
            k = _ALIASES.get(k, k)
            if k == "sasl.jaas.config":  # a Java client.properties: take its credentials
                for name, val in _JAAS_RE.findall(v):
                    conf.setdefault(f"sasl.{name}", val)
                continue
            if k.startswith(_JAVA_ONLY):
                raise GatewatchError(f"GATEWATCH_KAFKA_CONFIG: {k} is Java-only (JKS); use ssl.ca.location / "
                                     f"ssl.certificate.location / ssl.key.location with PEM files")
            if k.startswith(("security.", "sasl.", "ssl.")) or k == "client.id":
                conf[k] = v
    for var, k in SECURITY_ENV.items():
        if env.get(var):
            conf[k] = env[var]
    if "security.protocol" in conf:
        conf["security.protocol"] = conf["security.protocol"].upper()
    return conf


def client_config(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, "logger": _RDKAFKA_LOG, **security_settings()}


def aiokafka_kwargs(settings: dict | None = None) -> dict:
    """The same settings as aiokafka client kwargs (security_protocol, sasl_*, ssl_context)."""
    conf = security_settings() if settings is None else settings
    proto = conf.get("security.protocol", "PLAINTEXT").upper()
    kw: dict = {"security_protocol": proto}
    if proto in ("SSL", "SASL_SSL"):
        kw["ssl_context"] = _ssl_context(conf)
    if proto.startswith("SASL"):
        kw["sasl_mechanism"] = conf.get("sasl.mechanism", "PLAIN").upper()
        kw["sasl_plain_username"] = conf.get("sasl.username")
        kw["sasl_plain_password"] = conf.get("sasl.password")
    return kw


def _ssl_context(conf: dict):
    try:
        from aiokafka.helpers import create_ssl_context
    except ImportError:
        raise GatewatchError("aiokafka is not installed: pip install 'gatewatch[faust]'") from None
    ctx = create_ssl_context(cafile=conf.get("ssl.ca.location"), certfile=conf.get("ssl.certificate.location"),
                             keyfile=conf.get("ssl.key.location"), password=conf.get("ssl.key.password"))
    if conf.get("ssl.endpoint.identification.algorithm", "https").lower() == "none":
        ctx.check_hostname = False
    return ctx


def faust_app_kwargs(bootstrap: str, settings: dict | None = None) -> dict:
    """faust.App kwargs: broker URL(s) and broker_credentials built from the same settings."""
    try:
        import faust
    except ImportError:
        raise GatewatchError("faust is not installed: pip install 'gatewatch[faust]'") from None
    kw = aiokafka_kwargs(settings)
    out: dict = {"broker": ";".join(f"kafka://{b.strip()}" for b in bootstrap.split(","))}
    proto = kw["security_protocol"]
    if proto.startswith("SASL"):
        out["broker_credentials"] = faust.SASLCredentials(
            username=kw["sasl_plain_username"], password=kw["sasl_plain_password"],
            ssl_context=kw.get("ssl_context"), mechanism=kw["sasl_mechanism"])
    elif proto == "SSL":
        out["broker_credentials"] = faust.SSLCredentials(kw["ssl_context"])
    return out


def producer(bootstrap: str, **overrides) -> Producer:
    conf = client_config(bootstrap)
    conf.update({"linger.ms": 5, "enable.idempotence": "transactional.id" in overrides})
    conf.update(overrides)
    return Producer(conf)


def ordered_producer(bootstrap: str, **overrides) -> Producer:
    """One request in flight per connection: a retried batch cannot overtake the next one, so each
    partition holds the records in the order they were produced. Without it a retry under load
    moved minutes of event time ahead of older records, which then came out late (seen on Apache
    Kafka: 1,977 late records, no decision). Not idempotence: tansu's idempotent path has its own
    history (README, embedded broker limits)."""
    return producer(bootstrap, **{"max.in.flight.requests.per.connection": 1, **overrides})


def consumer(bootstrap: str, group: str, **overrides) -> Consumer:
    conf = client_config(bootstrap)
    conf.update({
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": max(500, SESSION_TIMEOUT_MS // 6),
        "enable.partition.eof": False,
        "fetch.wait.max.ms": fetch_wait_ms(),
        # how long librdkafka pauses a partition's fetches while its local queue is full; the 1 s
        # default stalled ingest on a backlog (bench/pipeline.py capacity: 105k -> 160k rec/s)
        "fetch.queue.backoff.ms": 50,
    })
    conf.update(overrides)
    return Consumer(conf)


def admin(bootstrap: str) -> AdminClient:
    return AdminClient(client_config(bootstrap))


def wait_ready(bootstrap: str, timeout_s: float = 20.0) -> None:
    """Block until the cluster answers a metadata request."""
    a = admin(bootstrap)
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            a.list_topics(timeout=2)
            return
        except KafkaException as e:
            last = e
            time.sleep(0.2)
    raise GatewatchError(f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {last}")


def create_topics(bootstrap: str, pfx: str | None = None, partitions: int | None = None,
                  replication: int | None = None, include_internal: bool = True) -> dict[str, str]:
    """Create the catalogue's topics; existing ones are left as they are. Returns {topic: created|exists}.
    Replication factor: `replication`, else GATEWATCH_REPLICATION_FACTOR, else min(3, brokers)."""
    a = admin(bootstrap)
    md = a.list_topics(timeout=10)
    if replication is not None:
        rf = replication
    elif os.environ.get("GATEWATCH_REPLICATION_FACTOR"):
        rf = int(os.environ["GATEWATCH_REPLICATION_FACTOR"])
    else:  # what an operator would choose: 3 where the cluster has 3 brokers
        rf = min(3, max(1, len(md.brokers)))
    existing = set(md.topics)
    wanted = [s for s in catalogue.CATALOGUE if include_internal or not s.internal]
    new, result = [], {}
    for spec in wanted:
        name = catalogue.topic(spec.name, pfx)
        if name in existing:
            result[name] = "exists"
            continue
        n = partitions if (partitions and spec.partitions > 1) else spec.partitions
        new.append(NewTopic(name, n, rf, config=catalogue.topic_configs(spec)))
    if new:
        for name, fut in a.create_topics(new, request_timeout=15).items():
            try:
                fut.result()
                result[name] = "created"
            except KafkaException as e:
                if e.args[0].code() == 36:  # TOPIC_ALREADY_EXISTS: a concurrent creator won
                    result[name] = "exists"
                else:
                    raise GatewatchError(f"creating topic {name}: {e.args[0].str()}") from None
        _wait_visible(a, [t.topic for t in new])
    return dict(sorted(result.items()))


def _wait_visible(a, names: list[str], timeout_s: float = 30.0) -> None:
    """Creation returns when the controller has the topics; the broker a client asks next may not
    know them yet (a cluster propagates metadata), so wait until every partition has a leader."""
    deadline = time.monotonic() + timeout_s
    while True:
        md = a.list_topics(timeout=10).topics
        if all(n in md and md[n].error is None and md[n].partitions
               and all(p.leader >= 0 for p in md[n].partitions.values()) for n in names):
            return
        if time.monotonic() > deadline:
            raise GatewatchError(f"created topics not visible within {timeout_s:.0f}s: {sorted(set(names) - set(md))}")
        time.sleep(0.1)


def read_to_end(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list:
    """Every committed record of `topic` up to the end offsets it has now, in partition order (a
    throwaway group, nothing committed). It waits for the end rather than for a quiet second: a
    first fetch can take longer than that, and a quiet second says nothing about the end."""
    c = consumer(bootstrap, f"gatewatch-read-{os.getpid()}-{time.monotonic_ns()}")
    try:
        return _read_all(c, topic, timeout_s)
    except KafkaException as e:  # the broker unreachable, the topic gone mid-read
        raise GatewatchError(f"reading {topic}: {e.args[0].str()}") from None
    finally:
        c.close()


def _read_all(c, topic: str, timeout_s: float) -> list:
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition
    md = c.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None:
        raise GatewatchError(f"topic {topic} not found")
    ends = {p: watermarks(c, topic, p)[1] for p in sorted(md.partitions)}
    todo = {p for p, end in ends.items() if end > 0}
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(todo)])
    out, deadline = [], time.monotonic() + timeout_s
    while todo:
        if time.monotonic() > deadline:
            raise GatewatchError(f"reading {topic}: partitions {sorted(todo)} not read to their end "
                                 f"within {timeout_s:.0f}s")
        for m in c.consume(5000, 0.2):
            if m.error() is None and m.partition() in todo:
                out.append(m)
        # the position passes transaction markers too, which are never delivered as records
        for tp in c.position([TopicPartition(topic, p) for p in todo]):
            if tp.offset >= ends[tp.partition]:
                todo.discard(tp.partition)
    out.sort(key=lambda m: (m.partition(), m.offset()))
    return out
