"""The executor's durable local ledger: SQLite in WAL mode with synchronous=FULL.

It holds, per executor instance, every admitted action (by id, with its permit
nonce and its state), every refusal, and the receipt chain. Every change is one
transaction that also appends the receipt it implies, so the receipt chain and
the action states can never disagree, and a transaction is on disk (fsynced)
when the call returns.

Exactly-once effect discipline
------------------------------
1. admit():  INTENT is written (action row state='intent', nonce taken, INTENT
   receipt appended) and fsynced BEFORE the backend is called.
2. the backend runs the effect with idempotency key = action id, or incident:action for the
   actions of an incident, of which only the first admitted is run (the rest: RESULT
   "deduplicated", naming the first).
3. record_result(): state='result' and the RESULT receipt, fsynced.
4. Only then is the Kafka offset of the action committed.

A re-delivered action whose state is 'result' is never run again. An action with
INTENT but no RESULT is "in flight": the process died between 1 and 3, so we
cannot know whether the effect happened. It is re-run (at startup, from the
record stored here) with the SAME idempotency key, and its RESULT says how many
runs it took. That is the only case in which a backend may see an idempotency
key twice (apart from the retries of one run), which is why backends must treat
the Idempotency-Key as "do this at most once".

The ledger is per instance: run one executor per ledger file, and give each
instance a fixed set of partitions (static assignment), so every action id is
always judged by the same ledger.
"""
from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.streams.runtime.errors import GatewatchError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions(
  action_id  TEXT PRIMARY KEY,
  record_cid TEXT NOT NULL,            -- content id of the delivered record, permit included
  nonce      TEXT NOT NULL,
  scope      TEXT NOT NULL,
  record     BLOB NOT NULL,            -- canonical JSON: an in-flight action resumes from here alone
  backend    TEXT NOT NULL,
  state      TEXT NOT NULL CHECK (state IN ('intent', 'result')),
  runs       INTEGER NOT NULL DEFAULT 1,
  status     TEXT
);
CREATE TABLE IF NOT EXISTS nonces(nonce TEXT PRIMARY KEY, action_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS incidents(key TEXT PRIMARY KEY, action_id TEXT NOT NULL);  -- incident:action -> first action
CREATE TABLE IF NOT EXISTS refusals(record_cid TEXT PRIMARY KEY, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receipts(
  seq  INTEGER PRIMARY KEY,            -- 1, 2, 3 ... no gaps (one writer, one transaction each)
  id   TEXT NOT NULL UNIQUE,
  key  TEXT NOT NULL,                  -- Kafka key on the receipts topic (the action id)
  body BLOB NOT NULL                   -- the exact bytes produced
);
CREATE TABLE IF NOT EXISTS meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""

# admit() outcomes
NEW, DUPLICATE, IN_FLIGHT, REPLAYED_NONCE = "new", "duplicate", "in_flight", "replayed_nonce"


@dataclass(frozen=True)
class ActionRow:
    action_id: str
    record_cid: str
    nonce: str
    scope: str
    record: dict
    backend: str
    state: str
    runs: int
    status: str | None


@dataclass(frozen=True)
class StoredReceipt:
    seq: int
    id: str
    key: str
    body: bytes


Sealer = Callable[[dict], dict]  # receipt body with seq/prev -> receipt with id and sig


class Ledger:
    """Thread-safe (one connection, one lock); every write is one fsynced transaction."""

    def __init__(self, path: str | Path, seal: Sealer):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seal = seal
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:  # a damaged or foreign file: never start over it silently
            self._db.close()
            raise GatewatchError(f"executor ledger {self.path}: not a readable ledger ({e}); restore it from "
                                 f"a backup (a new one would run its actions again)") from None
        row = self._db.execute("SELECT seq, id FROM receipts ORDER BY seq DESC LIMIT 1").fetchone()
        self._head = (row[0], row[1]) if row else (0, None)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reads -------------------------------------------------------------------------------
    def lookup(self, action_id: str) -> ActionRow | None:
        with self._lock:
            return self._lookup(action_id)

    def in_flight(self) -> list[ActionRow]:
        """Actions with INTENT but no RESULT, oldest first (their INTENT order)."""
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT a.action_id FROM actions a JOIN receipts r ON r.key = a.action_id "
                "WHERE a.state = 'intent' GROUP BY a.action_id ORDER BY MIN(r.seq)")]
            return [self._lookup(i) for i in ids]

    def receipts_after(self, seq: int, limit: int = 10_000) -> list[StoredReceipt]:
        with self._lock:
            return [StoredReceipt(*r) for r in self._db.execute(
                "SELECT seq, id, key, body FROM receipts WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))]

    def head(self) -> tuple[int, str | None]:
        """(seq, id) of the last receipt; (0, None) when there is none."""
        with self._lock:
            return self._head

    def holds(self, seq: int, receipt_id: str | None) -> bool:
        """Whether this ledger's receipt `seq` is `receipt_id` (seq 0: the empty ledger's head)."""
        if seq == 0:
            return receipt_id is None
        with self._lock:
            row = self._db.execute("SELECT id FROM receipts WHERE seq = ?", (seq,)).fetchone()
        return row is not None and row[0] == receipt_id

    def counts(self) -> dict[str, int]:
        with self._lock:
            out = dict(self._db.execute("SELECT state, COUNT(*) FROM actions GROUP BY state").fetchall())
            out["refused"] = self._db.execute("SELECT COUNT(*) FROM refusals").fetchone()[0]
            return out

    def published_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT v FROM meta WHERE k = 'published_seq'").fetchone()
            return int(row[0]) if row else 0

    # -- writes (each one fsynced transaction) ------------------------------------------------
    def admit(self, record: dict, record_cid: str, backend: str, intent: dict) -> tuple[str, ActionRow | None, dict | None]:
        """Take the nonce and write INTENT for a permitted record, atomically.

        Returns (NEW, row, intent_receipt), (DUPLICATE, row, None) when the action has its
        RESULT, (IN_FLIGHT, row, None) when it has INTENT only, or (REPLAYED_NONCE, None, None)
        when another action already used this permit nonce.
        """
        action_id, nonce = record["id"], record["permit"]["nonce"]
        with self._lock, self._tx():
            row = self._lookup(action_id)
            if row is not None:
                return (DUPLICATE if row.state == "result" else IN_FLIGHT), row, None
            owner = self._db.execute("SELECT action_id FROM nonces WHERE nonce = ?", (nonce,)).fetchone()
            if owner is not None:
                return REPLAYED_NONCE, None, None
            self._db.execute(
                "INSERT INTO actions(action_id, record_cid, nonce, scope, record, backend, state) "
                "VALUES (?, ?, ?, ?, ?, ?, 'intent')",
                (action_id, record_cid, nonce, record["scope"], canonical_json(record), backend))
            self._db.execute("INSERT INTO nonces(nonce, action_id) VALUES (?, ?)", (nonce, action_id))
            key = incident_key(record)
            if key is not None:
                self._db.execute("INSERT OR IGNORE INTO incidents(key, action_id) VALUES (?, ?)", (key, action_id))
            receipt = self._append(action_id, intent)
            return NEW, self._lookup(action_id), receipt

    def incident_owner(self, key: str) -> str | None:
        """The first action admitted for this incident and action kind (incident_key)."""
        with self._lock:
            row = self._db.execute("SELECT action_id FROM incidents WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def take_incident(self, key: str, action_id: str) -> None:
        """This action's call succeeded after the incident's first one did not: from now on it is the
        incident's call, and later actions of the incident and kind are deduplicated against it."""
        with self._lock, self._tx():
            self._db.execute("UPDATE incidents SET action_id = ? WHERE key = ?", (action_id, key))

    def start_rerun(self, action_id: str) -> int:
        """Count one more run of an in-flight action (before re-running it). Returns the run number."""
        with self._lock, self._tx():
            self._db.execute("UPDATE actions SET runs = runs + 1 WHERE action_id = ? AND state = 'intent'",
                             (action_id,))
            return self._db.execute("SELECT runs FROM actions WHERE action_id = ?", (action_id,)).fetchone()[0]

    def record_result(self, action_id: str, result: dict) -> dict | None:
        """Write RESULT for an in-flight action; None (and nothing written) if it already has one."""
        with self._lock, self._tx():
            cur = self._db.execute(
                "UPDATE actions SET state = 'result', status = ? WHERE action_id = ? AND state = 'intent'",
                (result.get("status"), action_id))
            if cur.rowcount != 1:
                return None
            return self._append(action_id, result)

    def refuse(self, record_cid: str, key: str, refused: dict) -> dict | None:
        """Write a REFUSED receipt once per distinct delivered record; None if already refused."""
        with self._lock, self._tx():
            cur = self._db.execute("INSERT OR IGNORE INTO refusals(record_cid, reason) VALUES (?, ?)",
                                   (record_cid, refused["reason"]))
            if cur.rowcount != 1:
                return None
            return self._append(key, refused)

    def set_published_seq(self, seq: int) -> None:
        with self._lock, self._tx():
            self._db.execute("INSERT INTO meta(k, v) VALUES ('published_seq', ?) "
                             "ON CONFLICT(k) DO UPDATE SET v = excluded.v "
                             "WHERE CAST(excluded.v AS INTEGER) > CAST(meta.v AS INTEGER)", (str(seq),))

    # -- internals ---------------------------------------------------------------------------
    def _tx(self):
        return _Transaction(self)

    def _lookup(self, action_id: str) -> ActionRow | None:
        r = self._db.execute(
            "SELECT action_id, record_cid, nonce, scope, record, backend, state, runs, status "
            "FROM actions WHERE action_id = ?", (action_id,)).fetchone()
        if r is None:
            return None
        return ActionRow(r[0], r[1], r[2], r[3], orjson.loads(r[4]), r[5], r[6], r[7], r[8])

    def _append(self, key: str, body: dict) -> dict:
        seq, prev = self._head
        receipt = self._seal({**body, "seq": seq + 1, "prev": prev})
        data = canonical_json(receipt)
        self._db.execute("INSERT INTO receipts(seq, id, key, body) VALUES (?, ?, ?, ?)",
                         (seq + 1, receipt["id"], key, data))
        self._pending_head = (seq + 1, receipt["id"])
        return receipt


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT; the in-memory chain head moves only after COMMIT succeeded."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    def __enter__(self):
        self.ledger._pending_head = None
        self.ledger._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        db = self.ledger._db
        if exc_type is not None:
            db.execute("ROLLBACK")
            self.ledger._pending_head = None
            return False
        db.execute("COMMIT")
        if self.ledger._pending_head is not None:
            self.ledger._head = self.ledger._pending_head
        return False


def incident_key(record: dict) -> str | None:
    """"<incident>:<action>" for an action of an incident (processors.policy.unit), else None: the
    idempotency key every action of one incident and kind shares, so a backend sees one call."""
    inc = record.get("incident")
    return f"{inc}:{record['action']}" if isinstance(inc, str) and inc else None
