"""The policy engine: signal batches in, action records and gate records out. Pure and deterministic.

Input: batches of signal records {"name","scope","cohort","subject","window_s","value","samples",
"ts"} (+ "release" for a release's signals); one batch = every signal of one (scope, domain, step
ts). Batches of one (scope, domain) arrive in ts order; different domains interleave. A batch at or
before its (scope, domain)'s last step is a re-delivery and ignored.

Readiness: a rule (or the gate) of a scope is evaluated at step E once every domain it reads has
delivered E. The signals stage (source "signals") emits every domain of a scope at a step together
(one task owns the scope), so once it has delivered a later step for the scope, a domain only it
feeds but did not deliver at E has no data at E: E is ready, that domain evaluates as missing, and a
gate waiting on it says so at the next step instead of in silence. A domain another producer feeds
too (trajectories, an extension agent) is waited for until it delivers E.
Steps are evaluated in ascending E, so each evaluator sees the same steps with the same data
whatever the interleaving: the decisions depend only on the policy and the signals (INV4). Steps
wait in `pending` until every evaluator that needs them has run, at most
evaluation.max_pending_steps per scope; older ones are then counted (`take_dropped`) and evaluate
as missing: fail-closed, never dropped in silence.

Units: a scope's rules and gate run per release (processors.policy.unit). The gate cohort's signals
carry the release they measure; at a step, each release present gets its own unit, seeing that
release's signals and the release-less ones (shared domains, gauges published without a release);
other cohorts are context. A new release starts its own gate from PLAN_OK (from SHADOW with
gate.shadow, where the shadow cohort's signals of the release, "~shadow" in its view, judge it and
also make the release known: processors.policy.shadowphase); earlier releases keep their final state. A scope whose signals carry no release has the one unit "".
"""
from __future__ import annotations

import copy
import math
from bisect import bisect_right
from typing import Callable

from gatewatch.processors.policy import attest
from gatewatch.processors.policy.compose import Policy
from gatewatch.processors.policy.gate import STATES, gate_domains, tolerate
from gatewatch.processors.policy.gatestatus import due, gate_status, track_budget
from gatewatch.processors.policy.grammar import SignalInfo, conds, signal_info
from gatewatch.processors.policy.shadowphase import SHADOW, initial_state, note_releaseless, shadow_step
from gatewatch.processors.policy.signal_check import validate_signal
from gatewatch.processors.policy.unit import gate_step, new_unit, rule_step

GATE = "__gate__"
STATE_VERSION = 2
SIGNALS_STAGE_DOMAINS = frozenset(("requests", "gauges", "rum", "cdc"))  # emitted together per scope and step

Signer = Callable[[dict, int, int], dict]  # (record, expires_ms, not_before_ms) -> permit


class DeciderSigner:
    """Engine's signer: permits for actions (issue_permit) and the signature of attestations
    (sign_attestation, a separate domain), both with the decider key the caller loads."""

    def __init__(self, signing_key):
        self.signing_key = signing_key

    def __call__(self, record: dict, expires_ms: int, not_before_ms: int) -> dict:
        from gatewatch.processors.signing import issue_permit
        return issue_permit(self.signing_key, record, expires_ms, not_before_ms)

    def attestation_signature(self, att_id: str) -> dict:
        from gatewatch.processors.signing import sign_attestation
        return sign_attestation(self.signing_key, att_id)


def permit_signer(signing_key) -> Signer:
    """A signer for Engine (the caller loads the key)."""
    return DeciderSigner(signing_key)


SIGNALS_STAGE = "signals"


def _new_scope() -> dict:
    return {"frontier": {}, "sources": {}, "pending": {}, "last": {}, "units": {}, "dropped_steps": 0}


