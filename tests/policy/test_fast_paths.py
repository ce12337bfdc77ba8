"""The decide stage's shortcuts equal the plain code they replace (hypothesis properties):
signal validation with its lookup cache and exact-type shortcuts, the cached ts parse, the
one-condition evaluation, the assembler's batch order, the grouped readiness scan and the
snapshot copy of a scope's state."""
from __future__ import annotations

import copy
import math
from bisect import bisect_right

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from gatewatch.processors.policy import Engine
from gatewatch.processors.policy.engine import SIGNALS_STAGE, SIGNALS_STAGE_DOMAINS
from gatewatch.processors.policy.errors import SignalError
from gatewatch.processors.policy.evaluator import BREACH, MISSING, cond_held, held, signal_state, subject_key
from gatewatch.processors.policy.grammar import Or, SignalInfo, parse_condition, signal_info
from gatewatch.processors.policy.signal_check import REFERENCE_FIELDS, _label, _num, _whole
from gatewatch.processors.policy.signal_check import validate_signal as _validate
from gatewatch.processors.signal_merge import _order
from gatewatch.processors.timefmt import TimeFormatError, parse_time_ms, parse_time_ms_cached
from tests.policy.helpers import STEP, T0, batch, make_policy


def _validate_plain(sig, declared=None) -> tuple:
    """validate_signal (then engine._validate) as it was before its shortcuts (52b0844), the reference."""
    if not isinstance(sig, dict):
        raise SignalError(f"a signal must be an object, got {type(sig).__name__}")
    name, scope = sig.get("name"), sig.get("scope")
    if not isinstance(name, str) or not isinstance(scope, str) or not scope:
        raise SignalError(f"signal needs string name and scope: {sig!r:.200}")
    info = signal_info(name, declared)
    if info is None and sig.get("domain") == "gauges":
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
    compact = {"name": info.name, "cohort": _label(sig.get("cohort")), "subject": _label(sig.get("subject")),
               "window_s": _whole(sig.get("window_s")), "value": None if value is None else float(value),
               "samples": samples, "release": _label(sig.get("release")) or ""}
    ref = {k: sig.get(k) for k in REFERENCE_FIELDS if sig.get(k) is not None}
    if ref:
        compact["reference"] = {"baseline": _num(ref.get("baseline")),
                                "baseline_samples": _whole(ref.get("baseline_samples")),
                                "baseline_source": _label(ref.get("baseline_source")),
                                "ci_low": _num(ref.get("ci_low")), "ci_high": _num(ref.get("ci_high"))}
    return scope, info.domain, ts, compact


def _outcome(fn, *args):
    """What a call gives, types included (repr tells 1 from 1.0 and True): a result or an error."""
    try:
        return "ok", repr(fn(*args))
    except (SignalError, TimeFormatError) as e:
        return type(e).__name__, str(e)


ANY_NUMBER = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                       st.sampled_from(["1", "x", ""]))
LABEL = st.one_of(st.none(), st.text(max_size=4), st.integers(-2, 300), st.booleans(), st.floats(0, 2))
TS = st.one_of(st.sampled_from(["2026-01-01T00:00:10.000Z", "2026-01-01T00:00:10Z", "2026-01-01 00:00:10+01:00",
                                "1767225610000", "1767225610", "17672256.5", "", " ", "2026-13-01T00:00:00Z",
                                "2026-01-01T00:00:10", "yesterday"]),
               st.integers(-10**18, 10**18), st.floats(allow_nan=False, allow_infinity=False), st.none(), st.booleans())

def mostly(good, bad):
    """good three times in four: enough signals pass validation to compare what it builds."""
    return st.tuples(st.booleans(), st.booleans()).flatmap(lambda coins: bad if all(coins) else good)


