"""The append-only entry store: SQLite in WAL mode, synchronous=FULL, UPDATE/DELETE refused by triggers.

Why SQLite rather than fsynced segment files: one transaction makes a whole batch
durable with one WAL fsync (group commit), and that same transaction carries the
entries, the Merkle nodes they complete and their id index, so a crash (kill -9,
power loss) leaves either all of a batch or none of it; there is no torn tail to
detect and repair, no separate index to rebuild, and an auditor can open the file
with any SQLite tool. synchronous=FULL fsyncs the WAL at every commit, so once
``append_batch`` returns the entries survive power loss. Triggers make the tables
append-only for every client of the file (tamper evidence is still the Merkle root
and the co-signed checkpoints: whoever can write the file can drop the triggers).

Tables:
- entries(idx, id UNIQUE, topic, leaf, leaf_hash): the log; idx is contiguous from 0,
  leaf = canonical JSON of the consumed record value, leaf_hash = RFC 9162 leaf hash.
  A record whose id is already present appends nothing (re-delivery is a no-op).
- nodes(level, idx, hash): every perfect Merkle subtree of level >= 1, written in the
  same transaction as the entries completing it, so proofs and the right edge come from
  O(log n) lookups instead of a rebuild (level 0 is entries.leaf_hash).
- notes(hash, kind, origin, size, note, proof, ts_ms): signed checkpoints the log published
  (kind "log", with the consistency proof from the previous one) and cosigned notes seen
  from witnesses (kind "cosigned"); the evidence command reads the newest quorum one here.
"""
from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Iterable, Iterator

