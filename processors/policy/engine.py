"""The policy engine: signal batches in, action records out. Pure and deterministic.

Input: batches of signal records {"name","scope","cohort","subject","window_s",
"value","samples","ts"}; one batch = every signal of one (scope, domain, step ts).
Batches of one (scope, domain) arrive in ts order; different domains interleave
arbitrarily. A batch at or before its (scope, domain)'s last step is a
re-delivery and ignored.

Each rule (and the gate) of a scope is evaluated at step E once every domain it
reads has delivered E or a later step, in ascending E. So each evaluator sees the
same steps with the same data whatever the interleaving: the set of actions
depends only on the policy and the signals (INV4). Batches wait in `pending`
until every evaluator that needs them has run (at most
evaluation.max_pending_steps steps per scope; older ones are then dropped and
evaluate as missing: fail-closed).

Rules fire on the rising edge per (scope, rule): one action per breach, re-armed
when the condition is known false. Unknown (missing/thin) follows on_missing:
hold (nothing changes) or abort (counts as a breach).
"""
from __future__ import annotations

import copy
import functools
import math
from bisect import bisect_right
from typing import Callable

from gatewatch.processors.policy.compose import Policy
from gatewatch.processors.policy.errors import SignalError
from gatewatch.processors.policy.evaluator import held, instant
from gatewatch.processors.policy.gate import NEXT, STATES, gate_domains, tolerate
from gatewatch.processors.policy.grammar import SignalInfo, conds, signal_info
from gatewatch.processors.policy.records import action_record, gate_record
from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms

GATE = "__gate__"
STATE_VERSION = 1

Signer = Callable[[dict, int], dict]


def permit_signer(signing_key) -> Signer:
    """A signer for Engine: issue_permit with the decider key (the caller loads the key)."""
    from gatewatch.processors.signing import issue_permit
    return functools.partial(issue_permit, signing_key)


def _new_scope() -> dict:
    return {"frontier": {}, "pending": {}, "rules": {},
            "gate": {"state": STATES[0], "last": None, "clean_since": None, "streaks": {}}}


