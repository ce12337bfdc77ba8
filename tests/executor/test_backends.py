import hashlib
import random
import sys

from nacl.signing import SigningKey

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.signing import key_id, verify_b64
from gatewatch.sinks.executor.backends import (
    CommandBackend,
    DryRunBackend,
    WebhookBackend,
)
from tests.executor.helpers import action_record
from tests.executor.webhook_server import WebhookServer

EXECUTOR = SigningKey(b"e" * 32)
REC = action_record(1)
BODY = canonical_json(REC)


def _hook(url, **kw):
    opts = dict(timeout_s=1.0, deadline_s=3.0, backoff_base_s=0.01, backoff_max_s=0.05, rng=random.Random(1))
    opts.update(kw)
    return WebhookBackend(name="hook", url=url, signing_key=EXECUTOR, **opts)


def test_webhook_success_is_signed_with_idempotency_key():
    with WebhookServer() as srv:
        out = _hook(srv.url).execute(REC, BODY, REC["id"])
    assert (out.status, out.attempts) == ("success", 1)
    assert out.response_digest == hashlib.sha256(b'{"ok":true}').hexdigest()
    req = srv.requests[0]
    assert req["body"] == BODY and req["key"] == REC["id"]
    assert req["headers"]["X-Gatewatch-Key-Id"] == key_id(EXECUTOR.verify_key)
    assert verify_b64(EXECUTOR.verify_key, BODY, req["headers"]["X-Gatewatch-Signature"])


def test_webhook_retries_then_succeeds():
    with WebhookServer(lambda n: (503, 0) if n < 3 else (200, 0)) as srv:
        out = _hook(srv.url).execute(REC, BODY, REC["id"])
    assert (out.status, out.attempts) == ("success", 3)
    assert srv.keys[REC["id"]] == 3


def test_webhook_429_is_retried_but_404_is_permanent():
    with WebhookServer(lambda n: (429, 0) if n == 1 else (200, 0)) as srv:
        assert _hook(srv.url).execute(REC, BODY, REC["id"]).attempts == 2
    with WebhookServer(lambda n: (404, 0)) as srv:
        out = _hook(srv.url).execute(REC, BODY, REC["id"])
    assert (out.status, out.attempts, out.detail) == ("failure", 1, "http 404")
    assert srv.keys[REC["id"]] == 1


def test_webhook_timeout_stops_at_the_deadline():
    with WebhookServer(lambda n: (200, 2.0)) as srv:
        out = _hook(srv.url, timeout_s=0.1, deadline_s=1.0).execute(REC, BODY, REC["id"])
    assert out.status == "timeout" and out.attempts >= 2


def test_webhook_connection_refused_is_failure():
    out = _hook("http://127.0.0.1:9/none", deadline_s=0.2).execute(REC, BODY, REC["id"])
    assert out.status == "failure" and out.detail.startswith("error")


def test_deadline_running_out_in_a_backoff_sleep_keeps_the_last_attempts_status():
    """A refused connection stays a failure when the backoff sleep overshoots the deadline (a loaded
    machine); before, the check at the top of the next attempt reported a timeout."""
    now = [0.0]

    def oversleep(s):  # every sleep overshoots to the deadline
        now[0] += max(s, 0.2)

    out = _hook("http://127.0.0.1:9/none", deadline_s=0.2, clock=lambda: now[0], sleep=oversleep) \
        .execute(REC, BODY, REC["id"])
    assert (out.status, out.attempts) == ("failure", 1) and out.detail.startswith("error")


def test_command_backend_gets_stdin_and_env(tmp_path):
    script = ("import os,sys; d=sys.stdin.read(); "
              "sys.stdout.write(os.environ['GATEWATCH_SCOPE']+' '+os.environ['GATEWATCH_IDEMPOTENCY_KEY']+' '+str(len(d))); "
              "sys.exit(0 if sys.argv[1]=='checkout' else 3)")
    out = CommandBackend("cmd", [sys.executable, "-c", script, "{scope}"], 10).execute(REC, BODY, "k1")
    assert out.status == "success" and out.detail == "exit 0"
    assert out.response_digest == hashlib.sha256(f"checkout k1 {len(BODY)}".encode()).hexdigest()
    out = CommandBackend("cmd", [sys.executable, "-c", script, "x"], 10).execute(REC, BODY, "k1")
    assert (out.status, out.detail) == ("failure", "exit 3")
    out = CommandBackend("cmd", [sys.executable, "-c", "import time; time.sleep(5)"], 0.3).execute(REC, BODY, "k")
    assert out.status == "timeout"
    assert CommandBackend("cmd", [str(tmp_path / "missing")], 1).execute(REC, BODY, "k").status == "failure"


def test_dry_run_records_what_it_would_do():
    b = DryRunBackend()
    out = b.execute(REC, BODY, REC["id"])
    assert out.status == "success" and out.dry_run
    assert b.done[0]["would"] == "rollback" and b.done[0]["scope"] == "checkout"
