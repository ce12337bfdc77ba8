"""Found by a security review of the executor: one incident's call after a failed first call, a
backend that raises after INTENT, a shell behind env's options, an action too big for an
environment variable. Real ledger, real keys, fake backends where the effect is the question."""
from __future__ import annotations

import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.processors.canonical import canonical_json, content_id
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import CommandBackend, Outcome
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal
from tests.executor.helpers import action_record, permitted, trusted

DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)


class Backend:
    type, name = "fake", "b"

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def execute(self, record, body, key):
        self.calls.append(key)
        return self.answer(len(self.calls))


def handler(tmp_path, backend):
    led = Ledger(tmp_path / "ledger.db", lambda body: seal(EXECUTOR, body))
    return core.ActionHandler(led, {"b": backend}, lambda rec: "b", trusted(DECIDER))


def results(h) -> list[dict]:
    return [b for b in (orjson.loads(r.body) for r in h.ledger.receipts_after(0)) if b["type"] == "RESULT"]


def test_once_an_incidents_retry_succeeds_the_rest_of_the_incident_is_deduplicated(tmp_path):
    """Four rollbacks of one incident, the first call fails: one retry under the second action's id
    succeeds, and the third and fourth are that call's duplicates (before: each called again)."""
    b = Backend(lambda n: Outcome("failure" if n == 1 else "success", 1, "0" * 64, "x"))
    h = handler(tmp_path, b)
    incident = content_id({"scope": "checkout", "release": "1.2.3"})
    acts = [permitted(DECIDER, dict(action_record(n), incident=incident)) for n in range(1, 5)]
    for a in acts:
        h.handle(canonical_json(a))
    assert len(b.calls) == 2 and b.calls[1] == acts[1]["id"]
    assert [r["status"] for r in results(h)] == ["failure", "success", "deduplicated", "deduplicated"]
    assert all(acts[1]["id"] in r["detail"] for r in results(h)[2:])


def test_a_backend_that_raises_ends_the_action_with_a_failure_result_and_a_restart_starts(tmp_path):
    """backends.py: backends never raise. One that does (a NUL in a signed field reaching Popen) left
    the action in INTENT forever, and resume_in_flight raised at every start of the executor."""
    def boom(n):
        raise ValueError("embedded null byte")
    h = handler(tmp_path, Backend(boom))
    h.handle(canonical_json(permitted(DECIDER, action_record(1))))
    (r,) = results(h)
    assert r["status"] == "failure" and "ValueError: embedded null byte" in r["detail"]
    assert h.ledger.in_flight() == [] and h.resume_in_flight() == 0


@pytest.mark.parametrize("argv", [["env", "-i", "sh", "-c", "x"], ["/usr/bin/env", "FOO=1", "bash", "-c", "x"],
                                  ["env", "-S", "sh -c x"], ["env", "--", "sh", "-c", "x"], ["env", "dash", "-ec", "x"]])
def test_a_shell_behind_envs_options_is_refused_at_load(argv):
    with pytest.raises(ValueError, match="runs a shell command string"):
        CommandBackend("r", argv)


def test_env_running_a_program_is_still_allowed():
    CommandBackend("r", ["env", "-i", "FOO=1", "/usr/local/bin/rollback", "{scope}"])


def test_an_action_over_an_environment_variables_limit_still_runs(tmp_path):
    """The action JSON went to GATEWATCH_ACTION_JSON too, and the kernel refuses one string over 128
    KiB ('Argument list too long'): the program never started. stdin always has it."""
    out = tmp_path / "got.json"
    cb = CommandBackend("b", ["python3", "-c", f"import sys; open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())"])
    big = dict(action_record(1), notes="x" * 200_000)
    big["id"] = content_id({k: v for k, v in big.items() if k != "id"})
    rec = permitted(DECIDER, big)
    o = cb.execute(rec, canonical_json(rec), "k")
    assert o.status == "success" and orjson.loads(out.read_bytes())["notes"] == "x" * 200_000


def test_an_action_not_keyed_by_its_scope_is_refused(tmp_path):
    """gw.actions is keyed by scope, so each scope's actions live on one partition, judged by one
    executor shard and its ledger. A copy re-produced under another key ran once per shard."""
    b = Backend(lambda n: Outcome("success", 1, "0" * 64, "x"))
    h = handler(tmp_path, b)
    rec = permitted(DECIDER, action_record(1))
    assert h.handle(canonical_json(rec), b"elsewhere") == core.REFUSED
    assert h.handle(canonical_json(rec), None) == core.REFUSED
    assert not b.calls
    assert h.handle(canonical_json(rec), b"checkout") == core.EXECUTED and len(b.calls) == 1


def test_a_damaged_ledger_is_a_clear_refusal_not_a_fresh_start(tmp_path):
    from gatewatch.streams.runtime.errors import GatewatchError
    path = tmp_path / "ledger.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GatewatchError, match="not a readable ledger"):
        Ledger(path, lambda body: seal(EXECUTOR, body))
    assert path.read_bytes() == b"this is not sqlite" * 100  # left as it was, for whoever restores it
