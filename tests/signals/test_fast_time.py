"""The request fast path's RFC 3339 parser agrees with the general parser, and declines the rest."""
from hypothesis import given, strategies as st

from processors.inputs import fast_rfc3339_ms
from processors.timefmt import TimeFormatError, format_ts, parse_time_ms


@given(st.integers(0, 253_402_300_799_999))  # 1970 .. 9999-12-31T23:59:59.999Z
def test_canonical_strings_parse_like_the_general_parser(ms):
    s = format_ts(ms)
    assert fast_rfc3339_ms(s) == parse_time_ms(s) == ms


@given(st.text(max_size=30))
def test_anything_else_is_declined_or_agrees(s):
    got = fast_rfc3339_ms(s)
    if got is not None:
        assert got == parse_time_ms(s)


def test_shapes_it_declines():
    for s in ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.000+00:00", "2026-02-30T00:00:00.000Z",
              "2026-01-01T24:00:00.000Z", "2026-01-01T00:00:60.000Z", "2026-01-01 00:00:00.000Z",
              "2026-01-01T0a:00:00.000Z", "２026-01-01T00:00:00.000Z"):
        assert fast_rfc3339_ms(s) is None, s
    try:
        parse_time_ms("2026-02-30T00:00:00.000Z")
        raise AssertionError("general parser accepted Feb 30")
    except TimeFormatError:
        pass
