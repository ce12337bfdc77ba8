"""Trajectory quality score, per-tenant quality meter, feature flags, derived-event guardrails,
and `SpanCycle`, the whole neutral span cycle of seed 002 (§2.1, §5, §15.3, §17, §18, §25.3) as one
pure object. The worker (gatewatch.streams.stages.trajectories) and the dry run (`gatewatch quality simulate`)
both drive exactly this object, so they publish the same events.

Definitions (also in docs/trajectory_quality.md):

Quality score of a closed trajectory with n spans, first/last span times t0/t1, and c spans whose
confirmed_by is non-empty; weights w (default mass 0.4, persistence 0.3, verification 0.3),
W = sum of the weights:
    mass          m = (n - 1) / ((n - 1) + mass_half)            0 for one span, 1/2 at n = mass_half + 1
    persistence   p = d / (d + persistence_half),  d = t1 - t0   0 for an instant, 1/2 at d = persistence_half
    verification  v = c / n                                      the share of confirmed spans
    components    points_i = round(100 * w_i * x_i / W, 2)       (what each part contributes)
    score         = round(sum of the points, 2)                  in [0, 100]

Quality meter (per tenant): a t-digest (fastdigest) of the scores seen so far. For each new score,
in order: if at least `min_samples` scores were seen before it, threshold = round(quantile(q), 2)
of the scores seen BEFORE this one (q = percentile_target, p96 -> 0.96); the trajectory is a
`diamond_candidate` when features.diamond is on, score >= threshold and score >= min_score. Then the
score is added. fastdigest is deterministic for a given sequence of operations; the meter always
queries before each update, which keeps the digest flushed, so a to_dict/from_dict round trip at any
point continues identically (tested).

Signals: per tenant, at each `signal_step` end (default 60 s of event time, epoch-aligned) the
tenant's clock reaches, one batch trajectory_quality_{p50,p95,p99} (scope = tenant, cohort "all":
quality is not per release cohort, and the policy engine counts "all" for its gate cohort;
window_s 0 = all scores so far; samples = scores) for gw.signals; `take_signals()` hands them over.

Guardrail (`derived_events_perf`): at most max_per_minute derived events per tenant per minute of
the tenant's event time (floor(T / 60 s)); beyond it, overflow_action `shed_derived` drops the event
(linking and scoring state still advance) and counts it by type.
"""
from __future__ import annotations

import math

from fastdigest import TDigest

from gatewatch.processors.canonical import content_id
from gatewatch.processors.quality_policy import CyclePolicy, MeterPolicy, TenantSettings
from gatewatch.processors.spans import Rejected, Span, decode
from gatewatch.processors.timefmt import format_ts
from gatewatch.processors.trajectory import Closed, Linker

EVENT_TYPES = ("trajectory_edge", "trajectory_closed", "trajectory_quality", "diamond_candidate")


def score(spans: int, duration_ms: int, confirmed: int, policy: MeterPolicy) -> tuple[float, dict]:
    """(score, components in points) of a trajectory; see the module docstring."""
    x = {"mass": (spans - 1) / ((spans - 1) + policy.mass_half),
         "persistence": duration_ms / (duration_ms + policy.persistence_half_ms),
         "verification": confirmed / spans}
    wsum = sum(w for _, w in policy.weights)
    points = {k: round(100.0 * w * x[k] / wsum, 2) for k, w in policy.weights}
    return round(sum(points.values()), 2), points


# --- meter ---------------------------------------------------------------------------------------
class QualityMeter:
    """Per-tenant streaming percentile of scores (fastdigest) and candidate counts."""

    def __init__(self, policy: MeterPolicy):
        self.policy = policy
        self.digest = TDigest()
        self.scored = 0
        self.candidates = 0

    def observe(self, s: float, diamond: bool) -> float | None:
        """Threshold the score met (a candidate) or None. Query before update: see module docstring."""
        threshold = None
        if self.digest.n_values >= self.policy.min_samples:
            threshold = round(self.digest.quantile(self.policy.percentile), 2)
        self.digest.update(s)
        self.scored += 1
        if diamond and threshold is not None and s >= threshold and s >= self.policy.min_score:
            self.candidates += 1
            return threshold
        return None

    def quantile(self, q: float) -> float | None:
        return self.digest.quantile(q) if self.digest.n_values else None

    @property
    def share(self) -> float:
        return self.candidates / self.scored if self.scored else 0.0

    def to_state(self) -> dict:
        d = self.digest.to_dict()
        if not d.get("n_values"):
            d = None  # an empty digest has NaN min/max, which JSON cannot hold
        return {"digest": d, "scored": self.scored, "candidates": self.candidates}

    @classmethod
    def from_state(cls, policy: MeterPolicy, state: dict) -> "QualityMeter":
        m = cls(policy)
        if state.get("digest"):
            m.digest = TDigest.from_dict(state["digest"])
        m.scored, m.candidates = state.get("scored", 0), state.get("candidates", 0)
        return m


