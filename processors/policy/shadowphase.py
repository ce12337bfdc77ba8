"""The shadow phase of a release gate (seed 001's league: shadow before canary), set by `gate.shadow`:

    SHADOW -> PLAN_OK -> EXEC_FAST_OK -> ... -> CANARY_READY

With the block, a new release starts in SHADOW: it receives mirrored or no traffic, and its signals
arrive in the shadow cohort (gate.shadow.cohort, compared with the baseline by the signals stage:
latency_p95_ms_delta(_lo), err5xx_rate_delta(_lo), ...). A shadow step is *clean* when every
`gate.shadow.required` signal of the shadow cohort is present with gate.min_samples samples, every
subject, and every `gate.shadow.abort` condition is known false at that step (its `for` ignored: a
breach in progress is not clean evidence). The release moves to PLAN_OK once it has been clean at
every evaluated step for `gate.shadow.min_duration` of event time (a gap longer than
evaluation.max_gap restarts the count). Unknown is never clean: without shadow signals the release
stays in SHADOW and its gate record says which are missing (fail closed).

A `gate.shadow.abort` entry is an abort rule over the shadow cohort (same keys as `abort:`). When
it fires, its action is emitted (kind abort: the release's verdict is fail) and the release stays
in SHADOW for good: a release that failed its shadow comparison never reaches the canary phase.
Without the block nothing here runs, and gate behaviour and output are as they always were.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from gatewatch.processors.policy.document import fail, suggest
from gatewatch.processors.policy.evaluator import MISSING, held, instant, signal_state
from gatewatch.processors.policy.gate import STATES, _duration, _signals
from gatewatch.processors.policy.gatestatus import missing_reasons, rule_reasons, waiting_reason
from gatewatch.processors.policy.grammar import conds, render, signal_info
from gatewatch.processors.policy.records import (
    _baseline,
    _entry,
    _sort_key,
    _with_release,
    action_id,
    action_record,
)
from gatewatch.processors.policy.rules import compile_rule, slug
from gatewatch.processors.timefmt import format_duration, format_ts

SHADOW = "SHADOW"
SHADOW_KEYS = ("cohort", "min_duration", "required", "abort")
DEFAULT_MIN_DURATION = "5m"  # seed 001: shadow_duration_s=300


@dataclass(frozen=True)
class ShadowConfig:
    cohort: str
    min_duration_ms: int
    required: tuple      # signal names the shadow cohort must carry at every step
    rules: tuple         # rules.Rule (kind abort, not blocking): the shadow-vs-baseline comparisons
    domains: tuple       # domains the shadow phase reads, sorted


def shadow_config(doc: dict, where: dict, gate, rules, declared: dict | None = None) -> ShadowConfig | None:
    """gate.shadow of the composed document, or None without the block. `gate`: its GateConfig,
    `rules`: the policy's compiled rules (shadow rule ids must not clash with theirs)."""
    spec = (doc.get("gate") or {}).get("shadow")
    if spec is None:
        return None
    if not isinstance(spec, dict):
        fail(where, "gate.shadow", "gate.shadow must be a mapping {cohort, min_duration, required, abort}")
    for k in spec:
        if k not in SHADOW_KEYS:
            fail(where, f"gate.shadow.{k}", f"unknown key {k!r} in gate.shadow{suggest(k, SHADOW_KEYS)}")
    cohort = spec.get("cohort", "shadow")
    if not isinstance(cohort, str) or not cohort or cohort in ("all", gate.cohort):
        fail(where, "gate.shadow.cohort", f"gate.shadow.cohort must name a cohort other than the gate cohort"
                                          f" ({gate.cohort!r}) and 'all', got {cohort!r}")
    items = spec.get("abort") or []
    if not isinstance(items, list):
        fail(where, "gate.shadow.abort", "gate.shadow.abort must be a list of rules")
    taken = {r.id for r in rules}
    compiled = []
    for i, item in enumerate(items):
        path = f"gate.shadow.abort[{i}]"
        rule = compile_rule(item, path, "abort", where, doc, blocking=False, declared=declared)
        if not (isinstance(item, dict) and "id" in item):
            rule = replace(rule, id=f"shadow:{rule.action}:{slug(render(rule.expr))}")
        if rule.id in taken:
            fail(where, path, f"duplicate rule id {rule.id!r} (ids of gate.shadow.abort and the rules share one space)")
        taken.add(rule.id)
        compiled.append(rule)
    required = _signals(spec.get("required", []), where, "gate.shadow.required", declared)
    if not required and not compiled:
        fail(where, "gate.shadow", "gate.shadow needs `required` signals or `abort` comparisons: a shadow"
                                   " phase with nothing to judge would pass on no evidence")
    names = set(required) | {c.signal for r in compiled for c in conds(r.expr)}
    return ShadowConfig(
        cohort=cohort,
        min_duration_ms=_duration(spec.get("min_duration", DEFAULT_MIN_DURATION), where, "gate.shadow.min_duration"),
        required=required,
        rules=tuple(compiled),
        domains=tuple(sorted({signal_info(n, declared).domain for n in names})),
    )


