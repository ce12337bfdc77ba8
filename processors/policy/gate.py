"""The release gate of seed 000's SPEC, per scope:

    PLAN_OK -> EXEC_FAST_OK -> EXEC_FULL_OK -> ORR_OK -> CANARY_READY

A gate step at time E is *clean* when, in the gate cohort,
  * every required signal (gate.required plus the next stage's `requires`) is
    present with a value and at least gate.min_samples samples, for every subject;
  * every blocking rule (abort rules and critical hooks) is known to be false,
    each `for D` read as `for min(D, gate.breach_tolerance)`: a breach blocks
    promotion once it has lasted the tolerance, long before the rule fires
    (unset: as the rule fires; 0s: at once);
  * `invariant > 0` and `burn_rate_4h >= 1` (INV2, INV3: always), and every
    gate.block_when condition, are known to be false.
With gate.shadow, a release first passes a SHADOW phase (processors.policy.shadowphase).
The gate moves one state forward when it has been clean at every evaluated step
for the next stage's window (gaps longer than evaluation.max_gap restart the
count). Unknown is never clean (INV5, fail-closed); there is no averaging.
Aborts leave the state unchanged; they only break the clean streak (LF2: healthy
steps afterwards let it progress again).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from gatewatch.processors.names import valid_name
from gatewatch.processors.policy.document import fail, substitute, suggest
from gatewatch.processors.policy.grammar import (
    Cond,
    GrammarError,
    conds,
    parse_condition,
    signal_info,
)
from gatewatch.processors.timefmt import TimeFormatError, parse_duration_ms

STATES = ("PLAN_OK", "EXEC_FAST_OK", "EXEC_FULL_OK", "ORR_OK", "CANARY_READY")
NEXT = dict(zip(STATES, STATES[1:]))
ALWAYS_BLOCK = ("invariant > 0", "burn_rate_4h >= 1")
GATE_KEYS = ("cohort", "shared_domains", "min_samples", "required", "block_when", "breach_tolerance", "stages",
             "shadow")
STAGE_KEYS = ("window", "requires")


@dataclass(frozen=True)
class GateConfig:
    cohort: str
    shared_domains: tuple      # domains not split by cohort: their signals count whatever their cohort
    min_samples: int
    required: tuple            # catalogue names, every stage
    stage_required: dict       # state -> tuple of names
    windows: dict              # state -> ms of clean evidence needed to enter it
    block: tuple               # (text, expr) conditions that block while true or unknown
    ttl_ms: int
    max_gap_ms: int
    max_pending_steps: int
    breach_tolerance_ms: int | None  # None: a blocking rule blocks as it fires (its own `for`)
    shadow: object = None      # processors.policy.shadowphase.ShadowConfig: the SHADOW phase, or None


def _duration(doc_value, where, path) -> int:
    try:
        ms = parse_duration_ms(doc_value)
    except (TimeFormatError, TypeError):
        fail(where, path, f"not a duration: {doc_value!r} (use e.g. 30s, 5m, 1h)")
    if ms < 0:
        fail(where, path, f"duration must not be negative: {doc_value!r}")
    return ms


def _ttl(doc_value, where) -> int:
    """permits.ttl: the permit lifetime the decider signs, > 0 and within the 24 h ceiling every
    verifier enforces (the executor's own maximum, default 1 h, may be lower)."""
    from gatewatch.processors.signing import MAX_LIFETIME_CEILING_MS
    ms = _duration(doc_value, where, "permits.ttl")
    if not 0 < ms <= MAX_LIFETIME_CEILING_MS:
        fail(where, "permits.ttl", f"permits.ttl must be more than 0 and at most 24h, got {doc_value!r}")
    return ms


def _signals(names, where, path, declared=None) -> tuple:
    if not isinstance(names, list):
        fail(where, path, f"{path} must be a list of signal names")
    out = []
    for i, n in enumerate(names):
        info = signal_info(n, declared) if isinstance(n, str) else None
        if info is None:
            fail(where, f"{path}[{i}]", f"unknown signal {n!r}")
        if info.name not in out:
            out.append(info.name)
    return tuple(out)


DOMAINS = ("requests", "rum", "cdc", "gauges", "trajectories")


def _domains(value, where) -> tuple:
    if not isinstance(value, list) or not all(v in DOMAINS for v in value):
        fail(where, "gate.shared_domains", f"gate.shared_domains must list domains among {', '.join(DOMAINS)}")
    return tuple(sorted(set(value)))


def gate_config(doc: dict, where: dict, declared: dict | None = None) -> GateConfig:
    g = doc.get("gate") or {}
    if not isinstance(g, dict):
        fail(where, "gate", "gate must be a mapping")
    for k in g:
        if k not in GATE_KEYS:
            fail(where, f"gate.{k}", f"unknown key {k!r} in gate{suggest(k, GATE_KEYS)}")
    min_samples = g.get("min_samples", 1)
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 0:
        fail(where, "gate.min_samples", f"min_samples must be a non-negative integer, got {min_samples!r}")
    stages = g.get("stages") or {}
    if not isinstance(stages, dict):
        fail(where, "gate.stages", "gate.stages must map states to {window, requires}")
    windows, stage_required = {}, {}
    for st, spec in stages.items():
        if st not in STATES[1:]:
            fail(where, f"gate.stages.{st}", f"unknown gate state {st!r}{suggest(st, STATES[1:])}")
        spec = spec or {}
        if not isinstance(spec, dict):
            fail(where, f"gate.stages.{st}", "a stage must be a mapping {window, requires}")
        for k in spec:
            if k not in STAGE_KEYS:
                fail(where, f"gate.stages.{st}.{k}", f"unknown key {k!r} in stage{suggest(k, STAGE_KEYS)}")
        windows[st] = _duration(spec.get("window", "0s"), where, f"gate.stages.{st}.window")
        stage_required[st] = _signals(spec.get("requires", []), where, f"gate.stages.{st}.requires", declared)
    for st in STATES[1:]:
        windows.setdefault(st, 0)
        stage_required.setdefault(st, ())
    block = []
    extra = g.get("block_when") or []
    if not isinstance(extra, list):
        fail(where, "gate.block_when", "gate.block_when must be a list of conditions")
    for i, text in enumerate(list(ALWAYS_BLOCK) + list(extra)):
        try:
            text = substitute(text, doc) if isinstance(text, str) else text
            block.append((text, parse_condition(text, declared)))
        except (GrammarError, ValueError) as e:
            fail(where, f"gate.block_when[{i - len(ALWAYS_BLOCK)}]", f"cannot parse when {text!r}: {e}")
    ev = doc.get("evaluation") or {}
    max_pending = ev.get("max_pending_steps", 720)
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
        fail(where, "evaluation.max_pending_steps", f"must be a positive integer, got {max_pending!r}")
    cohort = g.get("cohort", "canary")
    if not valid_name(cohort):  # str(5) would name a cohort no sample has: a gate that never acts
        fail(where, "gate.cohort", f"gate.cohort must be a cohort name (letters, digits, ._:/-), got {cohort!r}")
    return GateConfig(
        cohort=cohort,
        shared_domains=_domains(g.get("shared_domains", []), where),
        min_samples=min_samples,
        required=_signals(g.get("required", []), where, "gate.required", declared),
        stage_required=stage_required,
        windows=windows,
        block=tuple(block),
        ttl_ms=_ttl((doc.get("permits") or {}).get("ttl", "1h"), where),
        max_gap_ms=_duration(ev["max_gap"], where, "evaluation.max_gap") if ev.get("max_gap") is not None
        else max(60_000, 3 * _duration((doc.get("signals") or {}).get("step", "10s"), where, "signals.step")),
        max_pending_steps=max_pending,
        breach_tolerance_ms=None if g.get("breach_tolerance") is None
        else _duration(g["breach_tolerance"], where, "gate.breach_tolerance"),
    )


def tolerate(expr, tolerance_ms: int | None):
    """expr with every `for D` cut to min(D, tolerance): how the gate reads a blocking rule."""
    if tolerance_ms is None:
        return expr
    if isinstance(expr, Cond):
        return replace(expr, for_ms=min(expr.for_ms, tolerance_ms))
    return type(expr)(tuple(tolerate(i, tolerance_ms) for i in expr.items))


def gate_domains(cfg: GateConfig, blocking_rules, declared: dict | None = None) -> tuple:
    names = set(cfg.required)
    for st in STATES[1:]:
        names.update(cfg.stage_required[st])
    for _, expr in cfg.block:
        names.update(c.signal for c in conds(expr))
    doms = {signal_info(n, declared).domain for n in names}
    for r in blocking_rules:
        doms.update(r.domains)
    if cfg.shadow is not None:
        doms.update(cfg.shadow.domains)
    return tuple(sorted(doms))