class Engine:
    def __init__(self, policy: Policy, signer: Signer | None = None):
        self.policy = policy
        self.signer = signer
        self.cohort = policy.gate.cohort
        self.blocking = [r for r in policy.rules if r.blocking]
        # evaluators in a fixed order: rules as composed, the gate last
        self.evaluators = [(r.id, r.domains) for r in policy.rules]
        self.evaluators.append((GATE, gate_domains(policy.gate, self.blocking)))
        self.order = {k: i for i, (k, _) in enumerate(self.evaluators)}
        self.rules = {r.id: r for r in policy.rules}
        self.used_domains = {d for _, doms in self.evaluators for d in doms}
        self.rule_conds = {r.id: conds(r.expr) for r in policy.rules}
        # how the gate reads each blocking rule (for-durations cut to gate.breach_tolerance)
        self.gate_exprs = {}
        for r in self.blocking:
            expr = tolerate(r.expr, policy.gate.breach_tolerance_ms)
            self.gate_exprs[r.id] = (expr, conds(expr))
        self.scopes: dict[str, dict] = {}
        self.dropped: list[tuple[str, int]] = []

    def requirements(self) -> dict:
        """What the gate needs to move, by domain: {domain: sorted signal names} (gate cohort)."""
        names = set(self.policy.gate.required)
        for st in STATES[1:]:
            names.update(self.policy.gate.stage_required[st])
        for _, expr in self.policy.gate.block:
            names.update(c.signal for c in conds(expr))
        for r in self.blocking:
            names.update(c.signal for c in self.rule_conds[r.id])
        out: dict[str, list] = {}
        for n in sorted(names):
            out.setdefault(signal_info(n).domain, []).append(n)
        return out

    # ---- state -------------------------------------------------------------------------
    def to_state(self) -> dict:
        """JSON-able: str keys only. Restore with Engine.from_state."""
        return {"version": STATE_VERSION, "policy_hash": self.policy.hash,
                "scopes": {s: self.scope_state(s) for s in sorted(self.scopes)}}

    def scope_state(self, scope: str) -> dict:
        st = self.scopes.get(scope) or _new_scope()
        out = copy.deepcopy(st)
        out["pending"] = {str(ts): doms for ts, doms in sorted(st["pending"].items())}
        out["policy_hash"] = self.policy.hash
        for r in out["rules"].values():
            r["fingerprint"] = self.rules[r["id"]].fingerprint if r["id"] in self.rules else r.get("fingerprint")
        return out

    def load_scope_state(self, scope: str, state: dict) -> None:
        st = copy.deepcopy(state)
        st["pending"] = {int(ts): doms for ts, doms in st.get("pending", {}).items()}
        # keep a rule's state only if the rule still means the same (policy reload)
        st["rules"] = {rid: r for rid, r in st.get("rules", {}).items()
                       if rid in self.rules and r.get("fingerprint") == self.rules[rid].fingerprint}
        st.setdefault("frontier", {})
        st.setdefault("gate", _new_scope()["gate"])
        if st.get("policy_hash", self.policy.hash) != self.policy.hash:
            st["gate"]["clean_since"] = None  # evidence for the next stage restarts under the new policy
        st["policy_hash"] = self.policy.hash
        fingerprints = {r.fingerprint for r in self.blocking}
        st["gate"]["streaks"] = {fp: v for fp, v in st["gate"].get("streaks", {}).items() if fp in fingerprints}
        self.scopes[scope] = st

    @classmethod
    def from_state(cls, policy: Policy, state: dict, signer: Signer | None = None) -> "Engine":
        eng = cls(policy, signer)
        for scope, st in (state or {}).get("scopes", {}).items():
            eng.load_scope_state(scope, st)
        return eng

    def gate_state(self, scope: str) -> str:
        return (self.scopes.get(scope) or _new_scope())["gate"]["state"]

    # ---- input -------------------------------------------------------------------------
    def on_batch(self, signals: list[dict]) -> list[dict]:
        """Feed one batch (or several, grouped here by scope/domain/ts); returns new actions."""
        groups: dict[tuple, list] = {}
        for sig in signals:
            scope, domain, ts, compact = _validate(sig)
            groups.setdefault((ts, scope, domain), []).append(compact)
        actions: list[dict] = []
        for (ts, scope, domain) in sorted(groups):
            actions.extend(self._deliver(scope, domain, ts, groups[(ts, scope, domain)]))
        return actions

    def _deliver(self, scope: str, domain: str, ts: int, sigs: list[dict]) -> list[dict]:
        st = self.scopes.setdefault(scope, _new_scope())
        if ts <= st["frontier"].get(domain, -1):
            return []  # re-delivered or out of order: already decided
        st["frontier"][domain] = ts
        if domain in self.used_domains:
            sigs.sort(key=lambda s: (s["name"], s["subject"] is not None, str(s["subject"]), str(s["cohort"])))
            st["pending"].setdefault(ts, {})[domain] = sigs
        actions = self._run_ready(scope, st)
        self._prune(scope, st)
        return actions

    def _run_ready(self, scope: str, st: dict) -> list[dict]:
        tasks = []
        steps = sorted(st["pending"])
        for key, doms in self.evaluators:
            last = st["gate"]["last"] if key == GATE else st["rules"].get(key, {}).get("last")
            ready_until = min(st["frontier"].get(d, -1) for d in doms)
            # steps at or before `last` are done for this evaluator: start after them, so a scope
            # whose pending steps wait for another evaluator costs nothing here
            for i in range(0 if last is None else bisect_right(steps, last), len(steps)):
                ts = steps[i]
                if ts > ready_until:
                    break
                if any(d in st["pending"][ts] for d in doms):
                    tasks.append((ts, self.order[key], key))
        tasks.sort()
        out, views = [], {}
        for ts, _, key in tasks:
            view = views.get(ts)
            if view is None:
                view = views[ts] = self._view(st["pending"][ts])
            rec = self._gate_step(scope, st, ts, view) if key == GATE else self._rule_step(scope, st, key, ts, view)
            if rec is not None:
                out.append(rec)
        return out

    def take_dropped(self) -> list[tuple[str, int]]:
        """(scope, step ms) of the steps dropped undecided since the last call."""
        out, self.dropped = self.dropped, []
        return out

    def _prune(self, scope: str, st: dict) -> None:
        # A step is still needed while some evaluator reading one of its domains has not run it.
        # Per domain, the earliest `last` of its readers decides (None: one never ran): the same
        # test as asking every evaluator, at a cost per step of its domains, not of the rules.
        earliest: dict[str, float] = {}
        for key, doms in self.evaluators:
            last = st["gate"]["last"] if key == GATE else st["rules"].get(key, {}).get("last")
            for d in doms:
                earliest[d] = min(earliest.get(d, math.inf), -math.inf if last is None else last)
        for ts in [t for t, doms in st["pending"].items()
                   if not any(earliest.get(d, math.inf) < t for d in doms)]:
            del st["pending"][ts]
        excess = len(st["pending"]) - self.policy.gate.max_pending_steps
        for ts in sorted(st["pending"])[:max(0, excess)]:
            # a step one domain delivered but another never did: it can no longer be decided, so
            # it evaluates as missing (fail-closed); counted, and reported by the decide stage
            del st["pending"][ts]
            st["dropped_steps"] = st.get("dropped_steps", 0) + 1
            self.dropped.append((scope, ts))

    def _view(self, pending_at_ts: dict) -> dict:
        """signal name -> gate-cohort signals; and '~context' -> other cohorts."""
        view: dict[str, list] = {}
        context: dict[str, list] = {}
        shared = self.policy.gate.shared_domains
        for domain, sigs in pending_at_ts.items():
            for s in sigs:
                c = s["cohort"]
                gate_cohort = c in (None, "", "all", self.cohort) or domain in shared
                target = view if gate_cohort else context
                target.setdefault(s["name"], []).append(s)
        view["~context"] = context
        return view

    # ---- rules -------------------------------------------------------------------------
    def _rule_step(self, scope, st, rid, ts, view):
        rule = self.rules[rid]
        rs = st["rules"].setdefault(rid, {"id": rid, "last": None, "active": False, "streaks": {}})
        rs["last"] = ts
        value = held(rule.expr, self.rule_conds[rid], view, rule.min_samples, rs["streaks"], ts,
                     self.policy.gate.max_gap_ms)
        if value is None:
            if rule.on_missing == "hold":
                return None
            value = True
        if not value:
            rs["active"] = False
            return None
        if rs["active"]:
            return None  # still the same breach
        rs["active"] = True
        rec = action_record(self.policy, rule, scope, ts, view, rs["streaks"])
        return self._sign(rec, ts)

    # ---- gate --------------------------------------------------------------------------
    def _gate_step(self, scope, st, ts, view):
        g = st["gate"]
        prev_last, g["last"] = g["last"], ts
        if g["state"] == STATES[-1]:
            return None
        cfg = self.policy.gate
        nxt = NEXT[g["state"]]
        # the gate keeps its own `for` streaks of the blocking rules, advanced at its own
        # steps, so that its view never depends on how far a rule has run ahead
        streaks = g.setdefault("streaks", {})
        blocked = False
        for rule in self.blocking:
            expr, cond_list = self.gate_exprs[rule.id]
            value = held(expr, cond_list, view, rule.min_samples,
                         streaks.setdefault(rule.fingerprint, {}), ts, cfg.max_gap_ms)
            blocked = blocked or value is not False
        if blocked or not self._clean(view, cfg.required + cfg.stage_required[nxt]):
            g["clean_since"] = None
            return None
        if g["clean_since"] is None or prev_last is None or ts - prev_last > cfg.max_gap_ms:
            g["clean_since"] = ts
        if ts - g["clean_since"] < cfg.windows[nxt]:
            return None
        frm, g["state"], g["clean_since"] = g["state"], nxt, None
        rec = gate_record(self.policy, scope, ts, frm, nxt, view, cfg.required + cfg.stage_required[nxt])
        return self._sign(rec, ts)

    def _clean(self, view, required) -> bool:
        ms = self.policy.gate.min_samples
        for name in required:
            sigs = view.get(name, [])
            if not sigs or any(s["value"] is None or (s["samples"] or 0) < ms for s in sigs):
                return False
        for _, expr in self.policy.gate.block:
            if instant(expr, view, ms) is not False:
                return False
        return True

    def _sign(self, rec: dict, ts: int) -> dict:
        rec["permit"] = self.signer(rec, ts + self.policy.gate.ttl_ms) if self.signer else None
        return rec