def initial_state(policy, release: str = "") -> str:
    """A release starts in SHADOW with the block; a release-less unit never does: it has no release
    whose shadow phase could end, and SHADOW would hold its rules' missing signals for good."""
    return SHADOW if policy.gate.shadow is not None and release else STATES[0]


def note_releaseless(engine, st: dict, domain: str, ts: int, sigs: list[dict]) -> None:
    """Remember (scope state "releaseless_since") the first step at which `domain` carried a
    release-less gate-cohort signal: a signal of that domain missing later is no release's own.
    A step, not a flag: an evaluation at step E reads only deliveries at or before E (it waits for
    them), so what it decides does not depend on how far other domains have run ahead."""
    since = st.setdefault("releaseless_since", {})
    if domain not in since and any(not s["release"] and s["cohort"] in (None, "", "all", engine.cohort) for s in sigs):
        since[domain] = ts


def shadow_holds(engine, release: str, cond_list: list, view: dict, min_samples: int, st: dict, ts: int) -> bool:
    """Whether a scope rule whose value is unknown at step ts holds, instead of following its
    on_missing, while `release` is in SHADOW. Only the release's own gate-cohort traffic is expected
    to be absent (the canary gets none yet), so it holds only if the release has no gate-cohort
    signal of its own at this step and every unknown condition reads a signal that is absent from
    the view, outside gate.shared_domains, in a domain that carried no release-less signal at or
    before ts. Anything else missing (shared or release-less telemetry, thin or null values, any
    signal once the canary has traffic) keeps on_missing: fail closed."""
    if not release or any(s["release"] == release for n, sigs in view.items() if not n.startswith("~") for s in sigs):
        return False
    shared, since = engine.policy.gate.shared_domains, st.get("releaseless_since", {})
    for c in cond_list:
        sigs = view.get(c.signal, [])
        if sigs and all(signal_state(s, c, min_samples) != MISSING for s in sigs):
            continue  # known: not what is missing
        domain = signal_info(c.signal, engine.declared).domain
        if sigs or domain in shared or since.get(domain, ts + 1) <= ts:
            return False
    return True


def shadow_hold_warnings(policy) -> list[str]:
    """policy check: the on_missing: abort rules whose signals shadow_holds may hold in SHADOW."""
    out = []
    for r in policy.rules:
        names = sorted({c.signal for c in conds(r.expr)
                        if signal_info(c.signal, policy.signal_units).domain not in policy.gate.shared_domains})
        if r.on_missing == "abort" and names:
            out.append(f"{r.origin}: {r.id} has on_missing: abort, but while a release is in SHADOW without canary"
                       f" traffic of its own, a missing {', '.join(names)} holds (the release's gate-cohort signals"
                       " are not live yet) unless its domain carries release-less signals; it aborts again once"
                       " the canary has traffic or the release reaches PLAN_OK")
    return out


def shadow_view(view: dict) -> dict:
    """The shadow cohort's signals of one release as a view the evaluator reads (+ the context)."""
    return {**view.get("~shadow", {}), "~context": view.get("~context", {})}


