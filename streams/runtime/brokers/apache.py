"""Apache Kafka from Maven Central jars: one KRaft node, or a cluster of combined broker+controllers.

The jars are the classpath of `kafka-broker.pom.xml` (org.apache.kafka:kafka_2.13), resolved once
by `mvn dependency:build-classpath` into the local Maven repository; the resolved classpath is
remembered under ~/.cache/gatewatch, so later starts need neither Maven nor the network. Each node
gets free 127.0.0.1 ports, its own storage directory (formatted with `kafka.tools.StorageTool`,
the tool behind kafka-storage.sh) and runs `kafka.Kafka` in its own JVM. A node dies with the
process that started it (PR_SET_PDEATHSIG), so a crashed test or CLI leaves no broker behind.
"""
from __future__ import annotations

import base64
import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from gatewatch.streams.runtime.errors import GatewatchError
from gatewatch.streams.runtime.kafka import admin, wait_ready
from gatewatch.streams.runtime.ports import free_port

POM = Path(__file__).with_name("kafka-broker.pom.xml")
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", POM.read_text()).group(1)
HEAP = os.environ.get("GATEWATCH_KAFKA_HEAP", "-Xms128m -Xmx512m")

_LOG4J = """Configuration:
  Appenders:
    File:
      name: F
      fileName: "{log}"
      PatternLayout: {{pattern: "[%d] %p %m (%c)%n"}}
  Loggers:
    Root: {{level: WARN, AppenderRef: [{{ref: F}}]}}
    Logger:
      - {{name: kafka.server.KafkaRaftServer, level: INFO}}
      - {{name: kafka.server.BrokerServer, level: INFO}}
      - {{name: org.apache.kafka.common.utils.internals.AppInfoParser, level: INFO}}
"""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gatewatch"


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home and (Path(home) / "bin" / "java").exists() else shutil.which("java")
    if not java:
        raise GatewatchError("the Apache Kafka engine needs Java 17 or later: java is not on PATH (nor in JAVA_HOME)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)', out)
    if not m or int(m.group(1)) < 17:
        raise GatewatchError(f"the Apache Kafka engine needs Java 17 or later; {java} says: {out.splitlines()[0] if out else '?'}")
    return java


def classpath() -> str:
    """The broker's classpath, resolving it with Maven the first time (then cached)."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    cache = _cache_dir() / f"kafka-{KAFKA_VERSION}-{digest}.classpath"
    cached = _read_classpath(cache)
    if cached:
        return cached
    mvn = shutil.which("mvn")
    if not mvn:
        raise GatewatchError(f"the Apache Kafka engine needs Maven to fetch the Kafka {KAFKA_VERSION} jars once: "
                             "mvn is not on PATH")
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.with_suffix(".lock"), "w") as lock:  # one resolver at a time (xdist workers)
        fcntl.flock(lock, fcntl.LOCK_EX)
        cached = _read_classpath(cache)
        if cached:
            return cached
        work = Path(tempfile.mkdtemp(prefix="gw-kafka-pom-"))
        try:
            shutil.copy(POM, work / "pom.xml")
            out = work / "classpath.txt"
            r = subprocess.run([mvn, "-q", "-B", "-f", str(work / "pom.xml"), "dependency:build-classpath",
                                f"-Dmdep.outputFile={out}"], capture_output=True, text=True, timeout=900)
            if r.returncode != 0 or not out.exists():
                raise GatewatchError(f"mvn could not fetch the Kafka {KAFKA_VERSION} jars: {_mvn_error(r.stdout + r.stderr)}")
            os.replace(out, cache)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return _read_classpath(cache) or ""


def _mvn_error(output: str) -> str:
    """The informative line of Maven's output (it leads with bare [ERROR] banners)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", ln).strip() for ln in output.splitlines()]
    best = [ln for ln in lines if ("FATAL" in ln or "Could not" in ln or "resolve" in ln)] or \
        [ln for ln in lines if "ERROR" in ln and len(ln) > 20] or ["(no output)"]
    return best[0][:300]


def _read_classpath(path: Path) -> str | None:
    try:
        cp = path.read_text().strip()
    except FileNotFoundError:
        return None
    return cp if cp and all(Path(j).is_file() for j in cp.split(os.pathsep)) else None


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    dir: Path
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class ApacheKafka:
    """`nodes` combined broker+controller nodes (KRaft, static voters). With 3 or more nodes, the
    internal topics and the broker default use replication factor 3 and min.insync.replicas 2.
    `data_dir` keeps the storage across stop/start (a restart on the same log dirs); without it a
    temporary directory is used and removed by stop(). `jvm_flags` go to each node's JVM."""

    engine = "kafka"

    def __init__(self, nodes: int = 1, data_dir: str | os.PathLike | None = None, port: int | None = None,
                 jvm_flags: tuple[str, ...] = ()):
        if nodes < 1:
            raise GatewatchError("a Kafka cluster needs at least one node")
        self._own_dir = data_dir is None
        self.jvm_flags = jvm_flags
        self.dir = Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="gw-kafka-"))
        self.replication_factor = min(3, nodes)
        self.min_isr = min(2, nodes)
        self.nodes = [Node(i + 1, port if (port and i == 0) else free_port(), free_port(), self.dir / f"node-{i + 1}")
                      for i in range(nodes)]
        self.version = KAFKA_VERSION
        ids = self.dir / "cluster.id"
        if ids.exists():  # a restart on existing storage keeps its ports and cluster id
            saved = ids.read_text().split()
            self.cluster_id = saved[0]
            for n, ports in zip(self.nodes, saved[1:]):
                n.port, n.controller_port = (int(x) for x in ports.split(":"))
        else:
            self.cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    @property
    def proc(self) -> subprocess.Popen | None:
        """The first node's process (the single-node case)."""
        return self.nodes[0].proc

    def describe(self) -> str:
        return f"Apache Kafka {self.version} (KRaft, {len(self.nodes)} node{'s' if len(self.nodes) > 1 else ''})"

    def running_version(self) -> str:
        """The version the first node's JVM reported at start ("Kafka version: ..." in its log)."""
        log, m = self.nodes[0].dir / "server.log", None
        deadline = time.monotonic() + 15  # logged as the server finishes starting
        while m is None and time.monotonic() < deadline:
            m = re.search(r"Kafka version: (\S+)", log.read_text(errors="replace")) if log.exists() else None
            if m is None:
                time.sleep(0.2)
        return f"Kafka version {m.group(1)} (from the broker's log)" if m else "version not in the broker's log"

    def _properties(self, n: Node) -> str:
        voters = ",".join(f"{m.node_id}@127.0.0.1:{m.controller_port}" for m in self.nodes)
        rf, isr = self.replication_factor, self.min_isr
        return "\n".join([
            "process.roles=broker,controller", f"node.id={n.node_id}", f"controller.quorum.voters={voters}",
            f"listeners=PLAINTEXT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{n.port}",
            "controller.listener.names=CONTROLLER", "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={n.dir / 'data'}",
            f"default.replication.factor={rf}", f"min.insync.replicas={isr}",
            f"offsets.topic.replication.factor={rf}", "offsets.topic.num.partitions=10",
            f"transaction.state.log.replication.factor={rf}", f"transaction.state.log.min.isr={isr}",
            "transaction.state.log.num.partitions=10",
            f"share.coordinator.state.topic.replication.factor={rf}", f"share.coordinator.state.topic.min.isr={isr}",
            "group.initial.rebalance.delay.ms=0",
            # local test clusters: members may use short sessions (a killed one is replaced sooner)
            "group.min.session.timeout.ms=1000",
            # a killed node is fenced and its partitions move within seconds, not the default 9 s
            "broker.heartbeat.interval.ms=500", "broker.session.timeout.ms=3000",
            # two cores: fewer threads than the defaults sized for a server
            "num.network.threads=2", "num.io.threads=2", "background.threads=2", "log.cleaner.threads=1",
        ]) + "\n"

    def _format(self, n: Node, java: str, cp: str) -> None:
        if (n.dir / "data" / "meta.properties").exists():
            return
        for attempt in range(3):  # a JVM that cannot start on a loaded machine: try again
            # --cluster-id=ID: a base64url id may start with "-", which argparse would take for an option
            r = subprocess.run([java, "-Xmx256m", *self.jvm_flags, "-cp", cp, "kafka.tools.StorageTool", "format",
                                f"--cluster-id={self.cluster_id}", "-c", str(n.dir / "server.properties")],
                               capture_output=True, text=True)
            if r.returncode == 0 or (n.dir / "data" / "meta.properties").exists():
                return
            time.sleep(1 + attempt)
        lines = [ln for ln in (r.stderr + r.stdout).splitlines() if ln.strip()]
        raise GatewatchError(f"formatting Kafka storage in {n.dir} failed ({r.returncode}): "
                             + " | ".join(lines[:3] + lines[-2:])[:800])

    def start(self, timeout_s: float = 90.0) -> "ApacheKafka":
        java, cp = java_binary(), classpath()
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "cluster.id").write_text(" ".join([self.cluster_id] + [f"{n.port}:{n.controller_port}" for n in self.nodes]))
        for n in self.nodes:
            n.dir.mkdir(parents=True, exist_ok=True)
            (n.dir / "server.properties").write_text(self._properties(n))
            (n.dir / "log4j2.yaml").write_text(_LOG4J.format(log=n.dir / "server.log"))
            self._format(n, java, cp)
        for n in self.nodes:
            self.start_node(n.node_id, wait=False)
        try:
            wait_ready(self.bootstrap, timeout_s)
            self._wait_brokers(len(self.nodes), timeout_s)
        except GatewatchError:
            tail = self.log_tail()
            self.stop()
            raise GatewatchError(f"{self.describe()} did not start on {self.bootstrap}: {tail}") from None
        return self

    def start_node(self, node_id: int, wait: bool = True) -> None:
        """Start (or restart, on its existing storage) one node."""
        n = self.nodes[node_id - 1]
        if n.proc is not None and n.proc.poll() is None:
            return
        with open(n.dir / "stdout.log", "ab") as out:
            n.proc = subprocess.Popen(
                [java_binary(), *HEAP.split(), *self.jvm_flags, "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError",
                 f"-Dlog4j2.configurationFile={n.dir / 'log4j2.yaml'}", "-cp", classpath(), "kafka.Kafka",
                 str(n.dir / "server.properties")],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C aimed at the CLI must not kill it before stop()
                preexec_fn=_die_with_parent)
        if wait:  # this node itself answering, and registered with the others that run
            wait_ready(n.address, 90)
            self._wait_brokers(sum(m.proc is not None for m in self.nodes), 90)

    def _wait_brokers(self, count: int, timeout_s: float) -> None:
        a = admin(self.bootstrap)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.proc is not None and n.proc.poll() is not None:
                    raise GatewatchError(f"Kafka node {n.node_id} exited ({n.proc.returncode})")
            try:
                if len(a.list_topics(timeout=2).brokers) >= count:
                    return
            except Exception:  # noqa: BLE001 (not up yet: any client error means wait)
                pass
            time.sleep(0.2)
        raise GatewatchError(f"only some of the {count} Kafka nodes registered within {timeout_s:.0f}s")

    def kill_node(self, node_id: int) -> None:
        """SIGKILL one node (chaos)."""
        n = self.nodes[node_id - 1]
        if n.proc is not None and n.proc.poll() is None:
            n.proc.kill()
            n.proc.wait(30)
        n.proc = None

    def stop(self) -> None:
        for n in self.nodes:
            if n.proc is not None and n.proc.poll() is None:
                n.proc.terminate()
        for n in self.nodes:
            if n.proc is None:
                continue
            try:
                n.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(n.proc.pid, signal.SIGKILL)
                n.proc.wait(10)
            n.proc = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n: int = 400) -> str:
        texts = []
        for node in self.nodes:
            for name in ("stdout.log", "server.log"):
                p = node.dir / name
                if p.exists():
                    texts.append(p.read_text(errors="replace")[-n:])
        return " | ".join(t.strip() for t in texts if t.strip())[-n:]

    def __enter__(self) -> "ApacheKafka":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
