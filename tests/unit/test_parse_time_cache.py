"""parse_time_ms_cached: the same results as parse_time_ms, and the cache holds short texts only
(a padded or long-fraction timestamp parses but is not kept: the bound is in bytes, not only entries)."""
from gatewatch.processors import timefmt


def test_long_texts_parse_but_are_not_kept():
    timefmt._PARSED.clear()
    long = " " * 10_000 + "2025-10-01T00:00:00Z"
    assert timefmt.parse_time_ms_cached(long) == timefmt.parse_time_ms(long)
    assert long not in timefmt._PARSED
    short = "2025-10-01T00:00:00.123Z"
    assert timefmt.parse_time_ms_cached(short) == timefmt.parse_time_ms(short)
    assert short in timefmt._PARSED
