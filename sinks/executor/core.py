"""One action, start to end, without Kafka: verify the permit, admit it once, run it, record the result.

Decision order for a delivered record (the reasons end up in REFUSED receipts):
1. not a JSON object with string id/scope/action           -> REFUSED malformed_action
2. same bytes as an admitted action: RESULT -> duplicate (nothing runs); INTENT only -> in flight,
   re-run with the same idempotency key (its permit was valid when INTENT was written)
3. gatewatch.processors.signing.check_permit (signature by a trusted decider, fields, digest, expiry)
                                                           -> REFUSED <reason>
4. the action id already admitted (e.g. a re-issued permit) -> duplicate / in flight as in 2
5. the permit nonce already used by another action        -> REFUSED replayed_nonce
6. INTENT (durable) -> backend -> RESULT (durable)
Refusals never take a nonce and never block the action id, so a forged copy cannot
pre-empt the real action. A refused record is receipted once per distinct record.
"""
from __future__ import annotations

import hashlib
import logging
import os
import signal
import sqlite3
import threading
import time
from typing import Callable

import orjson

from gatewatch.processors.canonical import canonical_json, content_id
from gatewatch.processors.signing import DEFAULT_MAX_LIFETIME_MS, check_permit
from gatewatch.processors.timefmt import format_ts
from gatewatch.sinks.executor import ledger as L
from gatewatch.sinks.executor.backends import Outcome
from gatewatch.sinks.executor.metrics import ExecutorMetrics
from gatewatch.streams.runtime.logs import log_event

log = logging.getLogger("gatewatch.executor")

EXECUTED, DUPLICATE, REFUSED, RERUN, BUSY = "executed", "duplicate", "refused", "rerun", "busy"
_MAX_ECHO = 256  # longest untrusted string echoed into a REFUSED receipt


ANY_KEY = object()  # handle() called without a Kafka record (tests, tools): no key to check


def _wall_ms() -> int:
    return int(time.time() * 1000)


