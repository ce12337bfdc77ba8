import pytest

from gatewatch.processors.policy import PolicyError
from gatewatch.processors.policy.grammar import render
from gatewatch.streams.runtime.policy_files import builtin_layer, compose

PROJECT = """\
version: 1
slo:
  availability: {window: 28d, target: 99.5}
  latency_p95_ms:
    window: 5m
    target: 800
abort_rules:
  - when: "burn_rate_per_4h >= 1.0"
    action: rollback
  - when: "latency_p95_ms > 800 for 10m"
    action: freeze
"""
ENV = """\
rum:
  routes:
    - {route: "/", inp_p75_ms: 180, lcp_p75_ms: 2200, cls_p75: 0.08}
obs:
  self_slo: {uptime_target_pct_30d: 99.9, burn_rate_max_per_4h: 1.0}
"""
GATE = """\
hooks:
  critical: [api_contract_break, schema_registry_drift, dp_budget_breach]
  must_have: [amm_invariant_breach, mbp_resolution_sla, mbp_liquidity_depth, mbp_price_spike_divergence,
              cdc_lag, slo_budget_breach]
abort:
  - {when: "err5xx_rate >= 0.001 for 5m", action: rollback}
  - {when: "invariant > 0", action: block_release}
  - {when: "rum_inp_p75_ms_delta > 10pct for 24h", action: rollback_fe}
"""


def seed_policy():
    return compose([("project.yml", PROJECT), ("env.yml", ENV), ("mbp_s2.yml", GATE)])


def test_seed_shapes_compose():
    pol = seed_policy()
    assert pol.get("slo.availability.target") == 99.5
    assert pol.get("slo.latency_p95_ms.window") == "5m"
    ids = [r.id for r in pol.rules]
    assert "rollback:burn_rate_4h_ge_1" in ids
    assert "hook:schema_drift" in ids and "hook:invariant_breach" in ids and "hook:slo_budget_breach" in ids
    drift = next(r for r in pol.rules if r.id == "hook:schema_drift")
    assert drift.kind == "hook" and drift.blocking  # critical
    assert next(r for r in pol.rules if r.id == "hook:cdc_lag").blocking is False
    inp = next(r for r in pol.rules if r.action == "rollback_fe" and r.kind == "abort")
    assert render(inp.expr) == "rum_inp_p75_ms_delta > 0.1 for 1d"
    # the latency hook follows the SLO target via ${...}
    lat = next(r for r in compose([("p.yml", PROJECT + "hooks: {must_have: [latency_budget]}\n")]).rules
               if r.id == "hook:latency_budget")
    assert render(lat.expr) == "latency_p95_ms > 800 for 5m"


def test_hash_ignores_comments_whitespace_and_key_order():
    a = seed_policy().hash
    project2 = "# a comment\n" + PROJECT.replace("window: 28d, target: 99.5", "target: 99.5,   window: 28d")
    b = compose([("project.yml", project2), ("env.yml", ENV + "\n\n# trailing\n"), ("mbp_s2.yml", GATE)]).hash
    assert a == b and len(a) == 64
    c = compose([("project.yml", PROJECT.replace("99.5", "99.9")), ("env.yml", ENV), ("mbp_s2.yml", GATE)]).hash
    assert c != a


def test_precedence_later_wins_and_origins():
    pol = compose([("project.yml", PROJECT), ("env.yml", "slo:\n  availability:\n    target: 99.9\n")])
    assert pol.get("slo.availability.target") == 99.9
    assert pol.get("slo.availability.window") == "28d"
    assert str(pol.origins["slo.availability.target"]) == "env.yml:3"
    assert str(pol.origins["slo.availability.window"]) == "project.yml:3"
    assert str(pol.origins["abort_rules[1].when"]) == "project.yml:10"
    assert str(pol.origins["gate.cohort"]).startswith("<builtin>:")


