"""Trajectory linker (seed 002 §5.1, §25.2): spans of one tenant that share the policy's key
fields form a trajectory, in event time. Pure and deterministic: the events are a function of
the ordered input per tenant (and of the state it was restored from).

Semantics (docs/trajectory_quality.md has the long form):
- Event time is per tenant: T(tenant) = max `when` of the tenant's spans seen so far (gw.spans is
  keyed by tenant, so one tenant's spans arrive in order on one partition). It never goes back.
- A trajectory is open per (tenant, key), key = the values of `key_fields` (default ["this"]).
- Before a span is applied, T advances to max(T, span.when) and every open trajectory whose
  deadline <= T closes, in (deadline, trajectory_id) order. deadline = min(last_when +
  close_timeout, first_when + window): reason `timeout` if the first term decides (ties go to
  timeout), `window` otherwise. The close event's ts is the deadline itself, so a close happens
  exactly at last_when + close_timeout in event time, whatever span revealed it.
- Late spans: when + close_timeout <= T (it could only reopen a trajectory that has already
  closed by then) -> rejected with reason `late`.
- Excepted spans (a pattern "field:glob" of `exceptions` matches, e.g. "this:heartbeat-*") are
  not linked; they still advance T.
- Otherwise the span joins the open trajectory of its key (or opens one) and yields a
  `trajectory_edge` at position 0, 1, 2… (prev_span_id = the previous span of the trajectory).
- Rule close: a span whose `status` is in `close_statuses` closes its trajectory right after its
  edge, reason `rule`, ts = the span's when.
- trajectory_id = "t_" + content_id({"tenant", "key": {field: value}, "first_span_id"}).

Closed trajectories are handed back as `Closed` records; scoring them is gatewatch.processors.quality's job.
"""
from __future__ import annotations

import fnmatch
import heapq
from dataclasses import dataclass, field

from gatewatch.processors.canonical import content_id
from gatewatch.processors.spans import Span
from gatewatch.processors.timefmt import format_duration, format_ts, parse_duration_ms


@dataclass(frozen=True)
class LinkerPolicy:
    key_fields: tuple[str, ...] = ("this",)
    window_ms: int = 24 * 3_600_000
    close_timeout_ms: int = 6 * 3_600_000
    exceptions: tuple[str, ...] = ("this:heartbeat-*",)
    close_statuses: tuple[str, ...] = ("closed", "completed", "cancelled")

    @classmethod
    def from_dict(cls, d: dict | None) -> "LinkerPolicy":
        d = dict(d or {})
        unknown = set(d) - {"key_fields", "window", "close_timeout", "exceptions", "close_statuses"}
        if unknown:
            raise ValueError(f"trajectory_linker: unknown keys {sorted(unknown)}")
        kf = tuple(d.get("key_fields", cls.key_fields))
        if not kf or not all(isinstance(k, str) and k for k in kf):
            raise ValueError("trajectory_linker.key_fields must be a non-empty list of field names")
        exc = tuple(d.get("exceptions", cls.exceptions) or ())
        for e in exc:
            if not isinstance(e, str) or ":" not in e:
                raise ValueError(f"trajectory_linker.exceptions: {e!r} is not 'field:glob'")
        p = cls(key_fields=kf,
                window_ms=parse_duration_ms(d.get("window", "24h")),
                close_timeout_ms=parse_duration_ms(d.get("close_timeout", "6h")),
                exceptions=exc,
                close_statuses=tuple(d.get("close_statuses", cls.close_statuses) or ()))
        if p.close_timeout_ms <= 0 or p.window_ms <= 0:
            raise ValueError("trajectory_linker: window and close_timeout must be > 0")
        return p

    def to_dict(self) -> dict:
        return {"key_fields": list(self.key_fields), "window": format_duration(self.window_ms),
                "close_timeout": format_duration(self.close_timeout_ms),
                "exceptions": list(self.exceptions), "close_statuses": list(self.close_statuses)}

    def exception_matchers(self) -> list[tuple[str, str]]:
        return [tuple(e.split(":", 1)) for e in self.exceptions]


@dataclass
class Trajectory:
    """An open trajectory. Counters only: memory is O(open trajectories), never O(spans)."""
    trajectory_id: str
    key: list
    first_span_id: str
    first_ms: int
    last_ms: int
    last_span_id: str
    spans: int = 0
    confirmed: int = 0  # spans with a non-empty confirmed_by

    def to_list(self) -> list:
        return [self.trajectory_id, self.key, self.first_span_id, self.first_ms, self.last_ms,
                self.last_span_id, self.spans, self.confirmed]

    @classmethod
    def from_list(cls, v: list) -> "Trajectory":
        return cls(*v)


@dataclass(frozen=True)
class Closed:
    tenant: str
    trajectory: Trajectory
    reason: str  # timeout | window | rule
    ts_ms: int


@dataclass
class TenantLinker:
    event_time: int | None = None
    open: dict = field(default_factory=dict)    # key tuple -> Trajectory
    heap: list = field(default_factory=list)    # (deadline <= real one, trajectory_id, key tuple)


def _span_ts(span: Span) -> str:
    """format_ts(span.when_ms); `when` itself when it already is that canonical form (the usual
    case: 'YYYY-MM-DDTHH:MM:SS.mmmZ' parses to exactly the ms it spells), saving a strftime."""
    w = span.doc["when"]
    if len(w) == 24 and w[10] == "T" and w[19] == "." and w[23] == "Z":
        return w
    return format_ts(span.when_ms)


