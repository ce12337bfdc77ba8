"""The request fast path's RFC 3339 parsers (plain and memoized) agree with the general parser,
and decline the rest."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatewatch.processors.inputs import cached_rfc3339_ms, fast_rfc3339_ms
from gatewatch.processors.timefmt import TimeFormatError, format_ts, parse_time_ms

PARSERS = pytest.mark.parametrize("parse", [fast_rfc3339_ms, cached_rfc3339_ms])


@PARSERS
@given(ms=st.integers(0, 253_402_300_799_999))  # 1970 .. 9999-12-31T23:59:59.999Z
def test_canonical_strings_parse_like_the_general_parser(parse, ms):
    s = format_ts(ms)
    assert parse(s) == parse_time_ms(s) == ms


@PARSERS
@given(s=st.text(max_size=30))
def test_anything_else_is_declined_or_agrees(parse, s):
    got = parse(s)
    if got is not None:
        assert got == parse_time_ms(s)


@PARSERS
def test_shapes_it_declines(parse):
    for s in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000+00:00", "2026-02-30T00:00:00.000Z",
              "2026-01-01T24:00:00.000Z", "2026-01-01T00:00:60.000Z", "2026-01-01 00:00:00.000Z",
              "2026-01-01T0a:00:00.000Z", "２026-01-01T00:00:00.000Z"):
        assert parse(s) is None, s
    try:
        parse_time_ms("2026-02-30T00:00:00.000Z")
        raise AssertionError("general parser accepted Feb 30")
    except TimeFormatError:
        pass