def shadow_failed(unit: dict, cfg: ShadowConfig) -> bool:
    ids = {r.id for r in cfg.rules}
    return any(a["kind"] == "abort" and a["rule"] in ids for a in unit["actions"])


def shadow_step(engine, scope: str, release: str, unit: dict, ts: int, view: dict) -> tuple[list, dict | None, list]:
    """(the comparisons that fired, the SHADOW -> PLAN_OK record or None, why the gate stays)."""
    from gatewatch.processors.policy.unit import incident_id
    policy = engine.policy
    cfg, gcfg, g = policy.gate.shadow, policy.gate, unit["gate"]
    prev_last, g["last"] = g["last"], ts
    sview = shadow_view(view)
    states = unit.setdefault("shadow", {})
    fired = []
    for rule in cfg.rules:
        rs = states.setdefault(rule.id, {"active": False, "streaks": {}, "fingerprint": rule.fingerprint})
        value = held(rule.expr, conds(rule.expr), sview, rule.min_samples, rs["streaks"], ts, gcfg.max_gap_ms)
        if value is None and rule.on_missing == "abort":
            value = True
        if value is False:
            rs["active"] = False
        elif value and not rs["active"]:
            rs["active"] = True
            rec = action_record(policy, rule, scope, ts, sview, rs["streaks"], release, cfg.cohort)
            rec["incident"] = incident_id(scope, release, ts)
            fired.append(rec)
    if fired or shadow_failed(unit, cfg):
        g["clean_since"] = None
        return fired, None, []  # the verdict is fail: gatestatus reports the comparisons that fired
    reasons = [dict(r, cohort=r["cohort"] or cfg.cohort, detail=f"shadow: {r['detail']}")
               for r in missing_reasons(sview, cfg.required, gcfg.min_samples)]
    for rule in cfg.rules:
        if instant(rule.expr, sview, rule.min_samples) is not False:
            reasons.extend(rule_reasons(rule, rule.expr, sview, default_cohort=cfg.cohort))
    if reasons:
        g["clean_since"] = None
        return [], None, reasons
    if g["clean_since"] is None or prev_last is None or ts - prev_last > gcfg.max_gap_ms:
        g["clean_since"] = ts
    if ts - g["clean_since"] < cfg.min_duration_ms:
        return [], None, [waiting_reason(SHADOW, STATES[0], ts - g["clean_since"], cfg.min_duration_ms)]
    g["state"], g["clean_since"] = STATES[0], None
    rec = shadow_record(policy, scope, ts, sview, release)
    return [], rec, [waiting_reason(STATES[0], STATES[1], 0, gcfg.windows[STATES[1]])]


def shadow_record(policy, scope: str, ts: int, sview: dict, release: str) -> dict:
    """The SHADOW -> PLAN_OK transition (kind gate, action advance, rule gate:PLAN_OK)."""
    cfg = policy.gate.shadow
    names = list(dict.fromkeys(list(cfg.required) + [c.signal for r in cfg.rules for c in conds(r.expr)]))
    entries = []
    for name in names:
        for s in sview.get(name) or [None]:
            entries.append(_entry(s, name, cfg.cohort, None, policy.gate.min_samples))
    entries.sort(key=_sort_key)
    ts_text = format_ts(ts)
    window = format_duration(cfg.min_duration_ms) if cfg.min_duration_ms else "1 step"
    text = (f"{SHADOW} -> {STATES[0]}: shadow cohort {cfg.cohort!r} present and within its comparisons"
            f" at every step for {window}")
    return _with_release({
        "id": action_id(policy.hash, scope, f"gate:{STATES[0]}", ts_text, "advance", release),
        "kind": "gate",
        "action": "advance",
        "scope": scope,
        "rule": {"id": f"gate:{STATES[0]}", "text": text, "severity": "info", "on_missing": "hold",
                 "min_samples": policy.gate.min_samples},
        "signals": entries,
        "baseline": _baseline(policy, sview, set(names)),
        "policy_hash": policy.hash,
        "ts": ts_text,
        "gate": {"from": SHADOW, "to": STATES[0]},
    }, release)