def _edge(tenant: str, t: Trajectory, span: Span, prev_span_id: str | None) -> dict:
    doc = span.doc
    return {"type": "trajectory_edge", "tenant": tenant, "trajectory_id": t.trajectory_id,
            "position": t.spans - 1, "src_span_id": span.id, "prev_span_id": prev_span_id,
            "this": doc["this"], "who": doc["who"], "did": doc["did"], "ts": _span_ts(span)}


class Linker:
    """Per-tenant linker state plus the policy. `link(span)` -> (edge events, closed, reject reason)."""

    def __init__(self, policy: LinkerPolicy):
        self.policy = policy
        self._exceptions = policy.exception_matchers()
        self._close_statuses = frozenset(policy.close_statuses)
        self.tenants: dict[str, TenantLinker] = {}

    # --- linking -------------------------------------------------------------------------------
    def deadline(self, t: Trajectory) -> tuple[int, str]:
        timeout_at = t.last_ms + self.policy.close_timeout_ms
        window_at = t.first_ms + self.policy.window_ms
        return (timeout_at, "timeout") if timeout_at <= window_at else (window_at, "window")

    def advance(self, tenant: str, now_ms: int) -> list[Closed]:
        """Move the tenant's event time to max(T, now_ms) and close what is due, in order."""
        st = self.tenants.get(tenant)
        if st is None:
            st = self.tenants[tenant] = TenantLinker()
        if st.event_time is None or now_ms > st.event_time:
            st.event_time = now_ms
        closed = []
        heap, T = st.heap, st.event_time
        while heap and heap[0][0] <= T:
            dl, tid, key = heapq.heappop(heap)
            t = st.open.get(key)
            if t is None or t.trajectory_id != tid:
                continue  # stale: that trajectory closed or was extended
            at, reason = self.deadline(t)
            if at != dl:  # extended since this entry was pushed: reschedule (one entry per trajectory)
                heapq.heappush(heap, (at, tid, key))
                continue
            del st.open[key]
            closed.append(Closed(tenant, t, reason, at))
        return closed

    def is_excepted(self, doc: dict) -> bool:
        for f, pattern in self._exceptions:
            v = doc.get(f)
            if isinstance(v, str) and fnmatch.fnmatchcase(v, pattern):
                return True
        return False

    def link(self, span: Span) -> tuple[list[dict], list[Closed], str | None]:
        """Apply one validated span. Returns (edges, closed in order, reject reason or None).

        `closed` may hold timeouts revealed by this span's time (they come first) and the rule
        close of its own trajectory (last). Excepted spans return ([], closed, "excepted")."""
        tenant, doc = span.tenant, span.doc
        closed = self.advance(tenant, span.when_ms)
        st = self.tenants[tenant]
        if span.when_ms + self.policy.close_timeout_ms <= st.event_time:
            return [], closed, "late"
        if self.is_excepted(doc):
            return [], closed, "excepted"
        key = tuple(doc.get(f) for f in self.policy.key_fields)
        if not all(type(v) is str for v in key):  # non-string key values: hash containers, keep scalars
            key = tuple(content_id(v) if isinstance(v, (dict, list)) else v for v in key)
        t = st.open.get(key)
        prev = None
        confirmed = 1 if doc.get("confirmed_by") else 0
        if t is None:
            tid = "t_" + content_id({"tenant": tenant, "key": dict(zip(self.policy.key_fields, key)),
                                     "first_span_id": span.id})
            t = Trajectory(tid, list(key), span.id, span.when_ms, span.when_ms, span.id, 1, confirmed)
            st.open[key] = t
        else:
            prev = t.last_span_id
            t.spans += 1
            t.confirmed += confirmed
            t.last_span_id = span.id
            if span.when_ms > t.last_ms:
                t.last_ms = span.when_ms
        edge = _edge(tenant, t, span, prev)
        if doc.get("status") in self._close_statuses:
            del st.open[key]
            closed.append(Closed(tenant, t, "rule", span.when_ms))
        elif prev is None:
            # One heap entry per trajectory, pushed at open; extensions only move the real deadline
            # later, and advance() reschedules an entry that comes due early.
            heapq.heappush(st.heap, (self.deadline(t)[0], t.trajectory_id, key))
        return [edge], closed, None

    # --- introspection and state ---------------------------------------------------------------
    def active(self, tenant: str | None = None) -> int:
        if tenant is not None:
            st = self.tenants.get(tenant)
            return len(st.open) if st else 0
        return sum(len(st.open) for st in self.tenants.values())

    def to_state(self, tenant: str) -> dict:
        """JSON-able state of one tenant (the heap is rebuilt from the open trajectories)."""
        st = self.tenants.get(tenant)
        if st is None:
            return {"event_time": None, "open": []}
        return {"event_time": st.event_time,
                "open": [t.to_list() for _, t in sorted(st.open.items(), key=lambda kv: kv[1].trajectory_id)]}

    def load_state(self, tenant: str, state: dict) -> None:
        st = TenantLinker(event_time=state.get("event_time"))
        for v in state.get("open", []):
            t = Trajectory.from_list(v)
            key = tuple(t.key)
            st.open[key] = t
            st.heap.append((self.deadline(t)[0], t.trajectory_id, key))
        heapq.heapify(st.heap)
        self.tenants[tenant] = st