class ActionHandler:
    """Thread-safe: one scope's actions run in order on one thread, scopes in parallel."""

    def __init__(self, ledger: L.Ledger, backends: dict, backend_for: Callable[[dict], str], trusted: dict,
                 metrics: ExecutorMetrics | None = None, clock_ms: Callable[[], int] = _wall_ms,
                 crash_after_effects: int | None = None, permit_leeway_ms: int = 0,
                 permit_max_lifetime_ms: int = DEFAULT_MAX_LIFETIME_MS):
        self.ledger = ledger
        self.backends = backends
        self.backend_for = backend_for
        self.trusted = trusted
        self.metrics = metrics or ExecutorMetrics()
        self.clock_ms = clock_ms  # permit expiry is judged by the executor's wall clock, on purpose
        self.permit_leeway_ms = permit_leeway_ms  # tolerated clock skew between decider and executor
        self.permit_max_lifetime_ms = permit_max_lifetime_ms  # expires - not_before at most this
        # Called with the INTENT receipt after it is durable and before the effect (the worker waits
        # there until the INTENT is on Kafka). None = do not wait.
        self.before_effect: Callable[[dict], None] | None = None
        self._running: set[str] = set()
        self._lock = threading.Lock()
        # Test-only fault injection: SIGKILL ourselves after the Nth effect, before its RESULT.
        self._crash_after = crash_after_effects
        self._effects = 0

    # -- entry points ------------------------------------------------------------------------
    def handle(self, raw: bytes | None, key=ANY_KEY) -> str:
        """Settle one delivered record; `key`: its Kafka key (gw.actions is keyed by scope). Raises
        only when the ledger (disk) fails."""
        try:
            return self._handle(raw, key)
        except (sqlite3.Error, OSError):
            raise
        except Exception as e:  # a record we did not foresee must not stop the executor
            log_event(log, "unprocessable action", logging.ERROR, error=f"{type(e).__name__}: {e}")
            return self._refuse(hashlib.sha256(raw or b"").hexdigest(), {}, "unprocessable")

    def _handle(self, raw: bytes | None, key=ANY_KEY) -> str:
        record = _decode(raw)
        if record is None:
            return self._refuse(hashlib.sha256(raw or b"").hexdigest(), {}, "malformed_action")
        rcid = content_id(record)
        if key is not ANY_KEY and key != record["scope"].encode():
            # on another partition than its scope's, another shard's ledger may run it too
            return self._refuse(rcid, record, "wrong_key")
        row = self.ledger.lookup(record["id"])
        if row is not None and row.record_cid == rcid:
            return self._known(row)
        reason = check_permit(record, self.trusted, self.clock_ms(), self.permit_max_lifetime_ms, self.permit_leeway_ms)
        if reason:
            return self._refuse(rcid, record, reason)
        backend = self.backend_for(record)
        state, row, intent = self.ledger.admit(record, rcid, backend, self._intent(record, backend))
        if state == L.REPLAYED_NONCE:
            return self._refuse(rcid, record, "replayed_nonce")
        if state != L.NEW:
            return self._known(row)
        if not self._claim(row.action_id):
            return BUSY
        return self._run(row, run=1, intent=intent)

    def resume_in_flight(self) -> int:
        """Re-run every action that has INTENT but no RESULT (the process died mid-effect)."""
        rows = self.ledger.in_flight()
        for row in rows:
            self._rerun(row)
        return len(rows)

    # -- internals ---------------------------------------------------------------------------
    def _known(self, row: L.ActionRow) -> str:
        if row.state == "result":
            self.metrics.duplicates.inc()
            return DUPLICATE
        return self._rerun(row)

    def _rerun(self, row: L.ActionRow) -> str:
        if not self._claim(row.action_id):
            return BUSY  # a re-delivery while the first delivery still runs
        run = self.ledger.start_rerun(row.action_id)
        self.metrics.reruns.inc()
        log_event(log, "re-running in-flight action", action_id=row.action_id, run=run)
        self._run(row, run=run)
        return RERUN

    def _claim(self, action_id: str) -> bool:
        with self._lock:
            if action_id in self._running:
                return False
            self._running.add(action_id)
            return True

    def _run(self, row: L.ActionRow, run: int, intent: dict | None = None) -> str:
        """Run a claimed action's effect and write its RESULT; releases the claim."""
        try:
            if intent is not None and self.before_effect is not None:
                self.before_effect(intent)
            record = row.record
            backend = self.backends.get(row.backend)
            key, first = self._key_for(record)
            t0 = time.monotonic()
            if first not in (None, row.action_id):  # seed 004: one incident, one call per action kind
                outcome = Outcome("deduplicated", 0, hashlib.sha256(b"").hexdigest(),
                                  f"incident {record['incident']}: {record['action']} already sent by action {first}")
            elif backend is None:
                outcome = Outcome("failure", 0, hashlib.sha256(b"").hexdigest(), f"unknown backend {row.backend}")
            else:
                try:
                    outcome = backend.execute(record, canonical_json(record), key)
                except Exception as e:  # noqa: BLE001 - after INTENT every action ends with a RESULT
                    outcome = Outcome("failure", 1, hashlib.sha256(b"").hexdigest(),
                                      f"error: {type(e).__name__}: {e}"[:300])
            duration = time.monotonic() - t0
            self._maybe_crash()
            self.ledger.record_result(row.action_id, {
                "type": "RESULT", "action_id": row.action_id, "scope": record["scope"],
                "action": record["action"], "kind": record.get("kind"), "backend": row.backend,
                "idempotency_key": key, "status": outcome.status, "attempts": outcome.attempts,
                "duration_ms": int(duration * 1000), "response_digest": outcome.response_digest,
                "detail": outcome.detail, "run": run, "dry_run": outcome.dry_run or None,
                "ts": format_ts(_wall_ms()), **outcome.delivery,
            })
            incident = L.incident_key(record)
            if outcome.status == "success" and incident is not None and key == row.action_id:
                self.ledger.take_incident(incident, row.action_id)  # the incident's first call had failed
            m = self.metrics
            m.executions.labels(record["action"], outcome.status).inc()
            m.attempts.labels(row.backend).inc(outcome.attempts)
            m.latency.labels(row.backend).observe(duration)
            if outcome.status not in ("success", "deduplicated"):
                log_event(log, "action did not succeed", logging.WARNING, action_id=row.action_id,
                          status=outcome.status, detail=outcome.detail, attempts=outcome.attempts)
            self._count_delivery(row, outcome, backend)
            return EXECUTED
        finally:
            with self._lock:
                self._running.discard(row.action_id)

    def _count_delivery(self, row: L.ActionRow, outcome: Outcome, backend) -> None:
        """Unconfirmed deliveries are counted (and, when the backend requires an ack, logged as a
        warning); the action is not retried: HTTP already answered, the receipt says unconfirmed."""
        d = outcome.delivery
        if d.get("delivery") == "not_requested":
            return
        self.metrics.deliveries.labels(row.backend, d["delivery"], d.get("delivery_reason", "")).inc()
        if d["delivery"] != "confirmed":
            log_event(log, "delivery not confirmed by the recipient",
                      logging.WARNING if getattr(backend, "ack_required", True) else logging.INFO,
                      action_id=row.action_id, backend=row.backend, reason=d.get("delivery_reason"))

    def _key_for(self, record: dict) -> tuple[str, str | None]:
        """(idempotency key, the incident's call when it already succeeded): an incident's actions
        share incident:action; when its first call did not succeed, a later one tries anew under its
        own id, and once one succeeds it is the incident's call (ledger.take_incident)."""
        key = L.incident_key(record)
        first = self.ledger.incident_owner(key) if key else None
        if key is None or first in (None, record["id"]):
            return key or record["id"], None
        row = self.ledger.lookup(first)
        return (key, first) if row is not None and row.status == "success" else (record["id"], None)

    def _intent(self, record: dict, backend: str) -> dict:
        return {"type": "INTENT", "action_id": record["id"], "scope": record["scope"], "action": record["action"],
                "kind": record.get("kind"), "backend": backend, "idempotency_key": self._key_for(record)[0],
                "permit_nonce": record["permit"]["nonce"], "record_digest": content_id(record),
                "ts": format_ts(_wall_ms())}

    def _refuse(self, rcid: str, record: dict, reason: str) -> str:
        body = {"type": "REFUSED", "reason": reason, "record_digest": rcid, "ts": format_ts(_wall_ms())}
        for field, src in (("action_id", "id"), ("scope", "scope"), ("action", "action"), ("kind", "kind")):
            v = record.get(src)
            if isinstance(v, str) and len(v) <= _MAX_ECHO:
                body[field] = v
        if self.ledger.refuse(rcid, body.get("action_id", rcid), body) is not None:
            self.metrics.refusals.labels(reason).inc()
            log_event(log, "action refused", logging.WARNING, reason=reason, action_id=body.get("action_id"))
        return REFUSED

    def _maybe_crash(self) -> None:
        if self._crash_after is None:
            return
        with self._lock:
            self._effects += 1
            hit = self._effects >= self._crash_after
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)


def _decode(raw: bytes | None) -> dict | None:
    try:
        record = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("id", "scope", "action")):
        return None
    return record