SIGNAL = st.fixed_dictionaries(
    {"name": mostly(st.sampled_from(["latency_p95_ms", "err5xx_rate", "invariant", "rum_inp_p75_ms", "my_gauge"]),
                    st.one_of(st.sampled_from(["no_such_signal", "p95_latency_ms"]), st.integers(0, 3))),
     "scope": mostly(st.sampled_from(["svc-a", "shop.items"]), st.one_of(st.just(""), st.none(), st.integers(0, 3))),
     "ts": mostly(st.sampled_from(["2026-01-01T00:00:10.000Z", "2026-01-01T00:00:20.000Z"]), TS)},
    optional={"value": mostly(st.floats(-1e6, 1e6), ANY_NUMBER), "samples": mostly(st.integers(0, 100), ANY_NUMBER),
              "cohort": LABEL, "subject": LABEL, "release": LABEL, "window_s": mostly(st.integers(0, 600), ANY_NUMBER),
              "domain": st.sampled_from(["gauges", "requests"]), "source": st.sampled_from(["signals", "rum:2"]),
              **{k: (LABEL if k == "baseline_source" else ANY_NUMBER) for k in REFERENCE_FIELDS}})


@settings(max_examples=400, deadline=None)
@given(sigs=st.lists(st.one_of(SIGNAL, st.sampled_from([None, [], "x"])), min_size=1, max_size=6))
def test_validate_equals_the_plain_validation(sigs):
    declared = {"my_gauge": "count"}
    infos: dict = {}  # one cache over the list, as an engine keeps it
    for sig in sigs + sigs:  # the second pass answers from the caches
        assert _outcome(_validate, sig, declared, infos) == _outcome(_validate_plain, sig, declared)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(TS, min_size=1, max_size=5))
def test_cached_ts_parse_equals_the_parse(values):
    for v in values + values:
        assert _outcome(parse_time_ms_cached, v) == _outcome(parse_time_ms, v)


SUBJECT_SIGNALS = st.lists(st.fixed_dictionaries({
    "subject": st.sampled_from([None, "/", "/a", "t1"]),
    "value": st.one_of(st.none(), st.floats(0, 2000)),
    "samples": st.one_of(st.none(), st.integers(0, 50))}), max_size=4)


@settings(max_examples=300, deadline=None)
@given(text=st.sampled_from(["latency_p95_ms > 800ms for 20s", "err5xx_rate >= 0.5", "invariant > 0 for 10s",
                             "latency_p95_ms <= 100ms"]),
       steps=st.lists(SUBJECT_SIGNALS, min_size=1, max_size=6), min_samples=st.integers(0, 20),
       gap=st.integers(1, 3))
def test_one_condition_shortcut_equals_combining_it(text, steps, min_samples, gap):
    """held() of a lone condition takes a shortcut; Or((cond,)) goes through combine() and means
    the same, so both must agree at every step, streaks included."""
    cond = parse_condition(text)
    direct, combined = {}, {}
    for i, sigs in enumerate(steps):
        view = {cond.signal: sigs} if sigs else {}
        ts = 1_767_225_600_000 + i * 10_000 * gap
        assert held(cond, [cond], view, min_samples, direct, ts, 20_000) == \
            held(Or((cond,)), [cond], view, min_samples, combined, ts, 20_000)
        assert direct == combined


KEY_PART = st.one_of(st.none(), st.text(max_size=3), st.integers(-3, 3))


@given(keys=st.lists(st.tuples(KEY_PART, KEY_PART, KEY_PART, KEY_PART, KEY_PART), max_size=12))
def test_batch_order_equals_the_plain_sort_key(keys):
    assert sorted(keys, key=_order) == sorted(keys, key=lambda k: tuple("" if x is None else str(x) for x in k))


def _ready_until_plain(st_: dict, domain: str) -> int:
    """Engine._ready_until of one domain as it was (52b0844)."""
    mine = st_["frontier"].get(domain, -1)
    if domain not in SIGNALS_STAGE_DOMAINS or set(st_["sources"].get(domain, ())) - {SIGNALS_STAGE}:
        return mine
    group = max((t for d, t in st_["frontier"].items()
                 if d in SIGNALS_STAGE_DOMAINS and SIGNALS_STAGE in st_["sources"].get(d, ())), default=-1)
    return max(mine, group - 1)


