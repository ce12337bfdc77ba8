"""INV2-INV5 and LF1-LF2 of seed 000's SPEC as hypothesis properties, plus a stateful
test that delivers domain batches with arbitrary lag and restarts from saved state."""
from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gatewatch.processors.canonical import canonical_json
from gatewatch.processors.policy import STATES, Engine
from tests.policy.helpers import DOMAINS, STEP, T0, batch, make_policy

POLICY = make_policy()
REQUIRED = ("latency_p95_ms", "err5xx_rate", "burn_rate_4h", "invariant", "rum_inp_p75_ms")
DOMAIN_OF = {"latency_p95_ms": "requests", "err5xx_rate": "requests", "burn_rate_4h": "requests",
             "burn_rate_1h": "requests", "invariant": "gauges", "rum_inp_p75_ms": "rum",
             "rum_inp_p75_ms_delta": "rum"}
WINDOW_STEPS = {s: POLICY.gate.windows[s] // STEP for s in STATES[1:]}

# one step = a kind of trouble (or none) and, for healthy steps, noise below every threshold
KINDS = st.one_of(
    st.just(("healthy", None)),
    st.tuples(st.just("burn"), st.floats(1.0, 5.0)),
    st.tuples(st.just("invariant"), st.integers(1, 3)),
    st.tuples(st.just("err"), st.floats(0.001, 0.5)),
    st.tuples(st.just("inp"), st.floats(0.11, 1.0)),
    st.tuples(st.just("absent"), st.sampled_from(REQUIRED + ("rum_inp_p75_ms_delta",))),
    st.tuples(st.just("thin"), st.sampled_from(REQUIRED)),
    st.tuples(st.just("null"), st.sampled_from(REQUIRED)),
    st.tuples(st.just("skip"), st.sampled_from(DOMAINS)),
)
# segments: one step of some kind followed by a run of healthy steps, so that gates do move
SCENARIO = st.lists(st.tuples(KINDS, st.integers(0, 14)), min_size=1, max_size=8).map(
    lambda segs: [step for kind, run in segs for step in [kind] + [("healthy", None)] * run])


def overrides(kind, arg):
    return {"burn": {"burn_rate_4h": arg}, "invariant": {"invariant": arg}, "err": {"err5xx_rate": arg},
            "inp": {"rum_inp_p75_ms_delta": arg}, "absent": {arg: "absent"}, "thin": {arg: ("thin", 1.0)},
            "null": {arg: None}}.get(kind, {})


def step_batches(i, kind, arg, scope="svc-a"):
    """{domain: batch} for step i (a skipped domain has none). Each domain comes from a producer of
    its own (source), so that the interleavings below are ones the engine must wait through."""
    ov = overrides(kind, arg)
    out = {}
    for d in DOMAINS:
        if kind == "skip" and arg == d:
            continue
        out[d] = [dict(s, source=f"producer-{d}")
                  for s in batch(d, T0 + i * STEP, scope, {k: v for k, v in ov.items() if DOMAIN_OF[k] == d})]
    return out


def clean(kind) -> bool:
    # a lone err step is noise: the err rule needs 20s (3 steps) of it, and scenarios never
    # hold it that long, so it neither fires nor blocks
    return kind in ("healthy", "err")


def feed_in_order(engine, scenario):
    acts = []
    for i, (kind, arg) in enumerate(scenario):
        for d, b in step_batches(i, kind, arg).items():
            acts += engine.on_batch(b)
    return acts


def by_id(actions):
    return canonical_json(sorted(actions, key=lambda a: a["id"]))


@settings(max_examples=60, deadline=None)
@given(SCENARIO, st.randoms(use_true_random=False))
def test_inv4_deterministic_under_any_interleaving(scenario, rnd):
    once = feed_in_order(Engine(POLICY), scenario)
    twice = feed_in_order(Engine(POLICY), scenario)
    assert canonical_json(once) == canonical_json(twice)  # byte for byte, same order
    # the same batches, domains interleaved arbitrarily (each domain in its own ts order)
    queues = {d: [] for d in DOMAINS}
    for i, (kind, arg) in enumerate(scenario):
        for d, b in step_batches(i, kind, arg).items():
            queues[d].append(b)
    eng, mixed = Engine(POLICY), []
    while any(queues.values()):
        d = rnd.choice([d for d in DOMAINS if queues[d]])
        mixed += eng.on_batch(queues[d].pop(0))
    assert by_id(mixed) == by_id(once)
    ref = Engine(POLICY)
    feed_in_order(ref, scenario)
    assert eng.gate_state("svc-a") == ref.gate_state("svc-a")


def gate_events(actions):
    return [a for a in actions if a["gate"] is not None]


def step_of(action) -> int:
    from gatewatch.processors.timefmt import parse_time_ms
    return (parse_time_ms(action["ts"]) - T0) // STEP


@settings(max_examples=80, deadline=None)
@given(SCENARIO)
def test_inv5_inv3_inv2_no_progress_without_clean_evidence(scenario):
    acts = feed_in_order(Engine(POLICY), scenario)
    for a in gate_events(acts):
        k, to = step_of(a), a["gate"]["to"]
        window = range(max(0, k - WINDOW_STEPS[to]), k + 1)
        # INV5: every step of the promotion window had every essential signal, thick enough;
        # INV3/INV2: and neither burn_rate_4h >= 1 nor invariant > 0 anywhere in it
        assert all(clean(scenario[j][0]) for j in window), (to, k, [scenario[j] for j in window])
        assert len(window) == WINDOW_STEPS[to] + 1
    assert not any(a["kind"] == "promote" and scenario[step_of(a)][0] == "burn" for a in acts)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 0.99), min_size=20, max_size=25), st.floats(0, 0.0009), st.integers(0, 700))
