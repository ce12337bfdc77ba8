"""One incident, one call (issue 23, seed 004): the traffic-spike scenario's abort and hook actions
of one (scope, release) episode share an incident id; the executor calls the deploy webhook once
per incident and action kind, receipts name the incident, and a failed first call is retried by the
next action of the incident."""
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest
import yaml
from nacl.signing import SigningKey

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy.engine import permit_signer
from gatewatch.processors.scenarios import Scenario
from gatewatch.processors.timefmt import parse_time_ms
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import WebhookBackend
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal
from gatewatch.streams.app.drill import DRILL_START
from gatewatch.streams.app.replay import Replayer, read_envelopes, sources_of
from gatewatch.streams.app.simulate import write_envelopes
from gatewatch.streams.runtime import topics
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.executor.helpers import trusted
from tests.executor.webhook_server import WebhookServer

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)


@pytest.fixture(scope="module")
def spike_actions(tmp_path_factory):
    import io
    spec = yaml.safe_load((CONFIGS / "scenarios" / "traffic_spike.yaml").read_text())
    buf = io.BytesIO()
    write_envelopes(Scenario(spec, start_ms=parse_time_ms(DRILL_START)), buf)
    buf.seek(0)
    envs = list(read_envelopes(buf, Counter()))
    rp = Replayer(load_policy_dir(CONFIGS / "policies"), permit_signer(DECIDER), sources=sources_of(envs))
    out = rp.feed_many(envs) + rp.finish()
    acts = [orjson.loads(v) for t, _k, v in out if t == topics.topic("actions")]
    return [a for a in acts if a["kind"] in ("abort", "hook")]


def run(tmp_path, actions, respond=None, reply=None, ack_keys=None):
    with WebhookServer(respond, reply=reply) as hook:
        now = [0]
        led = Ledger(tmp_path / "ledger.db", lambda body: seal(EXECUTOR, body))
        backends = {"hook": WebhookBackend("hook", hook.url, EXECUTOR, timeout_s=1, deadline_s=2,
                                           rng=random.Random(0), ack_keys=ack_keys)}
        h = core.ActionHandler(led, backends, lambda rec: "hook", trusted(DECIDER), clock_ms=lambda: now[0])
        for a in actions:
            now[0] = parse_time_ms(a["ts"]) + 1000  # the executor sees each action as it is published
            h.handle(canonical_json(a))
        receipts = [orjson.loads(r.body) for r in led.receipts_after(0)]
        return list(hook.requests), receipts


def test_one_backend_call_per_incident_and_action_kind(tmp_path, spike_actions):
    rollbacks = [a for a in spike_actions if a["action"] == "rollback"]
    assert len(rollbacks) >= 2 and len({a["incident"] for a in rollbacks}) == 1  # err5xx and burn_4h: one incident
    kinds = {(a["incident"], a["action"]) for a in spike_actions}
    requests, receipts = run(tmp_path, spike_actions)
    assert len(requests) == len(kinds)
    assert sorted(r["key"] for r in requests) == sorted(f"{i}:{k}" for i, k in kinds)
    results = [r for r in receipts if r["type"] == "RESULT"]
    assert Counter(r["status"] for r in results) == {"success": len(kinds),
                                                     "deduplicated": len(spike_actions) - len(kinds)}
    for r in results:  # each receipt names its incident
        act = next(a for a in spike_actions if a["id"] == r["action_id"])
        assert r["idempotency_key"] == f"{act['incident']}:{act['action']}"
        if r["status"] == "deduplicated":
            assert act["incident"] in r["detail"] and "already sent by action" in r["detail"]


def test_a_failed_first_call_is_tried_again_by_the_next_action(tmp_path, spike_actions):
    rollbacks = [a for a in spike_actions if a["action"] == "rollback"][:2]
    requests, receipts = run(tmp_path, rollbacks, respond=lambda n: (500, 0.0))
    assert len({r["key"] for r in requests}) == 2  # the second did not inherit the failed call's key
    assert all(r["status"] != "deduplicated" for r in receipts if r["type"] == "RESULT")


def test_each_incident_call_is_confirmed_by_the_recipients_ack_of_its_incident_key(tmp_path, spike_actions):
    from gatewatch.processors.acks import delivery_problem, sign_ack
    recipient = SigningKey(b"r" * 32)

    def reply(request, status):  # the recipient acks the incident key it was called with
        return orjson.dumps(sign_ack(recipient, orjson.loads(request["body"])["id"], request["key"], "success",
                                     "deploy", "2026-12-07T00:00:00.000Z"))
    requests, receipts = run(tmp_path, spike_actions, reply=reply, ack_keys=trusted(recipient))
    results = [r for r in receipts if r["type"] == "RESULT"]
    sent = [r for r in results if r["status"] == "success"]
    assert len(sent) == len(requests) and all(r["delivery"] == "confirmed" for r in sent)
    assert all(r["ack"]["idempotency_key"] == r["idempotency_key"] and ":" in r["idempotency_key"] for r in sent)
    assert all(delivery_problem(r, trusted(recipient)) is None for r in sent)
    # a deduplicated action made no call: nothing to confirm
    assert {r["delivery"] for r in results if r["status"] == "deduplicated"} == {"not_requested"}