def test_list_semantics():
    base = "abort:\n  - {id: a, when: 'invariant > 0', action: block_release}\n" \
           "gate:\n  required: [invariant, err5xx_rate]\n"
    top = "abort:\n  - {id: a, when: 'invariant > 1', action: freeze}\n" \
          "  - {id: b, when: 'schema_drift > 0', action: block_release}\n" \
          "gate:\n  required: [invariant]\n"
    pol = compose([("a.yml", base), ("b.yml", top)])
    assert [(r.id, r.action, r.text) for r in pol.rules] == [
        ("a", "freeze", "invariant > 1"), ("b", "block_release", "schema_drift > 0")]
    assert pol.gate.required == ("invariant",)  # scalar lists: later replaces
    # null deletes
    pol = compose([("a.yml", base), ("b.yml", "abort: null\n")])
    assert pol.rules == []


def test_presets():
    pol = compose([("p.yml", "abort:\n  - {preset: mwmbr_page, action: freeze}\n"
                              "  - {preset: mwmbr_ticket, action: notify, id: ticket}\n")])
    page, ticket = pol.rules
    assert render(page.expr) == "(burn_rate_1h > 14.4 and burn_rate_5m > 14.4) or (burn_rate_6h > 6 and burn_rate_30m > 6)"
    assert render(ticket.expr) == "(burn_rate_1d > 3 and burn_rate_2h > 3) or (burn_rate_3d > 1 and burn_rate_6h > 1)"


@pytest.mark.parametrize("text, line, problem", [
    ("abort:\n  - when: 'invariant > 0'\n    acton: rollback\n", 3, "unknown key 'acton' in rule (did you mean 'action'?)"),
    ("abort:\n  - when: 'invariant > 0'\n    action: rollback\n  - when: 'latncy_p95_ms > 5'\n    action: freeze\n",
     4, "unknown signal 'latncy_p95_ms'"),
    ("abort:\n  - {when: 'latency_p95_ms > 10pct', action: freeze}\n", 2, "bad unit"),
    ("abort:\n  - {when: 'err5xx_rate > 800ms', action: freeze}\n", 2, "bad unit"),
    ("abort:\n  - {id: x, when: 'invariant > 0', action: freeze}\n  - {id: x, when: 'schema_drift > 0', action: freeze}\n",
     3, "duplicate rule id 'x'"),
    ("abort:\n  - {when: 'invariant >> 0', action: freeze}\n", 2, "cannot parse when"),
    ("abort:\n  - {when: 'invariant > 0 and', action: freeze}\n", 2, "cannot parse when"),
    ("abort:\n  - {when: '(invariant > 0', action: freeze}\n", 2, "expected ')'"),
    ("abort:\n  - {when: 'invariant > 0 for soon', action: freeze}\n", 2, "cannot parse when"),
    ("abort:\n  - {when: 'invariant > 0', action: rollbak}\n", 2, "unknown action 'rollbak'"),
    ("abort:\n  - {when: 'invariant > 0', action: rollback, on_missing: skip}\n", 2, "on_missing must be hold or abort"),
    ("abort:\n  - {preset: mwmbr_pag, action: rollback}\n", 2, "unknown preset 'mwmbr_pag'"),
    ("hooks:\n  critical: [invariant_breech]\n", 2, "unknown hook 'invariant_breech'"),
    ("gate:\n  stages:\n    CANARY_REDY: {window: 5m}\n", 3, "unknown gate state"),
    ("gate:\n  required: [latency_p95, invariant]\n", 2, "unknown signal 'latency_p95'"),
    ("slo:\n  a: 1\n  a: 2\n", 3, "duplicate key 'a'"),
    ("abort: [\n", 2, "not valid YAML"),
    ("version: 1\nabort_rule:\n  - {when: 'invariant > 0', action: freeze}\n", 2,
     "unknown section 'abort_rule' (did you mean 'abort_rules'?)"),
    ("permits:\n  tll: 1h\n", 2, "unknown key 'tll' in permits"),
    ("slo:\n  availability: {target: 99.5%}\n", 2, "availability target must be a percentage"),
    # a cohort no sample names: the gate would wait forever and no rule would act (fail open)
    ("gate:\n  cohort: 5\n", 2, "gate.cohort must be a cohort name"),
    ("gate:\n  cohort: ''\n", 2, "gate.cohort must be a cohort name"),
    ("gate:\n  cohort: [canary]\n", 2, "gate.cohort must be a cohort name"),
    # a dotted key (a natural typo for a nested one) hung the loader: finding its line looped forever
    ("version: 1\ngate.cohort: canary\n", 2, "unknown section 'gate.cohort'"),
    ("version: 1\n'slo[0]': 1\n", 2, "unknown section 'slo[0]'"),
    ("abort:\n  - {when: 'invariant > 0', action: freeze, on.missing: hold}\n", 2, "unknown key 'on.missing' in rule"),
])
def test_refusals_name_file_line_and_problem(text, line, problem):
    with pytest.raises(PolicyError) as ei:
        compose([("project.yml", PROJECT), ("bad.yml", text)])
    e = ei.value
    assert e.file == "bad.yml", str(e)
    assert e.line == line, str(e)
    assert problem in e.problem, str(e)
    assert str(e).startswith(f"bad.yml:{line}: ")