class Engine:
    def __init__(self, policy: Policy, signer: Signer | None = None):
        self.policy = policy
        self.signer = signer
        self.cohort = policy.gate.cohort
        self.shadow_cohort = policy.gate.shadow.cohort if policy.gate.shadow is not None else None
        self.blocking = [r for r in policy.rules if r.blocking]
        # evaluators in a fixed order: rules as composed, the gate last
        self.evaluators = [(r.id, r.domains) for r in policy.rules]
        self.declared = policy.signal_units
        self._infos: dict[str, SignalInfo] = {}  # validate_signal's lookups by name
        self.evaluators.append((GATE, gate_domains(policy.gate, self.blocking, self.declared)))
        self.order = {k: i for i, (k, _) in enumerate(self.evaluators)}
        # the evaluators by the domains they read (_run_ready, _prune): those reading the same
        # domains see the same steps ready, found once per delivery for all of them
        self.by_domains: dict[tuple, list[tuple[int, str]]] = {}
        for key, doms in self.evaluators:
            self.by_domains.setdefault(doms, []).append((self.order[key], key))
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
        self.gate_records: list[dict] = []
        self.attestations: list[dict] = []  # processors.policy.attest: one per (on_batch call, scope) that acted

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
            out.setdefault(signal_info(n, self.declared).domain, []).append(n)
        return out

    # ---- state -------------------------------------------------------------------------
    def to_state(self) -> dict:
        """JSON-able: str keys only. Restore with Engine.from_state."""
        return {"version": STATE_VERSION, "policy_hash": self.policy.hash,
                "scopes": {s: self.scope_state(s) for s in sorted(self.scopes)}}

    def scope_state(self, scope: str) -> dict:
        st = self.scopes.get(scope) or _new_scope()
        # a deep copy of all but the pending steps, which it shares as it always did (a step's
        # signals are never changed once pending); each key keeps its place in the state
        out = copy.deepcopy({k: None if k == "pending" else v for k, v in st.items()})
        out["pending"] = {str(ts): doms for ts, doms in sorted(st["pending"].items())}
        out["policy_hash"] = self.policy.hash
        return out

    def load_scope_state(self, scope: str, state: dict) -> None:
        st = copy.deepcopy(state)
        if "units" not in st:  # state version 1: one gate per scope, the release-less unit
            st = _upgrade_v1(st)
        st["pending"] = {int(ts): doms for ts, doms in st.get("pending", {}).items()}
        st.setdefault("frontier", {})
        st.setdefault("sources", {})
        st.setdefault("last", {})
        st.setdefault("dropped_steps", 0)
        changed = st.get("policy_hash", self.policy.hash) != self.policy.hash
        fingerprints = {r.fingerprint for r in self.blocking}
        shadow_rules = {r.id: r.fingerprint for r in self.policy.gate.shadow.rules} if self.shadow_cohort else {}
        for release, unit in st["units"].items():
            if unit["gate"]["state"] == SHADOW and (not self.shadow_cohort or not release):
                unit["gate"]["state"] = STATES[0]  # no shadow phase (any more, or release-less): the canary gate
            if "shadow" in unit:
                unit["shadow"] = {rid: r for rid, r in unit["shadow"].items()
                                  if shadow_rules.get(rid) == r.get("fingerprint")}
            # keep a rule's state only if the rule still means the same (policy reload)
            unit["rules"] = {rid: r for rid, r in unit["rules"].items()
                             if rid in self.rules and r.get("fingerprint") == self.rules[rid].fingerprint}
            if changed:
                unit["gate"]["clean_since"] = None  # evidence for the next stage restarts under the new policy
            unit["gate"]["streaks"] = {fp: v for fp, v in unit["gate"].get("streaks", {}).items() if fp in fingerprints}
        st["last"] = {k: v for k, v in st["last"].items() if k == GATE or k in self.rules}
        st["policy_hash"] = self.policy.hash
        self.scopes[scope] = st

    @classmethod
    def from_state(cls, policy: Policy, state: dict, signer: Signer | None = None) -> "Engine":
        eng = cls(policy, signer)
        for scope, st in (state or {}).get("scopes", {}).items():
            eng.load_scope_state(scope, st)
        return eng

    def decided(self, scope: str, release: str = "") -> list[dict]:
        """The actions this engine took for one scope/release so far ({id, kind, action, rule, ts})."""
        unit = (self.scopes.get(scope) or _new_scope())["units"].get(release)
        return list(unit["actions"]) if unit else []

    def gate_state(self, scope: str, release: str = "") -> str:
        unit = (self.scopes.get(scope) or _new_scope())["units"].get(release)
        return unit["gate"]["state"] if unit else initial_state(self.policy, release)

    # ---- input -------------------------------------------------------------------------
    def on_batch(self, signals: list[dict]) -> list[dict]:
        """Feed one batch (or several, grouped here by scope/domain/ts); returns new actions
        (gate records: take_gate_records; attestations: take_attestations)."""
        groups: dict[tuple, list] = {}
        sources: dict[tuple, set] = {}
        key = None
        for sig in signals:
            scope, domain, ts, compact = validate_signal(sig, self.declared, self._infos)
            if key != (ts, scope, domain):  # a batch is one run of a key: looked up once per run
                key = (ts, scope, domain)
                members, srcs = groups.setdefault(key, []), sources.setdefault(key, set())
            members.append(compact)
            srcs.add(str(sig.get("source") or SIGNALS_STAGE))
        pre: dict[str, bytes] = {}  # each scope's state before this call touched it
        made: list[tuple[str, dict]] = []
        for key in sorted(groups):
            ts, scope, domain = key
            if scope not in pre:
                pre[scope] = attest.state_bytes(self, scope)
            made.extend((scope, rec) for rec in self._deliver(scope, domain, ts, groups[key], sources[key]))
        if made:
            attest.seal(self, signals, pre, made)
        return [rec for _, rec in made]

    def take_attestations(self) -> list[dict]:
        """Attestation records (processors.policy.attest) produced since the last call, in order."""
        out, self.attestations = self.attestations, []
        return out

    def take_dropped(self) -> list[tuple[str, int]]:
        """(scope, step ms) of the steps dropped undecided since the last call."""
        out, self.dropped = self.dropped, []
        return out

    def take_gate_records(self) -> list[dict]:
        """Gate records (processors.policy.gatestatus) produced since the last call, in order."""
        out, self.gate_records = self.gate_records, []
        return out

    def _deliver(self, scope: str, domain: str, ts: int, sigs: list[dict], sources: set) -> list[dict]:
        st = self.scopes.setdefault(scope, _new_scope())
        if ts <= st["frontier"].get(domain, -1):
            return []  # re-delivered or out of order: already decided
        st["frontier"][domain] = ts
        if self.shadow_cohort:
            note_releaseless(self, st, domain, ts, sigs)
        known = st.setdefault("sources", {}).setdefault(domain, [])
        for src in sorted(sources - set(known)):
            known.append(src)
        if domain in self.used_domains:
            sigs.sort(key=lambda s: (s["name"], s["subject"] is not None, str(s["subject"]), str(s["cohort"]),
                                     s["release"]))
            st["pending"].setdefault(ts, {})[domain] = sigs
        actions = self._run_ready(scope, st)
        self._prune(scope, st)
        return actions

    def _ready_until(self, st: dict) -> dict[str, int]:
        """Each used domain's last step that is ready (computed once per delivery: every
        evaluator of the scope reads the same frontier)."""
        frontier, sources = st["frontier"], st["sources"]
        group = max((t for d, t in frontier.items()
                     if d in SIGNALS_STAGE_DOMAINS and SIGNALS_STAGE in sources.get(d, ())), default=-1)
        out = {}
        for domain in self.used_domains:
            mine = frontier.get(domain, -1)
            if domain not in SIGNALS_STAGE_DOMAINS or set(sources.get(domain, ())) - {SIGNALS_STAGE}:
                out[domain] = mine
            else:
                out[domain] = max(mine, group - 1)  # the signals stage moved past this step: it is complete
        return out

    def _ready_tasks(self, st: dict) -> list[tuple[int, int, str]]:
        """(step, evaluator order, evaluator) of every pending step an evaluator can run now, sorted."""
        tasks = []
        pending, done = st["pending"], st["last"]
        steps = sorted(pending)
        ready = self._ready_until(st)
        for doms, keys in self.by_domains.items():
            ready_until = min([ready[d] for d in doms])
            lasts = [done.get(key) for _, key in keys]
            # steps at or before every reader's `last` are done: start after them, so a scope
            # whose pending steps wait for another evaluator costs nothing here
            first = 0 if None in lasts else bisect_right(steps, min(lasts))
            # steps ready for these domains that deliver one of them
            due = [ts for ts in steps[first:] if ts <= ready_until and not pending[ts].keys().isdisjoint(doms)]
            if due:
                for (order, key), last in zip(keys, lasts):
                    tasks.extend((ts, order, key) for ts in due if last is None or ts > last)
        tasks.sort()  # by step, then evaluator order: the same whatever the grouping above
        return tasks

    def _run_ready(self, scope: str, st: dict) -> list[dict]:
        tasks = self._ready_tasks(st)
        out, views = [], {}
        for ts, _, key in tasks:
            view = views.get(ts)
            if view is None:
                view = views[ts] = self._views(st["pending"][ts])
            st["last"][key] = ts
            for release, rview in view.items():
                unit = st["units"].get(release)
                if unit is None:
                    unit = st["units"][release] = new_unit(ts, initial_state(self.policy, release))
                if key == GATE:
                    track_budget(unit, rview, release, ts)
                    if unit["gate"]["state"] == SHADOW:
                        fired, rec, reasons = shadow_step(self, scope, release, unit, ts, rview)
                        for f in fired:
                            self._record_action(unit, f)
                            out.append(self._sign(f, ts))
                    else:
                        rec, reasons = gate_step(self, scope, release, unit, ts, rview)
                    self._gate_record(scope, release, unit, st, ts, reasons, rec)
                else:
                    rec = rule_step(self, scope, release, unit, key, ts, rview)
                if rec is not None:
                    self._record_action(unit, rec)
                    out.append(self._sign(rec, ts))
        return out

    @staticmethod
    def _record_action(unit: dict, rec: dict) -> None:
        unit["actions"].append({"id": rec["id"], "kind": rec["kind"], "action": rec["action"],
                                "rule": rec["rule"]["id"], "ts": rec["ts"]})

    def _gate_record(self, scope, release, unit, st, ts, reasons, advanced) -> None:
        unit["steps"] = unit.get("steps", 0) + 1
        if advanced is not None:  # the transition is one of this release's actions before the record
            unit["actions"].append({"id": advanced["id"], "kind": advanced["kind"], "action": advanced["action"],
                                    "rule": advanced["rule"]["id"], "ts": advanced["ts"]})
        record = gate_status(self.policy, scope, release, unit, ts, reasons, st["dropped_steps"])
        if advanced is not None:
            unit["actions"].pop()
        if due(unit, record, ts):
            self.gate_records.append(record)

    def _prune(self, scope: str, st: dict) -> None:
        # A step is still needed while some evaluator reading one of its domains has not run it.
        # Per domain, the earliest `last` of its readers decides (None: one never ran): the same
        # test as asking every evaluator, at a cost per step of its domains, not of the rules.
        earliest: dict[str, float] = {}
        for doms, keys in self.by_domains.items():
            lasts = [st["last"].get(key) for _, key in keys]
            first = -math.inf if None in lasts else min(lasts)
            for d in doms:
                earliest[d] = min(earliest.get(d, math.inf), first)
        for ts in [t for t, doms in st["pending"].items()
                   if not any(earliest.get(d, math.inf) < t for d in doms)]:
            del st["pending"][ts]
        excess = len(st["pending"]) - self.policy.gate.max_pending_steps
        for ts in sorted(st["pending"])[:max(0, excess)]:
            # a step one domain delivered but another never did: it can no longer be decided, so
            # it evaluates as missing (fail-closed); counted, and reported by the decide stage
            del st["pending"][ts]
            st["dropped_steps"] += 1
            self.dropped.append((scope, ts))

    def _views(self, pending_at_ts: dict) -> dict[str, dict]:
        """release -> {signal name -> gate-cohort signals of that release and release-less ones,
        '~context' -> the other cohorts' signals}."""
        gate: dict[str, list] = {}
        context: dict[str, list] = {}
        shadow: dict[str, list] = {}
        releases: set[str] = set()
        shared = self.policy.gate.shared_domains
        gate_cohorts = (None, "", "all", self.cohort)
        for domain, sigs in pending_at_ts.items():
            all_gate = domain in shared
            for s in sigs:
                c = s["cohort"]
                if all_gate or c in gate_cohorts:
                    gate.setdefault(s["name"], []).append(s)
                    if s["release"]:
                        releases.add(s["release"])
                else:
                    context.setdefault(s["name"], []).append(s)
                    if c == self.shadow_cohort:  # a release in shadow is known by its shadow signals
                        shadow.setdefault(s["name"], []).append(s)
                        if s["release"]:
                            releases.add(s["release"])
        out = {}
        for release in sorted(releases) or [""]:
            view = _of_release(gate, release)
            view["~context"] = context
            if self.shadow_cohort:
                view["~shadow"] = _of_release(shadow, release)
            out[release] = view
        return out

    def _sign(self, rec: dict, ts: int) -> dict:
        rec.setdefault("incident", "")  # gate and promote actions belong to no incident
        rec["permit"] = self.signer(rec, ts + self.policy.gate.ttl_ms, ts) if self.signer else None
        return rec


def _of_release(by_name: dict, release: str) -> dict:
    """{name: the signals of `release` and the release-less ones}, names without any left out."""
    view = {name: [s for s in sigs if s["release"] in ("", release)] for name, sigs in by_name.items()}
    return {name: sigs for name, sigs in view.items() if sigs}


def _upgrade_v1(st: dict) -> dict:
    """A version-1 scope state (one gate per scope) as the release-less unit of version 2."""
    rules = {rid: {"active": r.get("active", False), "streaks": r.get("streaks", {}),
                   "fingerprint": r.get("fingerprint")} for rid, r in st.get("rules", {}).items()}
    last = {rid: r["last"] for rid, r in st.get("rules", {}).items() if r.get("last") is not None}
    gate = st.get("gate") or new_unit(0)["gate"]
    if gate.get("last") is not None:
        last[GATE] = gate["last"]
    unit = {"rules": rules, "gate": gate, "since": min(last.values(), default=0), "actions": [], "published": None}
    return {"frontier": st.get("frontier", {}), "pending": st.get("pending", {}), "last": last,
            "units": {"": unit}, "dropped_steps": st.get("dropped_steps", 0), "policy_hash": st.get("policy_hash")}
