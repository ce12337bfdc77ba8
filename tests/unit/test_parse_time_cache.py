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


def test_a_time_format_ts_cannot_write_back_is_no_time():
    """A signal with ts 1e300 raised OverflowError deep in decide (not a ValueError its stage skips):
    a time outside the years 1..9999, or not finite, is refused where it is parsed."""
    import pytest

    from gatewatch.processors.policy.scoped import ScopedEngine
    from gatewatch.streams.runtime.policy_files import load_policy_dir
    from gatewatch.streams.stages.decide import DecisionState
    for bad in (1e300, float("inf"), float("nan"), -62_135_596_800_001, "-62135596800001", 10**30):
        with pytest.raises(timefmt.TimeFormatError):
            timefmt.parse_time_ms(bad)
    assert timefmt.parse_time_ms("9999-12-31T23:59:59.999Z") == timefmt.MAX_MS  # the ends still parse
    assert timefmt.parse_time_ms("0001-01-01T00:00:00Z") == timefmt.MIN_MS
    assert timefmt.format_ts(timefmt.MAX_MS).startswith("9999-12-31T23:59:59")
    state = DecisionState(ScopedEngine(load_policy_dir("configs/policies")))
    rec = {"name": "invariant", "value": 1, "scope": "checkout", "cohort": "canary", "domain": "gauges",
           "samples": 1, "source": "signals", "batch_n": 1, "ts": 1e300, "window_s": 300, "subject": ""}
    with pytest.raises(ValueError):  # what the decide stage catches and counts
        state.on_record(rec)