def test_rule_defaults_and_fields():
    pol = compose([("p.yml", "abort:\n  - {when: 'invariant > 0', action: block_release}\n"
                              "  - {when: 'cdc_lag_p95_s > 2000ms', action: degrade, on_missing: abort,"
                              " min_samples: 5, severity: ticket}\n")])
    a, b = pol.rules
    assert (a.on_missing, a.min_samples, a.severity, a.blocking) == ("hold", 1, "page", True)
    assert (b.on_missing, b.min_samples, b.severity) == ("abort", 5, "ticket")
    assert b.expr.threshold == 2.0  # 2000ms on a seconds signal


def test_every_library_hook_compiles_and_seed_names_resolve():
    import yaml

    library = yaml.safe_load(builtin_layer()[1])["hooks"]["library"]
    pol = compose([("h.yml", "hooks:\n  must_have: [" + ", ".join(library) + "]\n")])
    assert [r.id for r in pol.rules] == [f"hook:{n}" for n in library]
    assert all(r.kind == "hook" and not r.blocking for r in pol.rules)
    for name in ("invariant_breach", "latency_budget", "resolution_sla", "cdc_lag", "schema_drift",
                 "api_contract_break", "web_cwv_regression", "slo_budget_breach", "dp_budget_breach"):
        assert name in library


def test_signal_stage_sections_are_accepted_and_steer_max_gap():
    pol = compose([("p.yml", "signals: {step: 60s, baseline_cohorts: [baseline]}\ncdc: {schemas: {}}\n")])
    assert pol.gate.max_gap_ms == 180_000
    assert compose([]).gate.max_gap_ms == 60_000
    assert compose([("p.yml", "evaluation: {max_gap: 15s}\n")]).gate.max_gap_ms == 15_000


def _shuffled(obj, rnd):
    if isinstance(obj, dict):
        items = list(obj.items())
        rnd.shuffle(items)
        return {k: _shuffled(v, rnd) for k, v in items}
    if isinstance(obj, list):
        return [_shuffled(v, rnd) for v in obj]
    return obj


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st

KEYS = st.text("abcdefghij_", min_size=1, max_size=6)
LEAVES = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 3)),
                   st.text("abc xyz-", max_size=8), st.booleans(), st.none())
TREES = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                     st.dictionaries(KEYS, inner, max_size=4)), max_leaves=12)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(KEYS, TREES, min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_hash_depends_on_content_only(tree, rnd):
    import yaml
    doc = {"slo": {"custom": tree}}
    a = yaml.safe_dump(doc, sort_keys=True)
    b = "# comment\n" + yaml.safe_dump(_shuffled(doc, rnd), sort_keys=False, default_flow_style=True, width=30)
    pa, pb = compose([("a.yml", a)]), compose([("b.yml", b)])
    assert pa.hash == pb.hash and pa.doc == pb.doc