def test_lf1_healthy_signals_reach_canary_ready(burns, err, latency):
    eng, acts = Engine(POLICY), []
    for i, b in enumerate(burns):
        ov = {"burn_rate_4h": b, "err5xx_rate": err, "latency_p95_ms": float(latency)}
        for d in DOMAINS:
            acts += eng.on_batch(batch(d, T0 + i * STEP, "svc-a",
                                       {k: v for k, v in ov.items() if DOMAIN_OF[k] == d}))
    assert eng.gate_state("svc-a") == "CANARY_READY"
    assert [a["gate"]["to"] for a in gate_events(acts)] == list(STATES[1:])
    assert acts[-1]["kind"] == "promote"


@settings(max_examples=40, deadline=None)
@given(SCENARIO)
def test_lf2_recovery_after_abort(scenario):
    healthy = [("healthy", None)] * 20
    eng = Engine(POLICY)
    acts = feed_in_order(eng, scenario + healthy)
    assert eng.gate_state("svc-a") == "CANARY_READY"
    # and the abort (if any) left the gate state where it was: no gate event at an abort step
    abort_steps = {step_of(a) for a in acts if a["kind"] == "abort"}
    assert not abort_steps & {step_of(a) for a in gate_events(acts)}


class LaggyDelivery(RuleBasedStateMachine):
    """Batches reach the engine with per-domain lag and the engine restarts from saved
    state; its actions must always be a prefix-subset of a reference engine fed in step
    order, and equal once everything is delivered."""

    def __init__(self):
        super().__init__()
        self.ref, self.ref_actions = Engine(POLICY), []
        self.eng, self.actions = Engine(POLICY), []
        self.queues = {d: [] for d in DOMAINS}
        self.i = 0
        self.last_state = 0
        self.delivered = set()

    @rule(kind=KINDS)
    def step(self, kind):
        for d, b in step_batches(self.i, *kind).items():
            self.ref_actions += self.ref.on_batch(b)
            self.queues[d].append(b)
        self.i += 1

    def _deliver(self, domain):
        b = self.queues[domain].pop(0)
        self.actions += self.eng.on_batch(b)
        if b:  # an empty batch is no batch: nothing marks the domain as delivered
            self.delivered.add(domain)

    @rule(domain=st.sampled_from(DOMAINS), n=st.integers(1, 5))
    def deliver(self, domain, n):
        for _ in range(n):
            if self.queues[domain]:
                self._deliver(domain)

    @rule()
    def redeliver_old_batch(self):
        # at-least-once: an already delivered batch comes again and changes nothing
        st_before = canonical_json(self.eng.to_state())
        for d in self.delivered:
            assert self.eng.on_batch(batch(d, T0, "svc-a")) == []
        assert canonical_json(self.eng.to_state()) == st_before

    @rule()
    def restart(self):
        saved = orjson.loads(orjson.dumps(self.eng.to_state()))
        self.eng = Engine.from_state(POLICY, saved)

    @precondition(lambda self: any(self.queues.values()))
    @rule()
    def deliver_all(self):
        for d in DOMAINS:
            while self.queues[d]:
                self._deliver(d)
        assert by_id(self.actions) == by_id(self.ref_actions)

    @invariant()
    def subset_of_reference(self):
        ref_ids = {a["id"] for a in self.ref_actions}
        assert {a["id"] for a in self.actions} <= ref_ids
        assert len({a["id"] for a in self.actions}) == len(self.actions)  # never twice

    @invariant()
    def gate_never_goes_back(self):
        now = STATES.index(self.eng.gate_state("svc-a"))
        assert now >= self.last_state
        self.last_state = now


TestLaggyDelivery = LaggyDelivery.TestCase
TestLaggyDelivery.settings = settings(max_examples=40, stateful_step_count=40, deadline=None)
