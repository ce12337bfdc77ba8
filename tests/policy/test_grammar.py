import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewatch.processors.policy.grammar import (
    And,
    Cond,
    GrammarError,
    Or,
    parse_condition,
    render,
)


def test_units_convert_to_catalogue_units():
    assert parse_condition("latency_p95_ms > 0.8s").threshold == 800
    assert parse_condition("latency_p95_ms > 800ms").threshold == 800
    assert parse_condition("cdc_lag_p95_s > 2000ms").threshold == 2
    assert parse_condition("rum_inp_p75_ms_delta > 10pct").threshold == pytest.approx(0.10)
    assert parse_condition("err5xx_rate >= 0.1%").threshold == pytest.approx(0.001)
    assert parse_condition("burn_rate_per_4h >= 1").signal == "burn_rate_4h"


def test_for_and_precedence():
    e = parse_condition("invariant > 0 or err5xx_rate > 1pct and burn_rate_1h > 2 for 5m")
    assert isinstance(e, Or) and isinstance(e.items[1], And)
    assert e.items[1].items[1].for_ms == 300_000
    e = parse_condition("(invariant > 0 or err5xx_rate > 1pct) and burn_rate_1h > 2")
    assert isinstance(e, And) and isinstance(e.items[0], Or)


@pytest.mark.parametrize("bad", ["", "invariant", "invariant >", "invariant > x", "invariant > 0 for",
                                 "invariant > 0 for -5m", "nope > 1", "burn_rate_1h > 1pct",
                                 "latency_p95_ms > 5m", "invariant > 0)", "__import__('os') > 1",
                                 "invariant > 0 and or schema_drift > 0"])
def test_refuses(bad):
    with pytest.raises(GrammarError):
        parse_condition(bad)


SIGNALS = st.sampled_from(["invariant", "burn_rate_1h", "err5xx_rate", "latency_p95_ms", "schema_drift"])
COND = st.builds(lambda s, op, v, f: Cond(s, s, op, float(v), f), SIGNALS,
                 st.sampled_from([">", ">=", "<", "<=", "==", "!="]),
                 st.integers(0, 10_000), st.sampled_from([0, 10_000, 300_000, 3_600_000]))
EXPR = st.recursive(COND, lambda inner: st.one_of(
    st.builds(lambda xs: And(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
    st.builds(lambda xs: Or(tuple(xs)), st.lists(inner, min_size=2, max_size=3))), max_leaves=8)



@given(EXPR)
def test_render_parse_roundtrip(expr):
    text = render(expr)
    assert render(parse_condition(text)) == text