def _tasks_plain(engine: Engine, state: dict) -> list:
    """The ready (step, evaluator order, evaluator) as _run_ready found them, evaluator by evaluator
    and domain by domain, before the evaluators were grouped by the domains they read (52b0844)."""
    tasks, steps = [], sorted(state["pending"])
    for key, doms in engine.evaluators:
        last = state["last"].get(key)
        until = min(_ready_until_plain(state, d) for d in doms)
        for ts in steps[0 if last is None else bisect_right(steps, last):]:
            if ts > until:
                break
            if any(d in state["pending"][ts] for d in doms):
                tasks.append((ts, engine.order[key], key))
    return sorted(tasks)


ENGINE = Engine(make_policy())
DOMAINS = sorted(ENGINE.used_domains)


@settings(max_examples=400, deadline=None)
@given(frontier=st.dictionaries(st.sampled_from(DOMAINS), st.integers(-1, 9)),
       sources=st.dictionaries(st.sampled_from(DOMAINS), st.lists(st.sampled_from(["signals", "producer"]),
                                                                  min_size=1, unique=True)),
       pending=st.dictionaries(st.integers(0, 8), st.lists(st.sampled_from(DOMAINS), min_size=1, unique=True),
                               max_size=6),
       last=st.dictionaries(st.sampled_from([k for k, _ in ENGINE.evaluators]), st.integers(-1, 9)))
def test_grouped_readiness_scan_equals_the_scan_per_evaluator(frontier, sources, pending, last):
    state = {"frontier": frontier, "sources": sources, "last": last,
             "pending": {ts: {d: [] for d in doms} for ts, doms in pending.items()}}
    assert ENGINE._ready_tasks(state) == _tasks_plain(ENGINE, state)


def _cond_held_plain(cond, sigs, min_samples, streaks, ts):
    """evaluator.cond_held before its shortcuts (52b0844)."""
    states = [(subject_key(s.get("subject")), signal_state(s, cond, min_samples)) for s in sigs]
    for key, state in states:
        if state == BREACH:
            since = streaks.get(key, [ts, ts])[0]
            if ts - since >= cond.for_ms:
                return True
    if not states or any(state == MISSING for _, state in states):
        return None
    return False


@settings(max_examples=300, deadline=None)
@given(text=st.sampled_from(["latency_p95_ms > 800ms for 20s", "err5xx_rate >= 0.5", "invariant != 0",
                             "latency_p95_ms <= 100ms for 10s", "err5xx_rate == 0", "invariant < 1"]),
       sigs=SUBJECT_SIGNALS, min_samples=st.integers(0, 20),
       streaks=st.dictionaries(st.sampled_from(["", "/", "/a", "t1"]),
                               st.lists(st.integers(0, 60_000), min_size=2, max_size=2)),
       ts=st.integers(0, 60_000))
def test_cond_held_equals_the_plain_one(text, sigs, min_samples, streaks, ts):
    cond = parse_condition(text)
    assert cond_held(cond, sigs, min_samples, streaks, ts) == _cond_held_plain(cond, sigs, min_samples, streaks, ts)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(["healthy", "burn", "absent", "thin"]),
                                st.lists(st.sampled_from(["requests", "gauges", "rum", "cdc"]), unique=True)),
                      min_size=1, max_size=8))
def test_scope_state_equals_the_full_deep_copy(steps):
    """scope_state copies all but the pending steps (which it always shared): the same document."""
    engine = Engine(make_policy())
    over = {"healthy": {}, "burn": {"burn_rate_4h": 2.0}, "absent": {"latency_p95_ms": "absent"},
            "thin": {"err5xx_rate": ("thin", 0.0)}}
    for i, (kind, domains) in enumerate(steps):
        for d in domains:
            if d in ("requests", "gauges", "rum"):
                engine.on_batch(batch(d, T0 + i * STEP, "svc-a", over[kind]))
        plain = copy.deepcopy(engine.scopes["svc-a"]) if "svc-a" in engine.scopes else None
        if plain is None:
            continue
        plain["pending"] = {str(ts): doms for ts, doms in sorted(engine.scopes["svc-a"]["pending"].items())}
        plain["policy_hash"] = engine.policy.hash
        got = engine.scope_state("svc-a")
        assert orjson.dumps(got) == orjson.dumps(plain)  # insertion order too: the snapshot bytes
        got["units"].clear(), got["frontier"].clear()  # a copy: the engine's state is untouched
        assert engine.scopes["svc-a"]["frontier"]