import orjson

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.shadow import is_shadow_decision
from gatewatch.sinks.worm import merkle

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries(
  idx INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, topic TEXT NOT NULL,
  leaf BLOB NOT NULL, leaf_hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes(
  level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notes(
  hash TEXT PRIMARY KEY, kind TEXT NOT NULL, origin TEXT NOT NULL, size INTEGER NOT NULL,
  note TEXT NOT NULL, proof TEXT, ts_ms INTEGER);
"""
_TRIGGERS = "".join(
    f"CREATE TRIGGER IF NOT EXISTS {t}_no_{op.lower()} BEFORE {op} ON {t} "
    f"BEGIN SELECT RAISE(ABORT, '{t} is append-only'); END;\n"
    for t in ("entries", "nodes", "notes") for op in ("UPDATE", "DELETE"))


@dataclass(frozen=True)
class Entry:
    index: int
    id: str
    topic: str
    leaf: bytes


@dataclass(frozen=True)
class Candidate:
    """A consumed record that belongs in the log."""
    id: str
    topic: str
    leaf: bytes


class Rejected(Exception):
    """A record that cannot be logged; the reason goes to gw.dlq."""


def candidate_from_record(kind: str, topic: str, raw: bytes | None, admit=None) -> Candidate | None:
    """The log entry for a consumed record value, None when the record is not for the log
    (trajectory events other than diamond_candidate), Rejected when it is unusable.

    kind is the catalogue name: actions, receipts or trajectories. admit(kind, topic, value)
    returns a refusal reason or None (the sink passes gatewatch.sinks.worm.admission's checks).
    """
    if raw is None:
        raise Rejected("empty_value")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise Rejected("not_json") from None
    if not isinstance(value, dict):
        raise Rejected("not_an_object")
    if kind == "trajectories" and value.get("type") != "diamond_candidate":
        return None
    if kind == "shadow" and value.get("shadow") is True and "verdict" in value and "id" not in value:
        return None  # a shadow gate record: status, not a decision
    rid = value.get("id")
    if not isinstance(rid, str) or not rid:
        raise Rejected("missing_id")
    if admit is not None:
        why = admit(kind, topic, value)
        if why:
            raise Rejected(why)
    return Candidate(rid, topic, canonical_json(value))


LOGGED_KINDS = ("actions", "receipts", "trajectories", "attestations", "shadow")  # the catalogue topics the sink logs
ACTION_KINDS = ("hook", "abort", "promote", "gate")
RECEIPT_TYPES = ("INTENT", "RESULT", "REFUSED")


def is_receipt(value: dict) -> bool:
    """An executor receipt by its shape (it copies an action's kind and action, never its permit)."""
    return value.get("type") in RECEIPT_TYPES and isinstance(value.get("action_id"), str) and "permit" not in value


def is_action(topic: str, value: dict) -> bool:
    """A decider action by its topic's name or its shape: relabelling the topic (or another
    GATEWATCH_TOPIC_PREFIX) cannot hide one. A shadow decision (processors.shadow: no permit,
    marked, its id the hash of the rest) is none unless it sits on an actions topic, where it is
    an action without a permit and refused as one."""
    return not is_receipt(value) and not (is_shadow_decision(value) and not topic.endswith("actions")) and (
        topic.endswith("actions") or "permit" in value or value.get("kind") in ACTION_KINDS)


def decision_root(actions: Iterable[tuple[str, bytes]]) -> bytes:
    """RFC 9162 root of (action id, canonical action record) pairs taken in id order, each id once.

    The log's own root depends on the order records arrived in from several partitions, and it
    covers receipts, which carry the executor's signed wall-clock time, so no two runs share it.
    This one covers only the decisions: the same input, policy and decider key give the same
    root live and in `gatewatch replay --keys-dir` (which prints it)."""
    first: dict[str, bytes] = {}
    for aid, leaf in actions:  # the first wins, as in the log (its ids are unique)
        first.setdefault(aid, leaf)
    return merkle.root(leaf for _id, leaf in sorted(first.items()))


class WormStore:
    def __init__(self, path: str, synchronous: str = "FULL"):
        self.path = str(path)
        # autocommit mode: transactions are explicit (BEGIN IMMEDIATE ... COMMIT) = one fsync each
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.executescript(SCHEMA + _TRIGGERS)
        self._load()

    # ------------------------------------------------------------ state
    def _load(self) -> None:
        (n,) = self.db.execute("SELECT COUNT(*) FROM entries").fetchone()
        hashes = [self._perfect(lvl, i) for lvl, i in merkle.CompactRange.perfect_ranges(n)]
        self._pending_nodes: list[tuple[int, int, bytes]] = []
        self.tree = merkle.CompactRange(n, hashes, on_node=lambda l, i, h: self._pending_nodes.append((l, i, h)))

    @property
    def size(self) -> int:
        return self.tree.size

    def root(self) -> bytes:
        return self.tree.root()

    def _perfect(self, level: int, idx: int) -> bytes:
        if level == 0:
            row = self.db.execute("SELECT leaf_hash FROM entries WHERE idx=?", (idx,)).fetchone()
        else:
            row = self.db.execute("SELECT hash FROM nodes WHERE level=? AND idx=?", (level, idx)).fetchone()
        if row is None:
            raise KeyError(f"missing Merkle node level={level} idx={idx}")
        return row[0]

    # ------------------------------------------------------------ writes
    def append_batch(self, candidates: Iterable[Candidate]) -> list[int]:
        """Append the candidates whose id is new, in order, in one durable transaction.
        Returns the indexes appended (empty when everything was a re-delivery)."""
        cands = list(candidates)
        cur = self.db.cursor()
        appended: list[int] = []
        cur.execute("BEGIN IMMEDIATE")
        try:
            seen = self._present({c.id for c in cands})  # one query per chunk, not per record
            rows = []
            for c in cands:
                if c.id in seen:
                    continue
                seen.add(c.id)
                idx = self.tree.size
                lh = merkle.hash_leaf(c.leaf)
                rows.append((idx, c.id, c.topic, c.leaf, lh))
                self.tree.append(lh)
                appended.append(idx)
            if rows:
                cur.executemany("INSERT INTO entries(idx,id,topic,leaf,leaf_hash) VALUES(?,?,?,?,?)", rows)
                cur.executemany("INSERT INTO nodes(level,idx,hash) VALUES(?,?,?)", self._pending_nodes)
            cur.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self._load()  # the in-memory right edge must match what is durable
            raise
        finally:
            self._pending_nodes.clear()
        return appended

    def _present(self, ids: set[str]) -> set[str]:
        found: set[str] = set()
        ids_l = list(ids)
        for i in range(0, len(ids_l), 500):
            chunk = ids_l[i:i + 500]
            q = f"SELECT id FROM entries WHERE id IN ({','.join('?' * len(chunk))})"
            found.update(r[0] for r in self.db.execute(q, chunk))
        return found

    def add_note(self, kind: str, origin: str, size: int, note: str, proof: list[bytes] | None = None,
                 ts_ms: int | None = None) -> bool:
        """Store a signed note once (keyed by its sha256). Returns True when it was new."""
        h = hashlib.sha256(note.encode()).hexdigest()
        ptxt = None if proof is None else orjson.dumps([p.hex() for p in proof]).decode()
        cur = self.db.execute("INSERT OR IGNORE INTO notes(hash,kind,origin,size,note,proof,ts_ms) VALUES(?,?,?,?,?,?,?)",
                              (h, kind, origin, size, note, ptxt, ts_ms))
        return cur.rowcount == 1

    # ------------------------------------------------------------ reads
    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]:
        end = self.size if end is None else end
        for idx, eid, topic, leaf in self.db.execute(
                "SELECT idx,id,topic,leaf FROM entries WHERE idx>=? AND idx<? ORDER BY idx", (start, end)):
            yield Entry(idx, eid, topic, bytes(leaf))

    def decisions(self) -> list[Entry]:
        """The action entries, in log order, chosen by `is_action` as `gatewatch verify` chooses
        them. A full scan: not a probe."""
        out = []
        for e in self.entries():
            value = orjson.loads(e.leaf)
            if isinstance(value, dict) and is_action(e.topic, value):
                out.append(e)
        return out

    def alteration(self) -> str | None:
        """None when every entry's leaf hashes to its logged leaf hash, the indexes run 0..size-1
        and the leaves' Merkle root is the tree's; else the first difference (a full scan)."""
        hashes = []
        for i, (idx, leaf, leaf_hash) in enumerate(self.db.execute(
                "SELECT idx, leaf, leaf_hash FROM entries ORDER BY idx")):
            if idx != i:
                return f"entry {i}: missing (the log was altered)"
            hashes.append(merkle.hash_leaf(bytes(leaf)))
            if hashes[-1] != bytes(leaf_hash):
                return f"entry {i}: its leaf does not hash to the logged leaf hash (the log was altered)"
        if len(hashes) != self.size or merkle.Levels(hashes).root() != self.root():
            return "the entries' Merkle root differs from the tree's nodes (the log was altered)"
        return None

    def has_id(self, eid: str) -> bool:
        return self.db.execute("SELECT 1 FROM entries WHERE id=?", (eid,)).fetchone() is not None

    def range_hash(self, a: int, b: int) -> bytes:
        return merkle.range_hash_from_perfect(self._perfect)(a, b)

    def root_at(self, size: int) -> bytes:
        if size == 0:
            return merkle.EMPTY_ROOT
        return self.range_hash(0, size)

    def matches(self, size: int, root: bytes) -> bool:
        """The store still holds the tree it signed at `size` (cheap: O(log n) node reads). An
        insider who truncated it, or rewrote entries with the nodes over them, fails this."""
        try:
            return self.size >= size and self.root_at(size) == root
        except KeyError:  # a node deleted from under the tree
            return False

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return merkle.inclusion_path(index, self.size if size is None else size, self.range_hash)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return merkle.consistency_path(old_size, self.size if new_size is None else new_size, self.range_hash)

    def notes(self, kind: str | None = None) -> list[dict]:
        q = "SELECT hash,kind,origin,size,note,proof,ts_ms FROM notes"
        args: tuple = ()
        if kind:
            q, args = q + " WHERE kind=?", (kind,)
        rows = self.db.execute(q + " ORDER BY size, rowid", args).fetchall()
        return [{"hash": h, "kind": k, "origin": o, "size": s, "note": n,
                 "proof": None if p is None else [bytes.fromhex(x) for x in orjson.loads(p)], "ts_ms": t}
                for h, k, o, s, n, p, t in rows]

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "WormStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