# --- the cycle -----------------------------------------------------------------------------------
def _finish(ev: dict) -> dict:
    ev["id"] = content_id(ev)
    return ev


def _counter() -> dict:
    return {"spans": 0, "linked": 0, "excepted": 0, "late": 0, "disabled": 0,
            "closed": {"timeout": 0, "window": 0, "rule": 0},
            "emitted": {t: 0 for t in EVENT_TYPES}, "shed": {t: 0 for t in EVENT_TYPES}}


class SpanCycle:
    """spans in -> trajectory events out, per tenant, deterministic.

    process(raw) / process_span(span) return (events, reject_reason). Events are complete dicts with
    "id" (content hash of the rest), "type", "tenant", "trajectory_id", "ts". State: to_state() /
    SpanCycle.from_state(policy, state), plain JSON-able dicts.
    """

    def __init__(self, policy: CyclePolicy):
        self.policy = policy
        self.linker = Linker(policy.linker)
        self.meters: dict[str, QualityMeter] = {}
        self.guard: dict[str, list] = {}        # tenant -> [minute, count in that minute]
        self.signal_end: dict[str, list] = {}   # tenant -> [step end, scores] of its last signal batch
        self.signals: list[list[dict]] = []     # signal batches not yet taken (take_signals)
        self.stats: dict[str, dict] = {}        # tenant -> counters (see _counter)
        self._tenant_settings = dict(policy.tenants)

    def settings(self, tenant: str) -> TenantSettings:
        return self._tenant_settings.get(tenant, self.policy.defaults)

    def _stats(self, tenant: str) -> dict:
        s = self.stats.get(tenant)
        if s is None:
            s = self.stats[tenant] = _counter()
        return s

    def meter(self, tenant: str) -> QualityMeter:
        m = self.meters.get(tenant)
        if m is None:
            m = self.meters[tenant] = QualityMeter(self.policy.meter)
        return m

    # -- processing
    def process(self, raw: bytes | str) -> tuple[list[dict], str | None]:
        r = decode(raw)
        if isinstance(r, Rejected):
            return [], r.reason
        return self.process_span(r)

    def process_span(self, span: Span) -> tuple[list[dict], str | None]:
        tenant = span.tenant
        st = self._stats(tenant)
        st["spans"] += 1
        cfg = self.settings(tenant)
        if not cfg.trajectory:
            st["disabled"] += 1
            return [], None
        edges, closed, why = self.linker.link(span)
        out: list[dict] = []
        emit = self._emitter(tenant, cfg, st, out)
        if why == "late":
            st["late"] += 1
        elif why == "excepted":
            st["excepted"] += 1
        else:
            st["linked"] += 1
        # timeouts revealed by this span's time come before its own edge; a rule close after it
        rule = [c for c in closed if c.reason == "rule"]
        for c in closed:
            if c.reason != "rule":
                self._close(c, cfg, st, emit)
        for e in edges:
            emit(e)
        for c in rule:
            self._close(c, cfg, st, emit)
        if self.policy.meter.signal_step_ms and tenant in self.meters:
            self._signals(tenant)
        return out, ("late" if why == "late" else None)

    def _signals(self, tenant: str) -> None:
        """One batch of trajectory_quality_{p50,p95,p99} per tenant at each step end E (aligned to
        the epoch) that the tenant's event time reaches (steps without a span are skipped), once
        the tenant has scores. Values are the meter's (all scores so far, window_s 0) after the
        span that reached E. Every reached step, not only changed values: the policy engine's
        `for` streaks need steady steps (it breaks them over gaps longer than max_gap)."""
        step = self.policy.meter.signal_step_ms
        end = self.linker.tenants[tenant].event_time // step * step
        m = self.meters[tenant]
        last = self.signal_end.get(tenant)
        if last is not None and end <= last[0]:
            return
        self.signal_end[tenant] = [end, m.scored]
        ts = format_ts(end)
        self.signals.append([{"name": f"trajectory_quality_{q}", "scope": tenant, "cohort": "all", "subject": "",
                              "window_s": 0, "value": _r(m.quantile(x)), "samples": m.scored, "ts": ts}
                             for q, x in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))])

    def take_signals(self) -> list[list[dict]]:
        """Signal batches produced since the last call, in order (for gw.signals)."""
        out, self.signals = self.signals, []
        return out

    def _emitter(self, tenant: str, cfg: TenantSettings, st: dict, out: list):
        limit = cfg.max_per_minute
        minute = self.linker.tenants[tenant].event_time // 60_000

        def emit(ev: dict) -> None:
            if limit:
                g = self.guard.get(tenant)
                if g is None or g[0] != minute:
                    g = self.guard[tenant] = [minute, 0]
                if g[1] >= limit:
                    st["shed"][ev["type"]] += 1
                    return
                g[1] += 1
            st["emitted"][ev["type"]] += 1
            out.append(_finish(ev))
        return emit

    def _close(self, c: Closed, cfg: TenantSettings, st: dict, emit) -> None:
        t, ts = c.trajectory, format_ts(c.ts_ms)
        st["closed"][c.reason] += 1
        emit({"type": "trajectory_closed", "tenant": c.tenant, "trajectory_id": t.trajectory_id,
              "reason": c.reason, "spans": t.spans, "first_span_id": t.first_span_id,
              "last_span_id": t.last_span_id, "started": format_ts(t.first_ms), "ts": ts})
        s, points = score(t.spans, t.last_ms - t.first_ms, t.confirmed, self.policy.meter)
        emit({"type": "trajectory_quality", "tenant": c.tenant, "trajectory_id": t.trajectory_id,
              "score": s, "components": points, "spans": t.spans, "ts": ts})
        threshold = self.meter(c.tenant).observe(s, cfg.diamond)
        if threshold is not None:
            emit({"type": "diamond_candidate", "tenant": c.tenant, "trajectory_id": t.trajectory_id,
                  "score": s, "threshold": threshold,
                  "percentile": f"p{self.policy.meter.percentile * 100:g}", "ts": ts})

    # -- summary and state
    def summary(self) -> dict:
        tenants = {}
        for tenant in sorted(set(self.stats) | set(self.meters)):
            st, m = self._stats(tenant), self.meters.get(tenant)
            tenants[tenant] = {
                "spans": st["spans"], "linked": st["linked"], "excepted": st["excepted"], "late": st["late"],
                "active": self.linker.active(tenant), "closed": dict(st["closed"]),
                "scored": m.scored if m else 0, "candidates": m.candidates if m else 0,
                "share": round(m.share, 6) if m else 0.0,
                "score_p50": _r(m.quantile(0.5)) if m else None, "score_p95": _r(m.quantile(0.95)) if m else None,
                "score_p99": _r(m.quantile(0.99)) if m else None,
                "shed": sum(st["shed"].values())}
        scored = sum(t["scored"] for t in tenants.values())
        cands = sum(t["candidates"] for t in tenants.values())
        return {"policy_hash": self.policy.policy_hash(),
                "trajectories": sum(st["closed"][r] for st in self.stats.values() for r in st["closed"])
                + self.linker.active(),
                "active": self.linker.active(),
                "closed": sum(st["closed"][r] for st in self.stats.values() for r in st["closed"]),
                "scored": scored, "candidates": cands, "share": round(cands / scored, 6) if scored else 0.0,
                "tenants": tenants}

    def to_state(self) -> dict:
        tenants = sorted(set(self.stats) | set(self.meters) | set(self.linker.tenants))
        return {"version": 1, "policy_hash": self.policy.policy_hash(), "tenants": {
            t: {"linker": self.linker.to_state(t),
                "meter": self.meters[t].to_state() if t in self.meters else None,
                "guard": self.guard.get(t), "stats": self.stats.get(t),
                "signal_end": self.signal_end.get(t)} for t in tenants}}

    @classmethod
    def from_state(cls, policy: CyclePolicy, state: dict, allow_policy_change: bool = False) -> "SpanCycle":
        """Restore. Under a different policy only when allowed: open trajectories, meters and
        counters carry over and the new policy applies from the next span (deadlines are recomputed
        with its timeouts, so overdue trajectories close on the next span of their tenant)."""
        if state.get("policy_hash") != policy.policy_hash() and not allow_policy_change:
            raise ValueError("state was saved under a different policy (policy hash differs)")
        c = cls(policy)
        for t, v in state.get("tenants", {}).items():
            c.linker.load_state(t, v["linker"])
            if v.get("meter") is not None:
                c.meters[t] = QualityMeter.from_state(policy.meter, v["meter"])
            if v.get("guard") is not None:
                c.guard[t] = list(v["guard"])
            if v.get("signal_end") is not None:
                c.signal_end[t] = list(v["signal_end"])
            if v.get("stats") is not None:
                c.stats[t] = v["stats"]
        return c


def _r(x: float | None) -> float | None:
    return None if x is None or math.isnan(x) else round(x, 2)
