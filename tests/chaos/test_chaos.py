"""Chaos: SIGKILL every kind of worker at random points during a scenario, restart it, and check the
end state against an uninterrupted computation of the same input.

What must hold after the pipeline drains (5 seeds):
- the distinct signal records are exactly those `gatewatch replay` computes from the same input;
- the action ids on gw.actions are exactly those `gatewatch replay` computes from the same input;
- every permitted action was executed exactly once (one RESULT receipt each; the deploy webhook saw
  every rollback, with a valid permit);
- the WORM log holds each action, attestation and receipt exactly once, its decision root (the actions
  in id order) equals that of the uninterrupted computation, and its evidence bundle verifies, every
  action replaying from its attestation (verify --replay).
Receipts carry wall-clock times and entries arrive in consumption order, so the log's own root
differs between two runs by design; the decision root is the part that must not.
"""
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy.engine import permit_signer
from gatewatch.sinks.worm.store import WormStore, decision_root
from gatewatch.streams.app.demo import ABORT_ACTIONS, executor_config
from gatewatch.streams.app.supervisor import Supervisor
from gatewatch.streams.app.webhook import DeployWebhook
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, load_verify_key
from gatewatch.streams.runtime.policy_files import load_policy_dir
from tests.pipeline.helpers import envelopes, publish_inputs, read_topic, replay_outputs, streamed

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
KINDS = ("ingest", "signals", "decide", "executor", "worm", "witness-1", "witness-2")


def _supervisor(env, tmp, hook_url):
    (tmp / "logs").mkdir()
    executor_config(tmp / "executor.yml", hook_url)  # the demo's routing: aborts to the webhook
    sup = Supervisor(env, tmp / "logs")
    sup.add_pipeline(tmp, idle_s=2, executor_idle_s=2, sink_idle_s=3, checkpoint_interval=1,
                     ingest_args=("--batch-size", "500"))
    return sup


def _tend_for(sup, seconds):
    """Wait, restarting any worker that went idle meanwhile: during the chaos its input may still come
    (a downstream stage that exits before its upstream produced anything must not stay down)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sup.tend(publishing=True)
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_sigkill_every_worker_kind(kafka_bootstrap, topic_prefix, tmp_path, seed):
    rng = random.Random(seed)
    keys = tmp_path / "keys"
    init_keys(keys)
    hook = DeployWebhook(load_verify_key("executor", keys), load_verify_key("decider", keys))
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, GATEWATCH_TOPIC_PREFIX=topic_prefix,
               GATEWATCH_KEYS_DIR=str(keys), GATEWATCH_LOG_LEVEL="WARNING")
    published = publish_inputs(kafka_bootstrap)
    sup = _supervisor(env, tmp_path, hook.url)
    for name in KINDS:
        sup.start(name)
    killed = Counter()
    try:
        t_end_chaos = time.monotonic() + 8
        victims = rng.sample(KINDS, 4)
        for victim in victims:  # four different kinds, each killed at a random moment
            _tend_for(sup, max(0.0, min(t_end_chaos - time.monotonic(), rng.uniform(0.5, 2.5))))
            w = sup.workers[victim]
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGKILL)
                w.proc.wait()
                killed[victim] += 1
            sup.start(victim)
        deadline = time.monotonic() + 120
        while not sup.done():
            sup.tend(publishing=False)
            assert time.monotonic() < deadline, "pipeline did not drain"
            time.sleep(0.2)
    finally:
        sup.stop_all()
        hook.stop()
    assert killed, "nothing was killed"
    check_against_uninterrupted(kafka_bootstrap, topic_prefix, keys, tmp_path, hook, env, published)


def check_against_uninterrupted(kafka_bootstrap, topic_prefix, keys, tmp_path, hook, env, published):
    """The end state equals an uninterrupted computation of the same input (module docstring)."""

    # 1. the same decisions as an uninterrupted computation of the same input
    policy = load_policy_dir(CONFIGS / "policies")
    envs = envelopes(kafka_bootstrap)
    assert len(envs) == published, "the input topics do not hold what was published"
    expected = replay_outputs(envs, policy, permit_signer(load_signing_key("decider", keys)))
    assert f"{topic_prefix}actions" in expected, f"replay of {len(envs)} records decided nothing"
    got_signals = {v for _k, v in streamed(kafka_bootstrap, "signals")}
    want_signals = {v for _k, v in expected[f"{topic_prefix}signals"]}
    assert got_signals == want_signals, f"signals: {len(got_signals - want_signals)} extra, " \
                                        f"{len(want_signals - got_signals)} missing"
    want_actions = {orjson.loads(v)["id"]: orjson.loads(v) for _k, v in expected[f"{topic_prefix}actions"]}
    got_actions = {orjson.loads(v)["id"] for _p, _o, _k, v, _t in read_topic(kafka_bootstrap, "actions")}
    assert got_actions == set(want_actions)
    aborts = {i for i, a in want_actions.items() if a["kind"] == "abort" and a["action"] in ABORT_ACTIONS}
    assert aborts, "the scenario must produce rollbacks"

    # 2. executed exactly once
    receipts = {}
    for _p, _o, _k, v, _t in read_topic(kafka_bootstrap, "receipts"):
        r = orjson.loads(v)
        receipts[r["id"]] = r
    results = defaultdict(set)
    for r in receipts.values():
        if r["type"] == "RESULT":
            results[r["action_id"]].add(r["id"])
    assert {a: len(ids) for a, ids in results.items() if a in want_actions} == {a: 1 for a in want_actions}
    hooked = {c["action"]["id"] for c in hook.calls if c["permit_ok"]}
    assert aborts <= hooked and all(c["permit_ok"] for c in hook.calls)
    chain = subprocess.run([sys.executable, "-m", "gatewatch", "executor", "verify", "--ledger",
                            str(tmp_path / "executor.db")], env=env, capture_output=True, text=True)
    assert chain.returncode == 0, chain.stdout + chain.stderr

    # 3. the WORM log: each action and receipt once, the same decision root as the uninterrupted
    # computation (its own root cannot match: see decision_root), and a bundle that verifies offline
    import sqlite3
    db = sqlite3.connect(tmp_path / "worm.db")
    ids = Counter(row[0] for row in db.execute("SELECT id FROM entries"))
    db.close()
    # decide's attestations too: a restarted decide attests from its restored state, as replay does
    want_attestations = {orjson.loads(v)["id"] for _k, v in expected[f"{topic_prefix}attestations"]}
    assert set(ids) == set(want_actions) | set(receipts) | want_attestations and max(ids.values()) == 1
    with WormStore(str(tmp_path / "worm.db")) as store:
        logged = [(e.id, e.leaf) for e in store.decisions()]
    assert decision_root(logged) == decision_root((i, canonical_json(a)) for i, a in want_actions.items())
    bundle = tmp_path / "evidence.tar.gz"
    ev = subprocess.run([sys.executable, "-m", "gatewatch", "evidence", "--db", str(tmp_path / "worm.db"),
                         "--out", str(bundle), "--policy", "configs/policies", "--collect"],
                        env=env, capture_output=True, text=True)
    assert ev.returncode == 0, ev.stderr
    v = subprocess.run([sys.executable, "-m", "gatewatch", "verify", str(bundle), "--trusted-keys", env["GATEWATCH_KEYS_DIR"],
                        "--replay"], env=env, capture_output=True, text=True)
    assert v.returncode == 0, v.stdout + v.stderr
