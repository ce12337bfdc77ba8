"""The extension example on the real broker: the faust agent turns payments into the declared signal
input payment_tech_declined, and the running pipeline (ingest, signals, decide) fires the example
policy's rule with a rollback on gw.actions, only once technical declines rise (the customer declines
before them never count)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.streams.runtime.kafka import admin, producer
from tests.timebase import RECENT_MS

pytestmark = pytest.mark.integration
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "payment_declines"
TECH_FROM_S = 180   # technical declines start 3 minutes in
PAYMENTS_S = 480    # one payment a second for 8 minutes: the watermark (max - 2m lateness) reaches 6m


@pytest.fixture
def gatewatch_policy_dir(tmp_path):
    """The default policies plus the example's file, as a user would install it."""
    d = tmp_path / "policies"
    d.mkdir()
    for p in Path("configs/policies").glob("*.yml"):
        shutil.copy(p, d)
    shutil.copy(EXAMPLE / "policy" / "payments.yml", d)
    return d


def _payment(i: int) -> dict:
    if i < TECH_FROM_S:  # 30% customer declines (insufficient funds): not the release's fault
        code = "51" if i % 10 < 3 else "00"
    else:                # 20% system malfunctions, 10% customer declines
        code = "96" if i % 10 < 2 else "51" if i % 10 == 2 else "00"
    return {"service": "checkout", "cohort": "canary", "release": "2.0.0", "ts": RECENT_MS + i * 1000,
            "response_code": code}


def test_the_agents_signal_fires_its_rule_on_the_real_broker(kafka_bootstrap, gatewatch_stack, tmp_path):
    payments = f"{gatewatch_stack.prefix}payments"
    a = admin(kafka_bootstrap)  # keep a reference: futures die with their client
    for f in a.create_topics([NewTopic(payments, 1, 1)]).values():
        f.result()
    p = producer(kafka_bootstrap)
    for i in range(PAYMENTS_S):
        p.produce(payments, key=b"checkout", value=orjson.dumps(_payment(i)))
    assert p.flush(10) == 0
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=gatewatch_stack.prefix,
               PAYMENTS_TOPIC=payments, APP_ID=f"payment-declines-{uuid.uuid4().hex[:6]}")
    log = tmp_path / "agent.log"
    agent = subprocess.Popen([sys.executable, str(EXAMPLE / "agent.py"), "--datadir", str(tmp_path / "faust"),
                              "worker", "--without-web", "-l", "warn"], env=env, stdout=open(log, "wb"),
                             stderr=subprocess.STDOUT)
    try:
        fired = gatewatch_stack.wait_for("actions", lambda r: r["rule"]["id"] == "payment_tech_declines",
                                         timeout_s=120)
    except TimeoutError:
        raise AssertionError(f"agent exit code {agent.poll()}; its log:\n{log.read_text()[-3000:]}") from None
    finally:
        agent.terminate()
        try:
            agent.wait(15)
        except subprocess.TimeoutExpired:
            agent.kill()
    [act] = fired  # one action per breach (the rule re-arms only once the ratio is back under 5%)
    assert (act["kind"], act["action"], act["scope"], act["release"]) == ("abort", "rollback", "checkout", "2.0.0")
    assert parse_time_ms(act["ts"]) > RECENT_MS + TECH_FROM_S * 1000
    [sig] = [s for s in act["signals"] if s["name"] == "payment_tech_decline_ratio"]
    assert sig["value"] > 0.05 and sig["samples"] >= 20 and sig["cohort"] == "canary"
