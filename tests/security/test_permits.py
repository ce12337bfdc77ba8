"""Issue 19, item 6: permits have a not-before and a bounded life; the leeway is capped.

Each refusal is checked through the executor's own handler (the reason lands in the REFUSED
receipt) or through config/policy loading (one-line error), next to a control that passes."""
from __future__ import annotations

import orjson
import pytest
from nacl.signing import SigningKey

from gatewatch.processors.signing import (
    MAX_LIFETIME_CEILING_MS,
    check_permit,
    issue_permit,
    permit_message,
    sign_b64,
)
from gatewatch.sinks.executor import core
from gatewatch.sinks.executor.backends import DryRunBackend
from gatewatch.sinks.executor.config import config_from_dict
from gatewatch.sinks.executor.ledger import Ledger
from gatewatch.sinks.executor.receipts import seal
from gatewatch.streams.runtime.errors import GatewatchError
from tests.executor.helpers import action_record, trusted

DECIDER, EXECUTOR = SigningKey(b"d" * 32), SigningKey(b"e" * 32)
NOW = 1_767_225_600_000  # the executor's clock in these tests (2026-01-01T00:00:00Z)
HOUR = 3_600_000


def _handler(tmp_path, **kw):
    led = Ledger(str(tmp_path / "ledger.db"), lambda body: seal(EXECUTOR, body))
    return core.ActionHandler(led, {"dry-run": DryRunBackend()}, lambda rec: "dry-run", trusted(DECIDER),
                              clock_ms=lambda: NOW, **kw)


def _run(tmp_path, not_before, expires, **kw):
    rec = action_record(1)
    rec = {**rec, "permit": issue_permit(DECIDER, rec, expires, not_before)}
    h = _handler(tmp_path, **kw)
    h.handle(orjson.dumps(rec))
    receipts = [orjson.loads(r.body) for r in h.ledger.receipts_after(0)]
    return receipts[-1]


def test_control_permit_inside_its_window_executes(tmp_path):
    r = _run(tmp_path, NOW - 60_000, NOW + HOUR - 60_000)
    assert r["type"] == "RESULT" and r["status"] == "success"


@pytest.mark.parametrize("expires,why", [
    (253402300799000, "lifetime_too_long"),          # year 9999
    (NOW + HOUR + 1, "lifetime_too_long"),             # just over the default 1 h
])
def test_permit_with_an_unbounded_life_is_refused(tmp_path, expires, why):
    r = _run(tmp_path, NOW, expires)
    assert r["type"] == "REFUSED" and r["reason"] == why


def test_permit_not_yet_valid_is_refused_and_leeway_covers_small_skew(tmp_path):
    r = _run(tmp_path, NOW + 120_000, NOW + HOUR)
    assert r["type"] == "REFUSED" and r["reason"] == "not_yet_valid"
    r = _run(tmp_path / "b", NOW + 120_000, NOW + HOUR, permit_leeway_ms=300_000)
    assert r["type"] == "RESULT"


def test_expired_permit_is_refused_and_leeway_is_capped(tmp_path):
    r = _run(tmp_path, NOW - 2 * HOUR, NOW - HOUR)
    assert r["type"] == "REFUSED" and r["reason"] == "expired"
    # a huge leeway passed in code is capped at 10 minutes: an hour-old expiry stays expired
    r = _run(tmp_path / "b", NOW - 2 * HOUR, NOW - HOUR, permit_leeway_ms=3650 * 24 * HOUR)
    assert r["type"] == "REFUSED" and r["reason"] == "expired"


def test_max_lifetime_is_capped_at_the_ceiling():
    rec = action_record(2)
    rec = {**rec, "permit": issue_permit(DECIDER, rec, NOW + 25 * HOUR, NOW)}
    assert check_permit(rec, trusted(DECIDER), NOW, max_lifetime_ms=10 ** 15) == "lifetime_too_long"
    ok = {**rec, "permit": issue_permit(DECIDER, rec, NOW + 24 * HOUR, NOW)}
    assert check_permit(ok, trusted(DECIDER), NOW, max_lifetime_ms=MAX_LIFETIME_CEILING_MS) is None


def test_not_before_is_signed():
    rec = action_record(3)
    rec = {**rec, "permit": issue_permit(DECIDER, rec, NOW + HOUR, NOW)}
    moved = {**rec, "permit": {**rec["permit"], "not_before": "2025-01-01T00:00:00.000Z"}}
    assert check_permit(moved, trusted(DECIDER), NOW) == "bad_signature"
    stripped = {**rec, "permit": {k: v for k, v in rec["permit"].items() if k != "not_before"}}
    assert check_permit(stripped, trusted(DECIDER), NOW) == "malformed_permit"
    inverted = dict(rec["permit"], not_before="2026-01-01T02:00:00.000Z")
    inverted["sig"] = sign_b64(DECIDER, permit_message(inverted))
    assert check_permit({**rec, "permit": inverted}, trusted(DECIDER), NOW) == "malformed_permit"


@pytest.mark.parametrize("key,value,ok", [
    ("permit_leeway", "3650d", False),
    ("permit_leeway", "11m", False),
    ("permit_leeway", "10m", True),
    ("permit_leeway", "30s", True),
    ("permit_max_lifetime", "9999d", False),
    ("permit_max_lifetime", "25h", False),
    ("permit_max_lifetime", "0s", False),
    ("permit_max_lifetime", "24h", True),
    ("permit_max_lifetime", "15m", True),
])
def test_executor_permit_settings_are_bounded(key, value, ok):
    doc = {"executor": {key: value}}
    if ok:
        config_from_dict(doc, "executor.yml")
        return
    with pytest.raises(GatewatchError) as e:
        config_from_dict(doc, "executor.yml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"executor.yml: executor.{key}")


@pytest.mark.parametrize("ttl,ok", [("3650d", False), ("0s", False), ("25h", False), ("2h", True), ("1h", True)])
def test_policy_permit_ttl_is_bounded(ttl, ok):
    from gatewatch.processors.policy import PolicyError
    from gatewatch.streams.runtime.policy_files import compose
    text = f"permits:\n  ttl: {ttl}\n"
    if ok:
        assert compose([("project.yml", text)]).hash
        return
    with pytest.raises(PolicyError) as e:
        compose([("project.yml", text)])
    assert "permits.ttl" in str(e.value) and "\n" not in str(e.value)
