"""The gates and recent actions `gatewatch serve` materializes from Kafka, in memory.

gw.gates is compacted and keyed scope@release: the last record per key wins and a tombstone (null
value) deletes the key, exactly as compaction will leave the topic. gw.actions is a plain log: the
most recent MAX_ACTIONS are kept, each with the executor's receipts for it from gw.receipts
(INTENT / RESULT / REFUSED; matched by action_id). Everything here is thread-safe (the materializer writes, HTTP
threads read) and free of Kafka, so it is tested with plain records.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque

import orjson

from gatewatch.processors.names import valid_name, why_not

MAX_ACTIONS = 5000


def bad_name(what: str, text: str) -> str | None:
    """Why `text` is no valid scope or release name (processors.names: the grammar ingest admits),
    None when it is."""
    return None if valid_name(text) else f"{what}: {why_not(text)}"


def split_key(key: bytes | None) -> tuple[str, str] | None:
    """scope@release -> (scope, release); the release is after the last '@' ("" for a gate without
    releases). None for a key that is not that."""
    if not key:
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    scope, sep, release = text.rpartition("@")
    return (scope, release) if sep and scope else None


class GateStore:
    def __init__(self, max_actions: int = MAX_ACTIONS):
        self._lock = threading.Lock()
        self._gates: dict[tuple[str, str], dict] = {}
        self._by_scope: dict[str, set[str]] = {}  # scope -> its releases (lookups without a scan)
        self._actions: deque = deque(maxlen=max_actions)
        self._receipts: OrderedDict[str, list[dict]] = OrderedDict()  # action id -> receipts (bounded)
        self._max_receipts = 2 * max_actions
        self.applied = 0    # records applied (gates and actions)
        self.rejected = 0   # unreadable records skipped

    # ---- writes (the materializer) ----------------------------------------------------------
    def apply_gate(self, key: bytes | None, value: bytes | None) -> None:
        k = split_key(key)
        if k is None:
            self.rejected += 1
            return
        if value is None:  # tombstone: the gate is gone from the compacted topic
            with self._lock:
                if self._gates.pop(k, None) is not None:
                    rels = self._by_scope[k[0]]
                    rels.discard(k[1])
                    if not rels:
                        del self._by_scope[k[0]]
            self.applied += 1
            return
        try:
            rec = orjson.loads(value)
        except orjson.JSONDecodeError:
            self.rejected += 1
            return
        if not isinstance(rec, dict) or rec.get("verdict") not in ("pass", "fail", "pending") \
                or rec.get("scope", k[0]) != k[0] or rec.get("release", k[1]) != k[1]:
            self.rejected += 1  # a body that contradicts its key (a null release...) is unreadable too
            return
        rec.setdefault("scope", k[0])
        rec.setdefault("release", k[1])
        with self._lock:
            self._gates[k] = rec
            self._by_scope.setdefault(k[0], set()).add(k[1])
        self.applied += 1

    def _record(self, value: bytes, ok) -> dict | None:
        """The record as a dict when `ok(rec)`, else None (counted as rejected)."""
        try:
            rec = orjson.loads(value)
        except orjson.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict) or not ok(rec):
            self.rejected += 1
            return None
        return rec

    def apply_action(self, value: bytes | None) -> None:
        rec = None if value is None else self._record(value, lambda r: "scope" in r)
        if rec is None:
            return
        with self._lock:
            self._actions.append(rec)
        self.applied += 1

    def apply_receipt(self, value: bytes | None) -> None:
        rec = None if value is None else self._record(value, lambda r: isinstance(r.get("action_id"), str))
        if rec is None:
            return
        short = {k: rec.get(k) for k in ("id", "type", "status", "backend", "ts", "detail", "dry_run")}
        with self._lock:
            mine = self._receipts.setdefault(rec["action_id"], [])
            if all(r["id"] != short["id"] for r in mine):  # at-least-once delivery: dedupe by id
                mine.append(short)
            self._receipts.move_to_end(rec["action_id"])
            while len(self._receipts) > self._max_receipts:
                self._receipts.popitem(last=False)
        self.applied += 1

    # ---- reads (HTTP threads) ----------------------------------------------------------------
    def gates(self) -> list[dict]:
        with self._lock:
            return [self._gates[k] for k in sorted(self._gates)]

    def scopes(self) -> set[str]:
        with self._lock:
            return set(self._by_scope)

    def get(self, scope: str, release: str | None = None) -> dict | None:
        """The gate of (scope, release); without a release, the latest release of the scope: the one
        whose gate started last in event time (`since`), then the latest record."""
        with self._lock:
            if release is not None:
                return self._gates.get((scope, release))
            mine = [self._gates[(scope, r)] for r in self._by_scope.get(scope, ())]
        if not mine:
            return None
        return max(mine, key=lambda g: (str(g.get("since") or ""), str(g.get("ts") or ""), str(g["release"])))

    def releases(self, scope: str) -> list[str]:
        with self._lock:
            return sorted(self._by_scope.get(scope, ()))

    def live(self, per_scope: int = 3) -> list[dict]:
        """The latest `per_scope` releases of each scope (what /metrics exports: bounded)."""
        by_scope: dict[str, list[dict]] = {}
        for g in self.gates():
            by_scope.setdefault(g["scope"], []).append(g)
        out = []
        for scope in sorted(by_scope):
            gs = sorted(by_scope[scope], key=lambda g: (str(g.get("since") or ""), str(g.get("ts") or "")))
            out += gs[-per_scope:]
        return out

    def actions(self, scope: str | None = None, release: str | None = None, limit: int = 100) -> list[dict]:
        with self._lock:
            acts = [a for a in self._actions if (scope is None or a.get("scope") == scope)
                    and (release is None or a.get("release") == release)][-limit:]
            out = [dict(a, receipts=list(self._receipts.get(a.get("id"), ()))) for a in acts]
        return out[::-1]  # newest first
