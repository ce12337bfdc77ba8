"""pytest fixtures for suites that run against Kafka (gatewatch's own, and yours): installed as a
`pytest11` plugin, so they are there as soon as gatewatch is installed.

- `kafka_bootstrap` (session): KAFKA_BOOTSTRAP_SERVERS when set, else a testcontainers Kafka when a
  Docker engine answers, else Apache Kafka from Maven jars when Java is there, else the embedded
  tansu. GATEWATCH_TEST_BROKER=kafka|tansu|docker forces one. One broker per xdist worker, or,
  with the ini option `gatewatch_shared_broker = true`, one Apache Kafka broker that the xdist
  controller starts at the beginning of the run for all workers (shared_broker.py; off by
  default, as it starts a JVM even for a run that needs no Kafka).
  The brokers used are printed at the end of the run.
- `kafka_broker`: the broker object behind it when this process started it (None for an external
  or shared one).
- `kafka_cluster`: a 3-node Apache Kafka cluster (RF 3, min.insync.replicas 2), started on first use.
- `tansu_bootstrap`: the embedded broker, for suites that keep a smoke subset on it.
- `gatewatch_topics`: a fresh topic prefix (GATEWATCH_TOPIC_PREFIX set for the test) with the
  whole catalogue created under it.
- `gatewatch_stack`: ingest, signals and decide running as subprocesses on those topics, with
  fresh keys and the default (or your `gatewatch_policy_dir`) policy (streams.app.stack).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from gatewatch.streams.app.shared_broker import TEST_JVM_FLAGS, SharedBroker, wait_shared
from gatewatch.streams.runtime.brokers import ApacheKafka, EmbeddedBroker
from gatewatch.streams.runtime.brokers.apache import KAFKA_VERSION
from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import create_topics, wait_ready
from gatewatch.streams.runtime.paths import config_path

_USED_KEY = "gatewatch_brokers"
_SHARED_KEY = "gatewatch_shared_kafka"  # workerinput: (bootstrap, status file) of the controller's broker
_SHARED_STASH = pytest.StashKey[SharedBroker]()
_SHARED_WAIT = pytest.StashKey[object]()  # on a worker: the shared broker's description, or its GatewatchError


def _docker_answers() -> bool:
    try:
        import docker
        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 (no engine, no socket, no package: all mean "no Docker")
        return False


def _java_answers() -> bool:
    return bool(shutil.which("java") or os.environ.get("JAVA_HOME"))


def broker_choice() -> str:
    """external | docker | kafka | tansu, in the fixture's order of preference."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        return "external"
    forced = os.environ.get("GATEWATCH_TEST_BROKER", "auto")
    if forced in ("kafka", "tansu", "docker"):
        return forced
    if forced not in ("auto", "embedded"):
        raise pytest.UsageError(f"GATEWATCH_TEST_BROKER={forced!r}: expected auto, kafka, tansu or docker")
    if forced == "embedded":
        return "tansu"
    if _docker_answers():
        return "docker"
    return "kafka" if _java_answers() else "tansu"


def _record(config, text: str) -> None:
    out = getattr(config, "workeroutput", None)  # an xdist worker hands it to the controller
    used = out.setdefault(_USED_KEY, []) if out is not None else config.stash.setdefault(_USED_STASH, [])
    if text not in used:
        used.append(text)


_USED_STASH = pytest.StashKey[list]()


@pytest.fixture(scope="session")
def _kafka_session(request):
    choice = broker_choice()
    if choice == "external":
        bs = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        wait_ready(bs, 30)
        _record(request.config, f"external Kafka at {bs}")
        yield bs, None
    elif choice == "docker":
        try:
            from testcontainers.community.kafka import KafkaContainer
        except ImportError:  # testcontainers < 4.10
            from testcontainers.kafka import KafkaContainer
        with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as kafka:
            bs = kafka.get_bootstrap_server()
            wait_ready(bs, 60)
            _record(request.config, "testcontainers Kafka (confluentinc/cp-kafka:7.6.1, KRaft)")
            yield bs, None
    elif choice == "kafka" and _SHARED_KEY in getattr(request.config, "workerinput", {}):
        _record(request.config, _await_shared(request.config) + ", shared by the xdist workers")
        yield request.config.workerinput[_SHARED_KEY][0], None
    elif choice == "kafka":
        with ApacheKafka(jvm_flags=TEST_JVM_FLAGS) as broker:
            _record(request.config, f"{broker.describe()}: {broker.running_version()}")
            yield broker.bootstrap, broker
    else:
        with EmbeddedBroker() as broker:
            _record(request.config, broker.describe())
            yield broker.bootstrap, broker


@pytest.fixture(scope="session")
def kafka_bootstrap(_kafka_session) -> str:
    return _kafka_session[0]


@pytest.fixture(scope="session")
def kafka_broker(_kafka_session):
    return _kafka_session[1]


