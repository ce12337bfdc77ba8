"""Acceptance: SIGKILL the executor at random points while 1,000 actions flow (3 seeded runs).

Every permitted action reaches the webhook at least once and is recorded as executed
exactly once; the webhook sees an idempotency key again only for an action that was
in flight (its RESULT says run > 1); the receipt chain has no gaps.
"""
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest
from nacl.signing import SigningKey

from gatewatch.processors.signing import key_id
from gatewatch.sinks.executor.receipts import verify_chain
from gatewatch.streams.runtime.keys import init_keys, load_signing_key, load_verify_key
from tests.executor.helpers import action_record, permitted
from tests.executor.kafka_io import produce_actions, read_receipts
from tests.executor.webhook_server import WebhookServer

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

N_ACTIONS, N_FORGED, N_SCOPES, KILLS = 1000, 10, 25, 5

CONFIG = """
executor: {{group: chaos, concurrency: 8, batch_size: 500, commit_interval: 100ms}}
backends:
  hook: {{type: webhook, url: "{url}", timeout: 2s, deadline: 20s, backoff_base: 20ms, backoff_max: 200ms}}
default_backend: hook
"""


def _executor(tmp_path, env, idle=None, crash_after=None):
    argv = [sys.executable, "-m", "gatewatch", "executor", "run", "--config", str(tmp_path / "executor.yml"),
            "--ledger", str(tmp_path / "ledger.db")]
    if idle is not None:
        argv += ["--exit-when-idle", str(idle)]
    env = dict(env)
    if crash_after:
        env["GATEWATCH_EXECUTOR_CRASH_AFTER_EFFECTS"] = str(crash_after)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_chaos_executes_every_action_exactly_once(kafka_bootstrap, topic_prefix, tmp_path, seed):
    rng = random.Random(seed)
    keys = tmp_path / "keys"
    init_keys(keys, roles=("decider", "executor"))
    decider = load_signing_key("decider", keys)
    good = [permitted(decider, action_record(seed * 10_000 + i, scope=f"svc{rng.randrange(N_SCOPES)}"))
            for i in range(N_ACTIONS)]
    forged = [permitted(SigningKey(bytes([seed]) * 32), action_record(-i - 1)) for i in range(N_FORGED)]
    stream = good + forged
    rng.shuffle(stream)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "GATEWATCH_KEYS_DIR": str(keys),
           "GATEWATCH_LOG_LEVEL": "WARNING"}

    with WebhookServer() as srv:
        (tmp_path / "executor.yml").write_text(CONFIG.format(url=srv.url))

        def flow():  # actions keep arriving while the executor is being killed
            for i in range(0, len(stream), 100):
                produce_actions(kafka_bootstrap, stream[i:i + 100])
                time.sleep(0.15)
        producer = threading.Thread(target=flow)
        producer.start()
        # first life: SIGKILLs itself exactly between an effect and its RESULT (an in-flight action)
        first = _executor(tmp_path, env, crash_after=rng.randint(1, 100))
        assert first.wait(60) == -signal.SIGKILL, first.stderr.read().decode()[-1500:]
        for _ in range(KILLS):  # then SIGKILL at random times
            proc = _executor(tmp_path, env)
            try:
                proc.wait(rng.uniform(0.8, 2.5))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
        producer.join()
        final = _executor(tmp_path, env, idle=1.5)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()[-2000:]

    vk = load_verify_key("executor", keys)
    receipts = read_receipts(kafka_bootstrap, until=lambda rs: sum(r["type"] == "RESULT" for r in rs) >= N_ACTIONS
                             and sum(r["type"] == "REFUSED" for r in rs) >= N_FORGED)
    unique = {r["id"]: r for r in receipts}.values()
    assert verify_chain(receipts, {key_id(vk): vk}) is None
    results = Counter(r["action_id"] for r in unique if r["type"] == "RESULT")
    intents = Counter(r["action_id"] for r in unique if r["type"] == "INTENT")
    good_ids = {r["id"] for r in good}
    assert set(results) == good_ids and set(results.values()) == {1}          # executed exactly once
    assert set(intents) == good_ids and set(intents.values()) == {1}
    assert good_ids <= set(srv.keys)                                          # reached the webhook
    assert not set(srv.keys) - good_ids                                       # forged ones never did
    refused = Counter(r["action_id"] for r in unique if r["type"] == "REFUSED")
    assert set(refused) == {r["id"] for r in forged} and set(refused.values()) == {1}
    run_of = {r["action_id"]: r["run"] for r in unique if r["type"] == "RESULT"}
    repeated = {k: n for k, n in srv.keys.items() if n > 1}
    assert all(run_of[k] > 1 and n <= run_of[k] for k, n in repeated.items()), repeated  # only in-flight ones
    print(f"seed {seed}: reruns {sum(r > 1 for r in run_of.values())}, repeated keys {len(repeated)}, final {out.decode().strip()}")
    assert any(run > 1 for run in run_of.values())                            # the in-flight path was exercised
    first_seen = list(dict.fromkeys(q["key"] for q in srv.requests))    # strict order within each scope
    scope_of = {r["id"]: r["scope"] for r in good}
    for scope in set(scope_of.values()):
        sent = [r["id"] for r in stream if r["id"] in good_ids and r["scope"] == scope]
        assert [k for k in first_seen if scope_of.get(k) == scope] == sent, scope
    check = subprocess.run([sys.executable, "-m", "gatewatch", "executor", "verify", "--ledger",
                            str(tmp_path / "ledger.db")], env=env, capture_output=True, timeout=60)
    assert check.returncode == 0, check.stderr.decode()