def _validate(sig) -> tuple:
    if not isinstance(sig, dict):
        raise SignalError(f"a signal must be an object, got {type(sig).__name__}")
    name, scope = sig.get("name"), sig.get("scope")
    if not isinstance(name, str) or not isinstance(scope, str) or not scope:
        raise SignalError(f"signal needs string name and scope: {sig!r:.200}")
    info = signal_info(name)
    if info is None and sig.get("domain") == "gauges":
        # a named gauge outside the catalogue: context only (policy check refuses rules on unknown names)
        info = SignalInfo(name, "count", "gauges")
    if info is None:
        raise SignalError(f"unknown signal {name!r}")
    try:
        ts = parse_time_ms(sig.get("ts"))
    except TimeFormatError as e:
        raise SignalError(f"signal {name}: {e}") from None
    value, samples = sig.get("value"), sig.get("samples", 0)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise SignalError(f"signal {name}: value must be a number or null, got {value!r}")
    if samples is None:
        samples = 0
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise SignalError(f"signal {name}: samples must be a non-negative integer, got {samples!r}")
    # plain, Avro-stable types: floats for values, ints for counts, strings or null for labels,
    # so that an action survives the Avro round trip with its digest (and permit) intact
    compact = {"name": info.name, "cohort": _label(sig.get("cohort")), "subject": _label(sig.get("subject")),
               "window_s": _whole(sig.get("window_s")), "value": None if value is None else float(value),
               "samples": samples}
    ref = {k: sig.get(k) for k in REFERENCE_FIELDS if sig.get(k) is not None}
    if ref:
        compact["reference"] = {"baseline": _num(ref.get("baseline")), "baseline_samples": _whole(ref.get("baseline_samples")),
                                "baseline_source": _label(ref.get("baseline_source")),
                                "ci_low": _num(ref.get("ci_low")), "ci_high": _num(ref.get("ci_high"))}
    return scope, info.domain, ts, compact


REFERENCE_FIELDS = ("baseline", "baseline_samples", "baseline_source", "ci_low", "ci_high")


def _label(v):
    return None if v is None else str(v)


def _whole(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return int(v)


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)