def three_node_cluster(request):
    """The body of kafka_cluster, for a suite that wants it at a narrower scope (a module's, so its
    three JVMs stop with the module's last test, not the session's)."""
    if not _java_answers():
        pytest.skip("a 3-node Apache Kafka cluster needs Java 17 (not on this machine)")
    with ApacheKafka(nodes=3, jvm_flags=TEST_JVM_FLAGS) as cluster:
        _record(request.config, f"{cluster.describe()}: {cluster.running_version()}")
        yield cluster


@pytest.fixture(scope="session")
def kafka_cluster(request):
    yield from three_node_cluster(request)


@pytest.fixture(scope="session")
def tansu_bootstrap(request):
    with EmbeddedBroker() as broker:
        _record(request.config, broker.describe())
        yield broker.bootstrap


def fresh_topics(bootstrap: str, monkeypatch, partitions: int | None = None) -> str:
    """A new topic prefix, set as GATEWATCH_TOPIC_PREFIX, with the catalogue created under it."""
    pfx = f"t{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", pfx)
    create_topics(bootstrap, pfx, partitions=partitions)
    return pfx


@pytest.fixture
def gatewatch_topics(kafka_bootstrap, monkeypatch) -> str:
    return fresh_topics(kafka_bootstrap, monkeypatch)


@pytest.fixture
def gatewatch_policy_dir():
    """Override in your conftest to run the stack with your own policy directory."""
    return config_path("policies")


@pytest.fixture
def gatewatch_stack(kafka_bootstrap, gatewatch_topics, gatewatch_policy_dir, tmp_path):
    from gatewatch.streams.app.stack import Stack
    with Stack(kafka_bootstrap, gatewatch_topics, gatewatch_policy_dir, tmp_path / "gatewatch") as stack:
        yield stack


def pytest_addoption(parser):
    parser.addini("gatewatch_shared_broker", type="bool", default=False,
                  help="xdist: one Apache Kafka broker for all workers, started by the controller")


def _runs_xdist_workers(config) -> bool:
    return (not hasattr(config, "workerinput") and config.getini("gatewatch_shared_broker")
            and bool(getattr(config.option, "numprocesses", 0)) and getattr(config.option, "dist", "no") != "no"
            and not (config.option.collectonly or getattr(config.option, "help", False)
                     or getattr(config.option, "showfixtures", False)
                     or getattr(config.option, "show_fixtures_per_test", False)))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config, specs):  # xdist controller, once, only when workers will run
    # (not from pytest_configure: --markers never starts a worker; --fixtures does, hence the check)
    if _runs_xdist_workers(config) and broker_choice() == "kafka":
        status_dir = Path(tempfile.mkdtemp(prefix="gw-shared-kafka-"))
        config.stash[_SHARED_STASH] = SharedBroker(status_dir).start()


def _await_shared(config) -> str:
    """The shared broker's description once it is ready, waited for once per worker; its failure
    (or the wait running out) is remembered and raised again for every test that asks."""
    got = config.stash.get(_SHARED_WAIT, None)
    if got is None:
        try:
            got = wait_shared(Path(config.workerinput[_SHARED_KEY][1]))
        except GatewatchError as e:
            got = e
        config.stash[_SHARED_WAIT] = got
    if isinstance(got, GatewatchError):
        raise got
    return got


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """On an xdist worker, a test on the shared broker waits for it here, outside pytest-timeout's
    timer (its wrapper of this hook runs inside this one): on a fresh machine the controller first
    resolves the jars from Maven Central, which can take longer than one test's timeout. (The
    controller shares a broker only when its choice was Apache Kafka: no need to ask again.)"""
    if _SHARED_KEY in getattr(item.config, "workerinput", {}) and "_kafka_session" in getattr(item, "fixturenames", ()):
        try:
            _await_shared(item.config)
        except GatewatchError:
            pass  # _kafka_session raises it, as the test's error
    yield


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):  # xdist controller, before each worker starts
    shared = node.config.stash.get(_SHARED_STASH, None)
    if shared is not None:
        node.workerinput[_SHARED_KEY] = (shared.bootstrap, str(shared.status))


def pytest_unconfigure(config):
    shared = config.stash.get(_SHARED_STASH, None)
    if shared is not None:
        shared.stop()
        shutil.rmtree(shared.status.parent, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # xdist controller: collect what each worker ran on
    used = node.config.stash.setdefault(_USED_STASH, [])
    for text in getattr(node, "workeroutput", {}).get(_USED_KEY, []):
        if text not in used:
            used.append(text)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    used = config.stash.get(_USED_STASH, [])
    if used:
        terminalreporter.write_sep("-", "Kafka brokers the fixtures used")
        for text in used:
            terminalreporter.write_line(text)


def pytest_report_header(config):
    choice = broker_choice()
    if choice == "kafka":
        return f"kafka_bootstrap: Apache Kafka {KAFKA_VERSION} from Maven Central jars (KRaft)"
    return f"kafka_bootstrap: {choice}"
