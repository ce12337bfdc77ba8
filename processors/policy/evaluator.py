"""Three-valued (Kleene) evaluation of parsed conditions over one step's signals.

True = breach, False = known healthy, None = unknown (missing or thin).
A condition is evaluated per subject (route, table, service...) and is true when
any subject breaches: non-compensatory, one bad subject is enough, and a thin or
absent subject is never taken as healthy.

`for D` streaks are kept per (condition, subject) as [since, seen] (epoch ms):
a breach extends the streak when the previous sighting is within max_gap, an
unknown value at a delivered step holds it, a healthy value ends it.
"""
from __future__ import annotations

import operator

from gatewatch.processors.policy.grammar import And, Cond, Or

_CMP = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}

BREACH, OK, MISSING = "breach", "ok", "missing"


def subject_key(subject) -> str:
    return "" if subject is None else str(subject)


def signal_state(sig: dict, cond: Cond, min_samples: int) -> str:
    v = sig.get("value")
    if v is None or (sig.get("samples") or 0) < min_samples:
        return MISSING
    return BREACH if _CMP[cond.op](v, cond.threshold) else OK


def cond_instant(cond: Cond, sigs: list[dict], min_samples: int):
    states = [signal_state(s, cond, min_samples) for s in sigs]
    if BREACH in states:
        return True
    if not states or MISSING in states:
        return None
    return False


def combine(expr, leaf):
    """Kleene and/or over leaf(cond) -> True/False/None."""
    if isinstance(expr, Cond):
        return leaf(expr)
    vals = [combine(i, leaf) for i in expr.items]
    if isinstance(expr, And):
        if False in vals:
            return False
        return True if all(v is True for v in vals) else None
    assert isinstance(expr, Or)
    if True in vals:
        return True
    return False if all(v is False for v in vals) else None


def instant(expr, view: dict, min_samples: int):
    """The condition now, ignoring `for` durations. view: signal name -> [signals]."""
    return combine(expr, lambda c: cond_instant(c, view.get(c.signal, []), min_samples))


def update_streaks(cond: Cond, sigs: list[dict], min_samples: int, streaks: dict, ts: int, max_gap: int):
    """Advance one condition's per-subject streaks to step ts (mutates streaks)."""
    for sig in sigs:
        key = subject_key(sig.get("subject"))
        state = signal_state(sig, cond, min_samples)
        prev = streaks.get(key)
        if state == BREACH:
            if prev is not None and ts - prev[1] <= max_gap:
                prev[1] = ts
            else:
                streaks[key] = [ts, ts]
        elif state == OK:
            streaks.pop(key, None)
        elif prev is not None:
            if ts - prev[1] <= max_gap:
                prev[1] = ts  # hold: an unknown step neither ends nor proves the breach
            else:
                streaks.pop(key, None)
    for key in [k for k, (_, seen) in streaks.items() if ts - seen > max(max_gap, cond.for_ms)]:
        del streaks[key]  # subjects that went away


def cond_held(cond: Cond, sigs: list[dict], min_samples: int, streaks: dict, ts: int):
    """The condition with its `for` duration at step ts (after update_streaks)."""
    states = [signal_state(s, cond, min_samples) for s in sigs]
    for s, state in zip(sigs, states):
        if state == BREACH:
            streak = streaks.get(subject_key(s.get("subject")))
            if ts - (ts if streak is None else streak[0]) >= cond.for_ms:
                return True
    if not states or MISSING in states:
        return None
    return False


def held(expr, cond_list: list, view: dict, min_samples: int, streaks: dict, ts: int, max_gap: int):
    """The condition with its `for` durations at step ts, advancing `streaks`
    ({cond index: {subject: [since, seen]}}) first. cond_list = grammar.conds(expr)."""
    for i, c in enumerate(cond_list):
        if c.for_ms:
            update_streaks(c, view.get(c.signal, []), min_samples, streaks.setdefault(str(i), {}), ts, max_gap)
    if len(cond_list) == 1 and cond_list[0] is expr:  # one condition, nothing to combine (most rules)
        return cond_held(expr, view.get(expr.signal, []), min_samples, streaks.get("0", {}), ts)
    index = {id(c): i for i, c in enumerate(cond_list)}
    return combine(expr, lambda c: cond_held(c, view.get(c.signal, []), min_samples,
                                             streaks.get(str(index[id(c)]), {}), ts))
